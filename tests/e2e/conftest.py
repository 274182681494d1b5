"""The whole system for end-to-end tests: a private Redis and the processes of a mode's Procfile,
launched by the Procfile runner as `make run` launches it, plus a local HTTP server for media URLs."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.processes import System, launch
from queues.types import MODES
from tests.models import tiny_model_dir
from tests.unit.engine.oracle import Reference

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["MODES", "ROOT", "MediaServer", "System", "launch"]  # used by other suites and the benchmarks


@pytest.fixture(scope="module")
def reference(request: pytest.FixtureRequest) -> Reference:
    """Hugging Face `generate` on the module's `FAMILY` tiny model: the oracle."""
    return Reference(tiny_model_dir(request.module.FAMILY))


@pytest.fixture(scope="module", params=MODES)
def system(request: pytest.FixtureRequest) -> Iterator[System]:
    """The whole system serving the module's `FAMILY` tiny model, once per mode."""
    env = getattr(request.module, "SYSTEM_ENV", None)
    with launch(request.param, tiny_model_dir(request.module.FAMILY), env) as launched:
        yield launched


@pytest.fixture(scope="module")
def media_server() -> Iterator[MediaServer]:
    server = MediaServer()
    yield server
    server.close()


class MediaServer:
    """Serves registered byte strings at http://127.0.0.1:PORT/<name>."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        files = self.files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                entry = files.get(self.path.lstrip("/"))
                if entry is None:
                    self.send_error(404)
                    return
                body, content_type = entry
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, name: str, body: bytes, content_type: str) -> str:
        self.files[name] = (body, content_type)
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
