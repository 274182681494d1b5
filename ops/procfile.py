"""Run the processes of a Procfile on one machine and stop them gracefully.

    python -m ops.procfile [-f ops/Procfile.agg] [--port 8000]

Each line `name: command` starts once, through `sh -c`, in its own session (a Ctrl-C in the terminal
reaches this runner only), with this interpreter's directory first on PATH, `PORT` = base + 100 x
its line index (the front door comes first and takes the base port; a worker serves its metrics on
its own) and `CONSUMER_NAME` = `<name>.1` unless the environment sets one. Output lines are
prefixed with the process name. When one process exits, or on SIGINT / SIGTERM, every process gets
SIGTERM at once and `QUEUE_GRACE_S` + 10 s to finish:
workers finish or hand back their jobs, the front door ends its open streams with an error event;
whatever is still running then is killed. Honcho runs the same Procfiles but kills everything 5 s
after the first process exits, which cuts a drain short.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from queues.config import RuntimeConfig, from_env

STOP_MARGIN_S = 10.0  # beyond QUEUE_GRACE_S, for a drained process to close its connections and exit
_print_lock = threading.Lock()


def parse(text: str) -> list[tuple[str, str]]:
    """(name, command) of each `name: command` line; blank lines and `#` comments skipped."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip() or " " in name.strip():
            raise ValueError(f"Procfile line {number} is not `name: command`: {line!r}")
        entries.append((name.strip(), command.strip()))
    if not entries:
        raise ValueError("the Procfile names no process")
    return entries


def say(name: str, line: str) -> None:
    with _print_lock:
        print(f"{time.strftime('%H:%M:%S')} {name:<10} | {line}", flush=True)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)  # the shell and what it started


class Runner:
    def __init__(
        self, entries: list[tuple[str, str]], env: Mapping[str, str], base_port: int, cwd: Path
    ) -> None:
        self.entries = entries
        self.env = dict(env)
        self.base_port = base_port
        self.cwd = cwd
        self.children: list[Child] = []
        self.stop_after_s = from_env(RuntimeConfig).grace_s + STOP_MARGIN_S
        self._stopping = False

    def start(self) -> Runner:
        # `python` in a Procfile is this interpreter (the virtualenv's), however the runner was started
        path = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        for index, (name, command) in enumerate(self.entries):
            env = {**self.env, "PATH": path, "PORT": str(self.base_port + 100 * index)}
            env.setdefault("CONSUMER_NAME", f"{name}.1")
            proc = subprocess.Popen(
                ["sh", "-c", f"exec {command}"],
                cwd=self.cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.children.append(Child(name, proc))
            threading.Thread(target=self._relay, args=(name, proc), daemon=True).start()
            say("runner", f"{name} started (pid {proc.pid})")
        return self

    def _relay(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            say(name, raw.decode(errors="replace").rstrip())

    def stop(self, reason: str) -> None:
        """SIGTERM every process, wait for them (`stop_after_s` at most), SIGKILL the rest."""
        if self._stopping:
            return
        self._stopping = True
        say("runner", f"{reason}: stopping every process (up to {self.stop_after_s:g} s)")
        for child in self.children:
            if child.proc.poll() is None:
                child.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_after_s
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say("runner", f"{child.name} did not stop in time: killed")
                child.signal(signal.SIGKILL)
                child.proc.wait()
        for child in self.children:
            say("runner", f"{child.name} exited ({child.proc.returncode})")

    def running(self) -> bool:
        return any(child.proc.poll() is None for child in self.children)

    def exited(self) -> Child | None:
        """A process that has exited, if any."""
        return next((child for child in self.children if child.proc.poll() is not None), None)

    def exited_name(self) -> str:
        """`name (code N)` of a process that has exited, else ""."""
        child = self.exited()
        return f"{child.name} (code {child.proc.returncode})" if child is not None else ""

    def run_until(self, stop_requested: Callable[[], str]) -> int:
        """Until a process exits or `stop_requested()` gives a reason; then stop every process.
        Returns the exit code of the process that ended the run (0 when asked to stop)."""
        while True:
            reason = stop_requested()
            if reason:
                self.stop(reason)
                return 0
            child = self.exited()
            if child is not None:
                code = child.proc.returncode
                self.stop(f"{child.name} exited with {code}")
                return code or 1
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-f", "--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args(argv)
    signals = StopSignals()
    runner = Runner(parse(args.procfile.read_text()), os.environ, args.port, Path.cwd()).start()
    sys.exit(runner.run_until(signals.reason))


class StopSignals:
    """SIGINT and SIGTERM noted instead of raised: the runner stops its processes in order."""

    def __init__(self) -> None:
        self.received: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, frame: self.received.append(signum))

    def reason(self) -> str:
        return f"{signal.Signals(self.received[0]).name} received" if self.received else ""


if __name__ == "__main__":
    main()
