"""Prefill stage: receive the embeddings, run the prompt through the language model, publish the
KV cache and the decode state, hand the job on to decode.    python -m workers.prefill"""

from __future__ import annotations

from queues.messages import Job
from queues.runtime import JobContext
from workers import steps
from workers.context import WorkerContext
from workers.stage import serve


async def handle(ctx: WorkerContext, job: Job, jctx: JobContext) -> Job | None:
    timings = steps.start_timings(job)
    items = await steps.receive_encoded(ctx, job, timings)
    result = await steps.prefill(ctx, job, items, timings)
    prefilled = await steps.publish_prefilled(ctx, result)
    return steps.hand_on(job, ctx.stage, timings, prefilled=prefilled)


if __name__ == "__main__":
    serve("prefill", handle, media=False, transfer=True)
