"""This project's runtime as a queue benchmark peer: every guarantee on (ownership-checked settle,
lease renewal, reclaim, heartbeats, cancellation), one worker with 128 slots, no-op handler."""

from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import redis.asyncio as aioredis  # noqa: E402
from common import Recorder, main, paced  # noqa: E402

from queues.config import RuntimeConfig  # noqa: E402
from queues.keys import Keys  # noqa: E402
from queues.messages import Job, Request, SamplingParams  # noqa: E402
from queues.producer import Producer  # noqa: E402
from queues.runtime import JobContext, StageWorker  # noqa: E402
from queues.types import Stage  # noqa: E402

STAGE: Stage = "agg"


def _job(i: int) -> Job:
    now = time.time()
    request = Request(
        id=f"job-{i}",
        model="noop",
        prompt_ids=[],
        sampling=SamplingParams(max_tokens=1, seed=0),
        route=[STAGE],
        deadline=now + 3600,
        created=now,
    )
    return Job(request=request, stage=STAGE)


async def reset(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.aclose()


async def enqueue(url: str, n: int, rate: float) -> None:
    client = aioredis.Redis.from_url(url)
    producer = Producer(client, Keys(), backlog_limit=0)

    async def send(i: int) -> None:
        await producer.enqueue(_job(i))

    await paced(n, rate, send)
    await client.aclose()


async def serve(url: str, recorder: Recorder) -> None:
    async def handler(job: Job, ctx: JobContext) -> Job | None:
        recorder.started(job.enqueued_at)
        return None

    worker = StageWorker(STAGE, handler, RuntimeConfig(redis_url=url), concurrency=128)
    await worker.run()


if __name__ == "__main__":
    main(__file__, reset, enqueue, serve)
