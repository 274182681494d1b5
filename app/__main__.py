"""Run the front door: `python -m app` (settings from the environment, see the README).

With APP_WORKERS > 1, uvicorn runs that many front-door processes on one port; each has its own
Redis connections and token-channel subscriber, so they share nothing but the queues.
"""

from __future__ import annotations

import gc

import uvicorn
from starlette.applications import Starlette

from app.server import create_app
from app.settings import AppSettings
from app.transport import GatheringHttpToolsProtocol
from queues.config import RuntimeConfig, from_env
from queues.logs import setup_logging
from queues.media.config import MediaConfig


def app_from_env() -> Starlette:
    """The application factory each front-door process calls."""
    setup_logging()
    app = create_app(from_env(AppSettings), from_env(RuntimeConfig), MediaConfig.from_env())
    # The ~400k objects of the loaded libraries, tokenizer and chat template never become garbage, but
    # every full collection walked them: a 300-500 ms pause of the whole event loop every 10 s or so
    # under load (ops/bench/serve_bench.py at concurrency 32). Frozen, a full collection takes ~10 ms.
    gc.collect()
    gc.freeze()
    return app


def main() -> None:
    setup_logging()
    settings = from_env(AppSettings)
    uvicorn.run(
        "app.__main__:app_from_env",
        factory=True,
        workers=settings.app_workers,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=GatheringHttpToolsProtocol,  # httptools, a response's writes joined (app/transport.py)
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=30,
        # requests in flight get QUEUE_GRACE_S, then end with an error event (app/drain.py)
        timeout_graceful_shutdown=int(from_env(RuntimeConfig).grace_s) + 5,
    )


if __name__ == "__main__":
    main()
