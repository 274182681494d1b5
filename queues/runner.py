"""Process entry point shared by every stage worker: configuration, signals, event loop.

    run_worker("decode", make_handler)   # make_handler(config) -> async context manager of a Handler

SIGTERM and SIGINT stop reading; in-flight jobs get the grace period; the process exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import uvloop

from queues.config import RuntimeConfig, from_env
from queues.logs import setup_logging
from queues.metrics import PrometheusHooks, serve_metrics
from queues.runtime import Handler, Hooks, StageWorker

HandlerFactory = Callable[[RuntimeConfig], AbstractAsyncContextManager[Handler]]


async def serve(
    stage: str,
    make_handler: HandlerFactory,
    config: RuntimeConfig,
    *,
    concurrency: int,
    hooks: Hooks | None = None,
) -> None:
    async with make_handler(config) as handler:
        # Everything loaded so far (libraries, model) lives as long as the process: out of the
        # garbage collector's sight, a full collection takes milliseconds instead of a 200-500 ms
        # pause of the event loop under load.
        gc.collect()
        gc.freeze()
        worker = StageWorker(stage, handler, config, concurrency=concurrency, hooks=hooks)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()


def run_worker(
    stage: str, make_handler: HandlerFactory, *, concurrency: int, hooks: Hooks | None = None
) -> None:
    setup_logging()
    config = from_env(RuntimeConfig)
    port = serve_metrics()
    if port is not None:
        logging.getLogger(__name__).info("metrics on port %d", port)
    hooks = hooks or PrometheusHooks()
    uvloop.run(serve(stage, make_handler, config, concurrency=concurrency, hooks=hooks))
