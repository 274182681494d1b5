"""Processes of the benchmark: start a command in its own process group and always stop the whole
group; meter the CPU time of a system's processes (and of this client) over a window."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil


@contextlib.contextmanager
def process_group(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` (output to `log`) in a new session; on exit SIGTERM its group, SIGKILL after 10 s."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError):  # stragglers of the group, the leader gone or not
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def short_name(proc: psutil.Process) -> str:
    """`python -m workers.agg` -> "agg", `python -m dynamo.frontend` -> "frontend", else the binary."""
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return "?"
    if "-m" in cmdline[:-1]:
        return str(cmdline[cmdline.index("-m") + 1]).rsplit(".", 1)[-1]
    # redis-server rewrites its title to "redis-server 127.0.0.1:PORT"
    return os.path.basename(cmdline[0]).split(" ")[0] if cmdline else str(proc.name())


class CpuMeter:
    """CPU seconds (user + system) per process name between `start()` and `stop()`: the processes under
    `roots` (pids, with their descendants) plus this process as "client"."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self._before: dict[int, tuple[str, float]] = {}
        self._client = 0.0

    def _processes(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    found[proc.pid] = (short_name(proc), times.user + times.system)
        return found

    def start(self) -> None:
        self._before = self._processes()
        self._client = time.process_time()

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {"client": time.process_time() - self._client}
        for pid, (name, cpu) in self._processes().items():
            before = self._before.get(pid, (name, 0.0))[1]
            used[name] = used.get(name, 0.0) + cpu - before
        return used
