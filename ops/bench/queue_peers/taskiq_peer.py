"""taskiq-redis's Redis Streams broker as a queue benchmark peer (its own virtualenv)."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import redis.asyncio as aioredis
from taskiq.api import run_receiver_task
from taskiq_redis import RedisStreamBroker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Recorder, main, paced

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# consumer_id "0": jobs enqueued before the worker starts are read (the default "$" skips them).
broker = RedisStreamBroker(URL, consumer_id="0")
recorder: Recorder | None = None


@broker.task  # type: ignore[untyped-decorator]  # taskiq is untyped
async def noop(enqueued_at: float) -> None:
    assert recorder is not None
    recorder.started(enqueued_at)


async def reset(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.aclose()


async def enqueue(url: str, n: int, rate: float) -> None:
    await broker.startup()

    async def send(i: int) -> None:
        await noop.kiq(time.time())

    await paced(n, rate, send)
    await broker.shutdown()


async def serve(url: str, rec: Recorder) -> None:
    global recorder
    recorder = rec
    await broker.startup()
    await run_receiver_task(broker)
    await asyncio.Event().wait()


if __name__ == "__main__":
    main(__file__, reset, enqueue, serve)
