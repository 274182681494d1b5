"""What the autoscaler reads from Redis each round: per stage, the backlog, the group's consumers and
which of them have a live heartbeat.

`lag` (entries not yet delivered to the group) comes from XINFO GROUPS; Redis older than 7 has no
such field and Redis 7 reports it as null when deletions make it unknowable, so it is then computed
as XLEN - pending: the runtime deletes an entry when it acknowledges it, so the stream holds exactly
the entries waiting plus those being worked on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from ops.autoscale.decide import Backlog
from queues.heartbeat import live_consumers
from queues.keys import Keys


@dataclass(frozen=True)
class Consumer:
    name: str
    pending: int  # entries delivered to it and not acknowledged
    idle_ms: int  # since its last read or claim


@dataclass(frozen=True)
class StageState:
    backlog: Backlog
    consumers: tuple[Consumer, ...]  # members of the stage's consumer group
    live: frozenset[str]  # consumer names with an unexpired heartbeat


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def backlog_of(length: Any, groups: Any, group: str) -> Backlog:
    """The backlog from an XLEN reply and an XINFO GROUPS reply (either may be an error: no stream)."""
    length = length if isinstance(length, int) else 0
    for info in groups if isinstance(groups, list) else []:
        if _text(info.get("name")) != group:
            continue
        pending = int(info.get("pending") or 0)
        lag = info.get("lag")
        if lag is None:
            return Backlog(lag=max(length - pending, 0), pending=pending, lag_reported=False)
        return Backlog(lag=int(lag), pending=pending)
    return Backlog(lag=length, pending=0, lag_reported=False)  # no group yet: everything waits


def consumers_of(reply: Any) -> tuple[Consumer, ...]:
    """Consumers from an XINFO CONSUMERS reply (an error when the group does not exist yet)."""
    rows: Sequence[Mapping[str, Any]] = reply if isinstance(reply, list) else []
    return tuple(
        Consumer(_text(row.get("name")), int(row.get("pending") or 0), int(row.get("idle") or 0))
        for row in rows
    )


async def observe(client: aioredis.Redis, keys: Keys, stages: Sequence[str]) -> dict[str, StageState]:
    """One round trip for the streams and groups of every stage, then the heartbeats."""
    pipe = client.pipeline(transaction=False)
    for stage in stages:
        pipe.xlen(keys.stream(stage))
        pipe.xinfo_groups(keys.stream(stage))
        pipe.xinfo_consumers(keys.stream(stage), keys.group(stage))
    replies = await pipe.execute(raise_on_error=False)
    states: dict[str, StageState] = {}
    for i, stage in enumerate(stages):
        length, groups, consumers = replies[3 * i : 3 * i + 3]
        live = await live_consumers(client, keys, stage)
        states[stage] = StageState(
            backlog=backlog_of(length, groups, keys.group(stage)),
            consumers=consumers_of(consumers),
            live=frozenset(live),
        )
    return states
