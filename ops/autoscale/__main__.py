"""`python -m ops.autoscale`: run the autoscaler until SIGTERM / SIGINT (see ops/autoscale/__init__.py)."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from ops.autoscale.loop import Autoscaler
from ops.autoscale.metrics import AutoscaleMetrics
from ops.autoscale.settings import AutoscaleSettings
from queues.config import ConfigError, RuntimeConfig, from_env
from queues.connection import check_server, connect
from queues.logs import setup_logging

log = logging.getLogger("ops.autoscale")


async def serve(settings: AutoscaleSettings, runtime: RuntimeConfig) -> None:
    metrics = AutoscaleMetrics()
    server = None
    if settings.metrics_port:
        server, _ = start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics.registry)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    client = connect(runtime)
    autoscaler = Autoscaler(settings, runtime, client, metrics)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, autoscaler.stop)
    try:
        info = await check_server(client)
        log.info("Redis %s; scaling %s", info["version"], ", ".join(autoscaler.stages))
    except (RedisError, OSError) as exc:
        log.warning("Redis not reachable yet (%s): the rounds will retry", exc)
    try:
        await autoscaler.run()
    finally:
        await client.aclose()
        if server is not None:
            server.shutdown()


def main() -> None:
    setup_logging()
    try:
        settings, runtime = from_env(AutoscaleSettings), from_env(RuntimeConfig)
    except ConfigError as exc:  # the message names the variable: a traceback would only hide it
        log.critical("the autoscaler cannot start: %s", exc)
        raise SystemExit(2) from None
    uvloop.run(serve(settings, runtime))


if __name__ == "__main__":
    main()
