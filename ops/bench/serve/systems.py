"""This project under test (launched exactly as `make run` and the end-to-end tests do), and the
trivial server that bounds the load client."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ops.bench.serve.procs import process_group
from ops.bench.serve.target import Target
from ops.processes import ROOT, launch
from ops.redis import free_port

# NVIDIA Dynamo's mocker (1.6.1, default polynomial timing) models a prefill of t new tokens as
# 16.5 ms + 0.0152 ms * t and a decode step as ~5.8 ms at low KV occupancy; at --speedup-ratio 1000
# that is ~17 us for the benchmark's ~50-token prompts and ~6 us a step. The mock engine gets the same.
MOCK_ENV = {
    "MOCK_PREFILL_TOKEN_S": "3.5e-7",
    "MOCK_DECODE_STEP_S": "6e-6",
    "MOCK_ENCODE_ITEM_S": "0",
}


@contextlib.contextmanager
def triptych(mode: str, model_dir: Path, engine: str) -> Iterator[Target]:
    env = {"ENGINE": engine, **(MOCK_ENV if engine == "mock" else {})}
    with launch(mode, model_dir, env) as system:
        redis = system.redis.process
        timing = (
            "prefill 0.35 us/token, decode 6 us/step (the mocker's timings / 1000)"
            if engine == "mock"
            else f"{'sglang' if engine == 'sglang' else 'transformers'} on CPU, float32"
        )
        yield Target(
            name=f"triptych {engine}",
            host="127.0.0.1",
            port=int(system.url.rsplit(":", 1)[1]),
            model=model_dir.name,
            config=f"ENGINE={engine}, MODE={mode} (ops/Procfile.{mode}) + Redis; {timing}",
            pids=[system.proc.pid] + ([redis.pid] if redis is not None else []),
        )


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f}s")


@contextlib.contextmanager
def trivial(tokens: int, log_dir: Path) -> Iterator[Target]:
    port = free_port()
    cmd = [sys.executable, "-m", "ops.bench.serve.trivial", "--port", str(port), "--tokens", str(tokens)]
    with process_group(cmd, dict(os.environ), log_dir / "trivial.log", cwd=ROOT) as proc:
        _wait_port(port, 30)
        config = "canned answers from bytes prepared at start (uvloop + httptools, one process)"
        yield Target("trivial server", "127.0.0.1", port, "trivial", config, [proc.pid])
