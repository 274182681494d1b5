"""Start a mode's processes (`python -m ops.procfile`), wait until the front door says ready, stop
them all.

Shared by the end-to-end tests and the serving benchmark, so they launch the system the way `make
run` (ops/run.py, the same runner in process) does. `launch()` also starts a private Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ops.redis import RedisServer, free_port
from queues.types import MODES

ROOT = Path(__file__).resolve().parent.parent


class NotReady(RuntimeError):
    """The processes exited, or the front door did not become ready in time."""


def start_mode(mode: str, env: Mapping[str, str], *, new_session: bool = False) -> subprocess.Popen[bytes]:
    """`python -m ops.procfile -f ops/Procfile.<mode>` with this interpreter's bin/ first on PATH."""
    if mode not in MODES:
        raise ValueError(f"MODE={mode} is not one of {', '.join(MODES)}")
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}"
    full_env = {**os.environ, **env, "MODE": mode, "PATH": path, "PYTHONUNBUFFERED": "1"}
    procfile = ROOT / "ops" / f"Procfile.{mode}"
    cmd = [sys.executable, "-m", "ops.procfile", "-f", str(procfile)]
    return subprocess.Popen(cmd, env=full_env, cwd=ROOT, start_new_session=new_session)


def wait_ready(url: str, exited: Callable[[], str], timeout: float, instance: str = "") -> None:
    """Poll `url`/ready until it answers 200; raise NotReady if `exited()` names a process that exited,
    time runs out, or (with `instance`) the server's /health names another instance."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        gone = exited()
        if gone:
            raise NotReady(f"{gone} exited before the server was ready")
        try:
            if instance:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if json.load(response).get("instance") != instance:
                        raise NotReady(f"another server answers at {url}")
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise NotReady(f"the server was not ready after {timeout:.0f}s: {last}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGINT (what Ctrl-C sends: the runner drains every process), then SIGKILL past the timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait()


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


@contextlib.contextmanager
def launch(mode: str, model_dir: Path, env: dict[str, str] | None = None) -> Iterator[System]:
    """Start Redis and `ops/Procfile.<mode>`; stop everything at the end, Redis last."""
    with RedisServer() as redis:
        port = free_port()
        settings = {
            "MODEL": str(model_dir),
            "REDIS_URL": redis.url,
            "PORT": str(port),
            "MEDIA_ALLOW_HOSTS": "127.0.0.1",  # the tests' local media server
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        proc = start_mode(mode, settings, new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(
                url, lambda: "" if proc.poll() is None else f"the runner (code {proc.returncode})", 240
            )
            yield System(mode=mode, url=url, model_dir=model_dir, redis=redis, proc=proc)
        finally:
            stop(proc, timeout=60)
