"""Decode stage: receive the KV cache, join the continuous batch, stream every token to the
client.    python -m workers.decode"""

from __future__ import annotations

from queues.messages import Job
from queues.runtime import JobContext
from workers import steps
from workers.context import WorkerContext
from workers.stage import serve


async def handle(ctx: WorkerContext, job: Job, jctx: JobContext) -> Job | None:
    timings = steps.start_timings(job)
    kv, state = await steps.receive_prefilled(ctx, job, timings)
    await steps.generate(ctx, jctx, job, kv, state, timings)
    return None


if __name__ == "__main__":
    serve("decode", handle, media=False, transfer=True)
