"""A whole system for fault tests, each process started on its own (not under a Procfile runner, which stops
everything when one process dies) so a test can SIGKILL, SIGSTOP and restart any of them, and stop
and restart Redis on the same port with no data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from ops.redis import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
STAGES = {"agg": ["agg"], "e-pd": ["encode", "pd"], "e-p-d": ["encode", "prefill", "decode"]}


class Cluster:
    def __init__(self, mode: str, model_dir: Path, env: dict[str, str] | None = None) -> None:
        self.mode = mode
        self.model_dir = model_dir
        self.redis_port = free_port()
        self.redis = RedisServer(port=self.redis_port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "MODEL": str(model_dir),
            "MODE": mode,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        for name in ("PORT", "WORKER_METRICS_PORT"):  # workers would serve metrics there
            self.env.pop(name, None)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def stages(self) -> list[str]:
        return STAGES[self.mode]

    def start(self) -> Cluster:
        self.redis.start()
        for stage in self.stages:
            self.start_worker(stage)
        self.start_app()
        self.wait_ready()
        return self

    def _spawn(self, name: str, module: str, extra: dict[str, str]) -> None:
        env = {**self.env, **extra}
        self.procs[name] = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env)

    def start_worker(self, stage: str, n: int = 1) -> None:
        self._spawn(f"{stage}.{n}", f"workers.{stage}", {"CONSUMER_NAME": f"{stage}.{n}"})

    def start_app(self) -> None:
        self._spawn("app", "app", {"PORT": str(self.port)})

    def signal(self, name: str, signum: int) -> None:
        self.procs[name].send_signal(signum)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, name: str) -> None:
        self.kill(name)
        if name == "app":
            self.start_app()
        else:
            stage, n = name.rsplit(".", 1)
            self.start_worker(stage, int(n))

    def stop_redis(self) -> None:
        self.redis.kill()

    def start_redis(self) -> None:
        self.redis = RedisServer(port=self.redis_port).start()

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"not ready within {timeout}s")

    async def wait_ready_async(self, within: float = 60) -> None:
        await asyncio.to_thread(self.wait_ready, within)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.redis.stop()


@contextlib.contextmanager
def cluster(mode: str, model_dir: Path, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    running = Cluster(mode, model_dir, env)
    try:
        yield running.start()
    finally:
        running.stop()
