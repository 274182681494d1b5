"""Aggregated stage (agg mode): one worker loads the media, encodes, prefills and decodes, every
tensor kept in process.    python -m workers.agg"""

from __future__ import annotations

from queues.messages import Job
from queues.runtime import JobContext
from workers import steps
from workers.context import WorkerContext
from workers.stage import serve


async def handle(ctx: WorkerContext, job: Job, jctx: JobContext) -> Job | None:
    timings = steps.start_timings(job)
    items = await steps.encode(ctx, job, timings) if job.request.media else []
    result = await steps.prefill(ctx, job, items, timings)
    await steps.generate(ctx, jctx, job, result.kv, result.state, timings)
    return None


if __name__ == "__main__":
    serve("agg", handle, media=True, transfer=False)
