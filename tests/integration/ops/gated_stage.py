"""A stage worker for the autoscaler tests: tests/fake_stage.py, plus jobs that wait for a gate.

    python -m tests.integration.ops.gated_stage STAGE

Behaviour `gate=NAME` (the request's `model` field): the job stays in flight until the Redis stream
`test:gate:NAME` has an entry (`open_gate`), then runs as a fake_stage `noop` (recorded in
`test:seen:<request id>`, finished). So a test decides when work ends, and no assertion depends
on how fast processes start on a busy machine. Every other behaviour is fake_stage's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import redis.asyncio as aioredis

from queues.config import RuntimeConfig
from queues.connection import connect
from queues.messages import Job
from queues.runner import run_worker
from queues.runtime import Handler, JobContext
from tests import fake_stage

WAIT_MS = 500


def gate_key(name: str) -> str:
    return f"test:gate:{name}"


async def open_gate(client: aioredis.Redis, name: str) -> None:
    """Let every job waiting on gate `name` (and every later one) finish."""
    await client.xadd(gate_key(name), {"open": 1})


@asynccontextmanager
async def make_handler(config: RuntimeConfig) -> AsyncIterator[Handler]:
    client = connect(config, blocking_ms=WAIT_MS)
    async with fake_stage.make_handler(config) as fake:

        async def handle(job: Job, ctx: JobContext) -> Job | None:
            behaviour = job.request.model
            if not behaviour.startswith("gate="):
                return await fake(job, ctx)
            gate = gate_key(behaviour.split("=", 1)[1])
            while not await client.xread({gate: "0"}, count=1, block=WAIT_MS):
                pass  # closed: wait again
            request = msgspec.structs.replace(job.request, model="noop")
            return await fake(msgspec.structs.replace(job, request=request), ctx)

        try:
            yield handle
        finally:
            await client.aclose()


if __name__ == "__main__":
    run_worker(sys.argv[1], make_handler, concurrency=int(os.environ.get("TEST_CONCURRENCY", "8")))
