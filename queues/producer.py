"""Enqueue a job on a stage's stream, refusing (never dropping) when the backlog is at its limit."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import redis.asyncio as aioredis

from queues.batching import Batcher
from queues.errors import BacklogFull
from queues.keys import Keys
from queues.messages import Job, encode_job
from queues.scripts import Call, enqueue_script


class Producer:
    """Concurrent enqueues share one pipelined round trip (each entry's limit check stays atomic)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, backlog_limit: int) -> None:
        self.client = client
        self.keys = keys
        self.backlog_limit = backlog_limit
        self._batcher: Batcher[Call, Any] = Batcher(lambda calls: enqueue_script.many(self.client, calls))

    async def enqueue(self, job: Job) -> str:
        """Add `job` to its stage's stream; returns the entry id. Raises BacklogFull at the limit."""
        job = msgspec.structs.replace(job, enqueued_at=time.time())
        stream = self.keys.stream(job.stage)
        args: list[str | bytes | int] = [self.backlog_limit]
        for name, value in encode_job(job).items():
            args += [name, value]
        entry_id = await self._batcher.submit(([stream], args))
        if isinstance(entry_id, Exception):
            raise entry_id
        if entry_id is None:
            raise BacklogFull(stream, self.backlog_limit)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
