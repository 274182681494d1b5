"""A stage worker for the runtime's tests: the real runtime, a handler whose behaviour the job picks.

    python -m tests.fake_stage STAGE

The behaviour is the request's `model` field: `noop`, `sleep=S`, `fail` (raises every time),
`fatal`, `crash` (the process dies every time), `crash-once` (dies on the first delivery only),
`rerun` (asks for a re-run from the first stage once). Every execution is appended to the Redis
list `test:seen:<request id>` so tests can count them; the last stage publishes one final token
event.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from queues.config import RuntimeConfig
from queues.connection import connect
from queues.errors import ClientError, Rerun
from queues.messages import Job, TokenEvent
from queues.runner import run_worker
from queues.runtime import Handler, JobContext


@asynccontextmanager
async def make_handler(config: RuntimeConfig) -> AsyncIterator[Handler]:
    client = connect(config)

    async def handle(job: Job, ctx: JobContext) -> Job | None:
        behaviour = job.request.model
        record = f"{ctx.consumer}|{job.stage}|{ctx.deliveries}|{job.attempt}|{job.reruns}"
        await client.rpush(f"test:seen:{job.request.id}", record)
        if behaviour.startswith("sleep="):
            await asyncio.sleep(float(behaviour.split("=", 1)[1]))
        elif behaviour == "fail":
            raise ValueError("this job always fails")
        elif behaviour == "fatal":
            raise ClientError(422, "bad input for this job", code="bad_job")
        elif behaviour == "crash" or (behaviour == "crash-once" and ctx.deliveries == 1):
            os._exit(3)
        elif behaviour == "rerun" and job.reruns == 0 and job.stage != job.request.route[0]:
            raise Rerun(job.request.route[0], "the input tensor is gone")
        next_stage = job.next_stage()
        if next_stage is not None:
            return msgspec.structs.replace(job, stage=next_stage)
        await ctx.emit(TokenEvent(seq=0, token_ids=[7], texts=["done"], finish_reason="stop"))
        return None

    try:
        yield handle
    finally:
        await client.aclose()


if __name__ == "__main__":
    run_worker(sys.argv[1], make_handler, concurrency=int(os.environ.get("TEST_CONCURRENCY", "8")))
