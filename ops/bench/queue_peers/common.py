"""Driver shared by the queue benchmark's peers. Standard library only: each peer runs in its own
virtualenv (arq and taskiq-redis need incompatible redis-py versions) and imports this by path.

A peer module provides `reset(url)`, `enqueue(url, n, rate)` (coroutines) and `serve(url, recorder)`
(the worker, a coroutine that runs until the recorder has seen every job). The driver measures:

- throughput: `n` jobs enqueued first, then one worker started; jobs/s between the first and the
  last handler start;
- hop latency: one worker running, jobs enqueued at a fixed rate; enqueue -> handler start, per job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any


class Recorder:
    """Collects (enqueued, started) times in the worker; writes them and exits after `expect` jobs."""

    def __init__(self, expect: int, out: str) -> None:
        self.expect = expect
        self.out = out
        self.samples: list[tuple[float, float]] = []

    def started(self, enqueued_at: float) -> None:
        self.samples.append((enqueued_at, time.time()))
        if len(self.samples) >= self.expect:
            Path(self.out).write_text(json.dumps(self.samples))
            os._exit(0)


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--latency-jobs", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0, help="jobs/s in the latency phase")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--out", default="")
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(
    peer_file: str,
    reset: Callable[[str], Coroutine[Any, Any, None]],
    enqueue: Callable[[str, int, float], Coroutine[Any, Any, None]],
    serve: Callable[[str, Recorder], Coroutine[Any, Any, None]],
) -> None:
    args = _args()
    try:  # every peer runs on uvloop when its virtualenv has it (the bench installs it everywhere)
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.worker:
        asyncio.run(serve(args.redis_url, Recorder(args.expect, args.out)))
        return

    def run_worker(expect: int, before_wait: Callable[[], None] | None = None) -> list[Any]:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "samples.json")
            cmd = [sys.executable, peer_file, "--worker", "--redis-url", args.redis_url]
            proc = subprocess.Popen([*cmd, "--expect", str(expect), "--out", out])
            try:
                if before_wait is not None:
                    before_wait()
                if proc.wait(timeout=600) != 0 or not os.path.exists(out):
                    raise RuntimeError(f"{peer_file} worker failed")
            finally:
                if proc.poll() is None:
                    proc.kill()
            return list(json.loads(Path(out).read_text()))

    asyncio.run(reset(args.redis_url))
    asyncio.run(enqueue(args.redis_url, args.jobs, 0.0))
    starts = sorted(started for _, started in run_worker(args.jobs))
    throughput = (len(starts) - 1) / (starts[-1] - starts[0])

    asyncio.run(reset(args.redis_url))

    def paced() -> None:
        time.sleep(2.0)  # let the worker start and subscribe before the first job
        asyncio.run(enqueue(args.redis_url, args.latency_jobs, args.rate))

    hops = [(started - enqueued) * 1000 for enqueued, started in run_worker(args.latency_jobs, paced)]
    result = {
        "jobs_per_s": throughput,
        "hop_p50_ms": statistics.median(hops),
        "hop_p99_ms": percentile(hops, 0.99),
        "jobs": args.jobs,
        "latency_jobs": args.latency_jobs,
    }
    print(json.dumps(result), flush=True)


async def paced(n: int, rate: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call `send(i)` n times, at `rate` per second (0 = as fast as possible, 100 in flight)."""
    if rate <= 0:
        for start in range(0, n, 100):
            await asyncio.gather(*(send(i) for i in range(start, min(n, start + 100))))
        return
    began = time.monotonic()
    for i in range(n):
        delay = began + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)
