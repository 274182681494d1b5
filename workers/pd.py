"""Prefill+decode stage (e-pd mode): receive the embeddings, prefill, then decode in the same
process with the KV cache kept local.    python -m workers.pd"""

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
    await steps.generate(ctx, jctx, job, result.kv, result.state, timings)
    return None


if __name__ == "__main__":
    serve("pd", handle, media=False, transfer=True)
