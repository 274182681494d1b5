"""Encode stage: fetch and decode the request's media, run the vision/audio tower, publish the
embeddings, hand the job on to prefill (or pd).    python -m workers.encode"""

from __future__ import annotations

from queues.messages import Job
from queues.runtime import JobContext
from workers import steps
from workers.context import WorkerContext
from workers.stage import serve


async def handle(ctx: WorkerContext, job: Job, jctx: JobContext) -> Job | None:
    timings = steps.start_timings(job)
    items = await steps.encode(ctx, job, timings)
    encoded = await steps.publish_encoded(ctx, items)
    return steps.hand_on(job, ctx.stage, timings, encoded=encoded)


if __name__ == "__main__":
    serve("encode", handle, media=True, transfer=True)
