"""The bound: a bare redis-py loop (XREADGROUP COUNT 100 -> handle -> pipelined XACK), no guarantees."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import redis.asyncio as aioredis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Recorder, main, paced

STREAM, GROUP = "bare:jobs", "bare"


async def reset(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    await client.flushall()
    await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    await client.aclose()


async def enqueue(url: str, n: int, rate: float) -> None:
    client = aioredis.Redis.from_url(url)

    async def send(i: int) -> None:
        await client.xadd(STREAM, {"ts": repr(time.time())})

    await paced(n, rate, send)
    await client.aclose()


async def serve(url: str, recorder: Recorder) -> None:
    client = aioredis.Redis.from_url(url)
    while True:
        reply: Any = await client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=100, block=1000)
        pipe = client.pipeline(transaction=False)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                recorder.started(float(fields[b"ts"]))
                pipe.xack(STREAM, GROUP, entry_id)
        await pipe.execute()


if __name__ == "__main__":
    main(__file__, reset, enqueue, serve)
