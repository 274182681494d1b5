"""Test helpers: processes started and always cleaned up, waiting on a condition, job factories."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from queues.messages import Job, Request, SamplingParams
from queues.types import Stage

ROOT = Path(__file__).resolve().parent.parent


class Processes:
    """Child processes of a test; every one still running is killed at the end."""

    def __init__(self, base_env: dict[str, str]) -> None:
        self.base_env = base_env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **self.base_env, **(env or {})}
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=full_env)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in self.procs:
            proc.wait()


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what or condition}")


def make_job(
    behaviour: str = "noop", route: tuple[Stage, ...] = ("prefill",), deadline_s: float = 120.0
) -> Job:
    now = time.time()
    request = Request(
        id=uuid.uuid4().hex,
        model=behaviour,
        prompt_ids=[1, 2, 3],
        sampling=SamplingParams(max_tokens=4, seed=1),
        route=list(route),
        deadline=now + deadline_s,
        created=now,
    )
    return Job(request=request, stage=route[0])
