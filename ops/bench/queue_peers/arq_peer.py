"""arq 0.28 as a queue benchmark peer (its own virtualenv: arq needs redis-py < 6)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Recorder, main, paced

recorder: Recorder | None = None


async def noop(ctx: dict[str, Any], enqueued_at: float) -> None:
    assert recorder is not None
    recorder.started(enqueued_at)


async def reset(url: str) -> None:
    pool = await create_pool(RedisSettings.from_dsn(url))
    await pool.flushall()
    await pool.aclose()


async def enqueue(url: str, n: int, rate: float) -> None:
    pool = await create_pool(RedisSettings.from_dsn(url))

    async def send(i: int) -> None:
        await pool.enqueue_job("noop", time.time())

    await paced(n, rate, send)
    await pool.aclose()


async def serve(url: str, rec: Recorder) -> None:
    global recorder
    recorder = rec
    worker = Worker(functions=[noop], redis_settings=RedisSettings.from_dsn(url), handle_signals=False)
    await worker.async_run()


if __name__ == "__main__":
    main(__file__, reset, enqueue, serve)
