"""A stage worker process from one function: `serve(STAGE, handle, media=..., transfer=...)`.

`handle(ctx, job, jctx)` gets the process's WorkerContext (engine, media loader, tensor transfer),
the job and its JobContext, and returns the next stage's job or None; everything else (reading,
acknowledging, retries, shutdown) is the queues runtime.

A worker that cannot start with its configuration (a bad value, a DEVICE this machine lacks, no room
for the KV cache) logs one line saying which setting and why, and exits with code 2.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from queues.config import ConfigError, RuntimeConfig
from queues.messages import Job
from queues.runner import run_worker
from queues.runtime import Handler, JobContext
from queues.types import Stage
from workers.context import WorkerContext, open_context
from workers.settings import WorkerSettings

StageFunction = Callable[[WorkerContext, Job, JobContext], Awaitable[Job | None]]


def handler_factory(
    stage: Stage, handle: StageFunction, *, media: bool, transfer: bool
) -> Callable[[RuntimeConfig], AbstractAsyncContextManager[Handler]]:
    @asynccontextmanager
    async def make_handler(runtime: RuntimeConfig) -> AsyncIterator[Handler]:
        async with open_context(stage, runtime, media=media, transfer=transfer) as worker:

            async def handler(job: Job, ctx: JobContext) -> Job | None:
                return await handle(worker, job, ctx)

            yield handler

    return make_handler


def serve(stage: Stage, handle: StageFunction, *, media: bool, transfer: bool) -> None:
    factory = handler_factory(stage, handle, media=media, transfer=transfer)
    try:
        run_worker(stage, factory, concurrency=WorkerSettings.concurrency_from_env(stage))
    except ConfigError as exc:  # the message names the variable: a traceback would only hide it
        logging.getLogger(__name__).critical("the %s worker cannot start: %s", stage, exc)
        raise SystemExit(2) from None
