"""Forget dead consumers: a group member with no pending entries and no heartbeat for ten leases is
deleted from its group (XGROUP DELCONSUMER), so workers that come and go (Kubernetes pods with new
names each time) do not pile up consumer names.

A consumer still holding entries is never deleted (that would drop them from the group's pending
list, and the entries would never be delivered again): the runtime's reclaim moves them to a live
worker after the lease first. The last check and the deletion run in one script, so a worker that
comes back to life in between keeps its name.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from ops.autoscale.observe import StageState
from queues.keys import Keys
from queues.scripts import Pooled, Script

log = logging.getLogger(__name__)

# KEYS[1] stream, KEYS[2] the consumer's heartbeat key. ARGV[1] group, ARGV[2] consumer.
# Returns 1 when the consumer was deleted, 0 when it has a heartbeat or pending entries again.
FORGET = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
forget_script = Script(FORGET)


class ConsumerSweeper:
    """Tracks since when each consumer of a stage has been without a heartbeat; deletes the dead."""

    def __init__(self, client: aioredis.Redis, keys: Keys, stage: str, forget_after_s: float) -> None:
        self.commands = Pooled(client)
        self.keys = keys
        self.stage = stage
        self.forget_after_s = forget_after_s
        self._silent_since: dict[str, float] = {}

    async def sweep(self, now: float, state: StageState) -> list[str]:
        """Delete the consumers silent for `forget_after_s` with nothing pending; returns their names."""
        members = {consumer.name: consumer for consumer in state.consumers}
        for name in list(self._silent_since):
            if name not in members or name in state.live:
                del self._silent_since[name]
        forgotten: list[str] = []
        for name, consumer in members.items():
            if name in state.live:
                continue
            since = self._silent_since.setdefault(name, now)
            if consumer.pending or now - since < self.forget_after_s:
                continue
            if consumer.idle_ms < self.forget_after_s * 1000:
                continue
            keys = [self.keys.stream(self.stage), self.keys.heartbeat(self.stage, name)]
            if await forget_script(self.commands, keys, [self.keys.group(self.stage), name]):
                log.info(
                    "stage=%s forgot consumer %s (no heartbeat for %.0fs)", self.stage, name, now - since
                )
                forgotten.append(name)
                del self._silent_since[name]
        return forgotten
