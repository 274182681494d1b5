"""Which stages can run a job now: live workers (heartbeats) and autoscalers that start them.

The front door asks before it accepts a request: a job for a stage with no live worker would wait
until its deadline. `WorkerWatch` keeps a view refreshed every `interval_s` in the background, so
the common case (every stage has a worker) costs no round trip; a view that says a stage has no
worker is checked again against Redis before anyone is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queues.keys import Keys
from queues.stopping import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capacity:
    live: dict[str, int] = field(default_factory=dict)  # stage -> workers with a live heartbeat
    scalable: frozenset[str] = frozenset()  # stages an autoscaler starts workers of on demand

    def missing(self, stages: Sequence[str]) -> list[str]:
        """The stages of `stages` without a live worker."""
        return [stage for stage in stages if not self.live.get(stage)]


async def read_capacity(client: aioredis.Redis, keys: Keys, stages: Sequence[str]) -> Capacity:
    live = dict.fromkeys(stages, 0)
    prefix = keys.heartbeat_prefix
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        stage = key.decode()[len(prefix) :].split(":", 1)[0]
        if stage in live:
            live[stage] += 1
    flags = await client.mget([keys.scaler(stage) for stage in stages])
    scalable = frozenset(stage for stage, flag in zip(stages, flags, strict=True) if flag is not None)
    return Capacity(live, scalable)


class WorkerWatch:
    def __init__(self, client: aioredis.Redis, keys: Keys, stages: Sequence[str], interval_s: float) -> None:
        self._client = client
        self._keys = keys
        self._stages = stages
        self._interval_s = interval_s
        self._view: Capacity | None = None
        self._task: asyncio.Task[None] | None = None
        self._reading: asyncio.Future[Capacity] | None = None
        self._closing = asyncio.Event()

    async def start(self) -> None:
        """Read the view once (so requests never find none), then keep it fresh in the background."""
        self._closing = asyncio.Event()
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="worker-watch")

    async def close(self) -> None:
        """Stop between two reads: a cancellation that lands inside redis-py's connection pool can be
        lost (Python 3.11's `wait_for`), which left this task running."""
        if self._task is None:
            return
        self._closing.set()
        await asyncio.wait([self._task], timeout=5.0)
        await cancel_and_wait(self._task)

    async def missing(self, stages: Sequence[str]) -> tuple[list[str], Capacity]:
        """The stages of `stages` with no live worker (re-read from Redis before saying any), and
        the view that says so."""
        view = self._view
        if view is not None and not view.missing(stages):
            return [], view
        view = await self.refresh()
        return view.missing(stages), view

    async def refresh(self) -> Capacity:
        """A fresh view; callers arriving while a read is under way share it (a burst of refused
        requests makes one read, not one each)."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(read_capacity(self._client, self._keys, self._stages))
        self._view = await asyncio.shield(self._reading)
        return self._view

    async def _run(self) -> None:
        while not self._closing.is_set():
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:  # admission fails on its own then; keep the last view
                log.debug("worker watch: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._closing.wait()
