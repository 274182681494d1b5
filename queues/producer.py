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
from queues.scripts import Call, Pooled, enqueue_script


class Producer:
    """Concurrent enqueues share one pipelined round trip (each entry's limit check stays atomic)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, backlog_limit: int) -> None:
        self.client = client
        self.keys = keys
        self.backlog_limit = backlog_limit
        commands = Pooled(client)
        self._batcher: Batcher[Call, Any] = Batcher(lambda calls: enqueue_script.many(commands, calls))

    async def enqueue(self, job: Job) -> str:
        """Add `job` to its stage's stream; returns the entry id. Raises BacklogFull at the limit."""
        keys, args = self.script_call(job)
        return self.entry_id(job, await self._batcher.submit((keys, args)))

    def script_call(self, job: Job) -> tuple[list[str], list[str | bytes | int]]:
        """(keys, args) of the enqueue script for `job`, stamped with the enqueue time."""
        job = msgspec.structs.replace(job, enqueued_at=time.time())
        args: list[str | bytes | int] = [self.backlog_limit]
        for name, value in encode_job(job).items():
            args += [name, value]
        return [self.keys.stream(job.stage)], args

    def command(self, job: Job) -> list[str | bytes | int]:
        """The whole EVALSHA command that enqueues `job`, for a caller sending it on its own
        connection (the front door sends it right behind its SUBSCRIBE)."""
        keys, args = self.script_call(job)
        return ["EVALSHA", enqueue_script.sha, len(keys), *keys, *args]

    def entry_id(self, job: Job, reply: Any) -> str:
        """The entry id from the script's reply; raises BacklogFull when it refused, or the error."""
        if isinstance(reply, Exception):
            raise reply
        if reply is None:
            raise BacklogFull(self.keys.stream(job.stage), self.backlog_limit)
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def load_script(self) -> None:
        await self.client.script_load(enqueue_script.source)
