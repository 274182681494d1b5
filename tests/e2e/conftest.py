"""The whole system for end-to-end tests: a private Redis and the processes of a mode's Procfile,
launched with honcho exactly as `make run` does, plus a local HTTP server for media URLs."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ops.redis import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
MODES = ["agg", "e-pd", "e-p-d"]


@dataclass
class System:
    mode: str
    url: str
    model_dir: Path
    redis: RedisServer
    proc: subprocess.Popen[bytes]

    @property
    def api(self) -> str:
        return self.url + "/v1"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the system exited with {proc.returncode} before it was ready")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url + "/ready", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the system at {url} was not ready within {timeout}s")


@contextlib.contextmanager
def launch(mode: str, model_dir: Path, env: dict[str, str] | None = None) -> Iterator[System]:
    """Start Redis and `ops/Procfile.<mode>` under honcho; stop everything at the end."""
    with RedisServer() as redis:
        port = free_port()
        full_env = {
            **os.environ,
            "MODEL": str(model_dir),
            "REDIS_URL": redis.url,
            "MODE": mode,
            "PORT": str(port),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "MEDIA_ALLOW_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        procfile = ROOT / "ops" / f"Procfile.{mode}"
        cmd = [sys.executable, "-m", "honcho", "-f", str(procfile), "-d", str(ROOT), "start"]
        proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, proc, timeout=240)
            yield System(mode=mode, url=url, model_dir=model_dir, redis=redis, proc=proc)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


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
