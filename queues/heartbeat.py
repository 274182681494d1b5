"""Worker liveness: a heartbeat key per consumer, refreshed with a TTL, and stable consumer names.

`/ready` and the autoscaler read these keys (a worker whose slots are all busy does not read
from its stream, so stream activity cannot tell a live worker from a dead one). A worker without
an explicit name claims the lowest free `<host>.<n>` by creating its heartbeat key with NX, so two
live workers never share a consumer name and a restarted one gets its old name (and its pending
entries) back once the dead one's key has expired.
"""

from __future__ import annotations

import os
import socket
import time

import msgspec
import redis.asyncio as aioredis

from queues.config import env_names, from_env
from queues.keys import Keys


class Beat(msgspec.Struct, frozen=True):
    pid: int
    host: str
    busy: int
    slots: int
    started: float


class ConsumerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    consumer_name: str = ""  # set by the Procfile runner and the autoscaler; empty: claim `<host>.<n>`


def explicit_name() -> str | None:
    """The consumer name given by the environment (CONSUMER_NAME), if any."""
    return from_env(ConsumerSettings).consumer_name or None


class Heartbeat:
    def __init__(self, client: aioredis.Redis, keys: Keys, stage: str, interval_s: float) -> None:
        self._client = client
        self._keys = keys
        self._stage = stage
        self._ttl_ms = int(interval_s * 3000)
        self._started = time.time()
        self.consumer = ""

    def _value(self, busy: int, slots: int) -> bytes:
        beat = Beat(pid=os.getpid(), host=socket.gethostname(), busy=busy, slots=slots, started=self._started)
        return msgspec.json.encode(beat)

    async def claim(self, slots: int) -> str:
        """Take the explicit name, or the lowest free `<host>.<n>`; returns the consumer name."""
        name = explicit_name()
        if name is not None:
            self.consumer = name
            await self.beat(0, slots)
            return name
        host = socket.gethostname()
        for n in range(1, 10_000):
            candidate = f"{host}.{n}"
            key = self._keys.heartbeat(self._stage, candidate)
            if await self._client.set(key, self._value(0, slots), nx=True, px=self._ttl_ms):
                self.consumer = candidate
                return candidate
        raise RuntimeError(f"no free consumer name for stage {self._stage} on {host}")

    async def beat(self, busy: int, slots: int) -> None:
        key = self._keys.heartbeat(self._stage, self.consumer)
        await self._client.set(key, self._value(busy, slots), px=self._ttl_ms)

    async def clear(self) -> None:
        await self._client.delete(self._keys.heartbeat(self._stage, self.consumer))


async def live_consumers(client: aioredis.Redis, keys: Keys, stage: str) -> dict[str, Beat]:
    """Consumers of `stage` whose heartbeat has not expired."""
    found: dict[str, Beat] = {}
    prefix = keys.heartbeat(stage, "")
    async for key in client.scan_iter(match=keys.heartbeat_pattern(stage), count=500):
        raw = await client.get(key)
        if raw is not None:
            name = key.decode()[len(prefix) :]
            found[name] = msgspec.json.decode(raw, type=Beat)
    return found
