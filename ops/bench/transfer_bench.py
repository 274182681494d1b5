"""Tensor-transfer benchmark: NIXL, shared memory and Redis between two processes vs memcpy.

    python -m ops.bench.transfer_bench                 # CPU; starts a private redis-server
    python -m ops.bench.transfer_bench --device cuda   # same table with CUDA tensors (no shm column)

An owner process publishes payloads of 1, 16, 64 and 256 MiB; this process fetches them (one
transfer each, its bytes checked once per size) and reports the fetch throughput (median of the
repetitions) against an in-process copy of the same size (the bound: a one-thread memcpy on CPU, a
device-to-device copy on CUDA), the
publish + fetch throughput, and the per-transfer latency at 4 KiB. `TRANSFER_*` variables apply to
both processes (buffer sizes and the device are set by the benchmark). Goals on CPU: NIXL at 64 MiB
>= 35 % of the copy, shared memory >= 70 %, both >= 5x Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy
import redis.asyncio as aioredis
import torch

from ops.redis import RedisServer
from queues.keys import Keys
from queues.transfer import TensorRef, TensorTransfer, TransferConfig, Transport, layout

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]
GOALS: dict[Transport, float] = {"nixl": 0.35, "shm": 0.70}
GOAL_SIZE = 64 * MiB
GOAL_VS_REDIS = 5.0


@dataclass
class Sample:
    publish_s: float
    fetch_s: float


# -- owner process ------------------------------------------------------------------------------


async def serve(redis_url: str, prefix: str, device: str, max_bytes: int) -> None:
    """Owner: read `{"transport", "nbytes", "digest"}` lines on stdin, publish, answer on stdout."""
    # Answers get the real stdout; everything else printed to fd 1 (NIXL's logging) goes to stderr.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    redis = aioredis.Redis.from_url(redis_url)
    base = msgspec.structs.replace(
        TransferConfig.from_env(), device=device, held_max_bytes=2 * max_bytes + MiB, pool_bytes=16 * MiB
    )
    owners: dict[str, TensorTransfer] = {}
    source = torch.randint(0, 256, (max_bytes,), dtype=torch.uint8, device=device)
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            request = json.loads(line)
            transport: Transport = request["transport"]
            kind: Transport = "shm" if transport == "shm" else "nixl"
            if kind not in owners:
                config = msgspec.structs.replace(base, transport=kind)
                owners[kind] = await TensorTransfer.start(redis, Keys(prefix), f"bench-owner-{kind}", config)
            payload = source[: request["nbytes"]]
            started = time.perf_counter()
            ref = await owners[kind].publish([payload], transport=transport)
            publish_s = time.perf_counter() - started
            answer = {
                "ref": base64.b64encode(msgspec.msgpack.encode(ref)).decode(),
                "publish_s": publish_s,
                "digest": layout.digest([payload]) if request["digest"] else "",
            }
            print(json.dumps(answer), file=answers, flush=True)
    finally:
        for owner in owners.values():
            await owner.close()
        await redis.aclose()


# -- reader / driver ----------------------------------------------------------------------------


class OwnerProcess:
    def __init__(self, redis_url: str, prefix: str, device: str, max_bytes: int) -> None:
        args = [
            sys.executable,
            "-m",
            "ops.bench.transfer_bench",
            "--serve",
            redis_url,
            "--prefix",
            prefix,
            "--device",
            device,
            "--max-bytes",
            str(max_bytes),
        ]
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    async def publish(self, transport: Transport, nbytes: int, digest: bool) -> tuple[TensorRef, float, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"transport": transport, "nbytes": nbytes, "digest": digest}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if not line:
            raise RuntimeError(f"owner process exited ({self.proc.poll()})")
        answer = json.loads(line)
        ref = msgspec.msgpack.decode(base64.b64decode(answer["ref"]), type=TensorRef)
        return ref, float(answer["publish_s"]), str(answer["digest"])

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def measure(
    owner: OwnerProcess, reader: TensorTransfer, transport: Transport, nbytes: int, reps: int
) -> list[Sample]:
    samples = []
    for rep in range(reps + 1):  # the first run warms pages and connections
        ref, publish_s, expected = await owner.publish(transport, nbytes, digest=rep == 0)
        if ref.transport != transport:
            raise RuntimeError(f"asked for {transport}, the owner chose {ref.transport}")
        started = time.perf_counter()
        received = await reader.fetch(ref)
        fetch_s = time.perf_counter() - started
        with received:
            if rep == 0 and layout.digest(received.tensors) != expected:
                raise RuntimeError(f"{transport}: the {nbytes} bytes received differ from those published")
        if rep:
            samples.append(Sample(publish_s, fetch_s))
    return samples


def copy_seconds(nbytes: int, device: str, reps: int) -> list[float]:
    """Times of an in-process copy of `nbytes`: memcpy (numpy, one thread) on CPU, a device-to-device
    copy on CUDA."""
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    if device.startswith("cuda"):

        def run() -> None:
            dst.copy_(src)
            torch.cuda.synchronize()
    else:
        src_array, dst_array = src.numpy(), dst.numpy()

        def run() -> None:
            numpy.copyto(dst_array, src_array)

    times = []
    for rep in range(reps + 1):
        started = time.perf_counter()
        run()
        if rep:
            times.append(time.perf_counter() - started)
    return times


def gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


async def run(args: argparse.Namespace) -> int:
    device = args.device
    sizes = [int(size) * MiB for size in args.sizes.split(",")]
    transports: list[Transport] = ["nixl", "redis"] if device.startswith("cuda") else ["nixl", "shm", "redis"]
    prefix = f"bench{os.getpid()}"
    async with AsyncExitStack() as stack:
        redis_url = args.redis_url
        if not redis_url:
            redis_url = stack.enter_context(RedisServer()).url
        redis = aioredis.Redis.from_url(redis_url)
        stack.push_async_callback(redis.aclose)
        owner = OwnerProcess(redis_url, prefix, device, max(sizes))
        stack.callback(owner.stop)
        reader_config = msgspec.structs.replace(
            TransferConfig.from_env(), device=device, pool_bytes=max(sizes) + 16 * MiB, read_timeout_s=120
        )
        reader = await TensorTransfer.start(redis, Keys(prefix), "bench-reader", reader_config)
        stack.push_async_callback(reader.close)

        rows = []
        for nbytes in sizes:
            bound = copy_seconds(nbytes, device, args.reps)
            results = {}
            for transport in transports:
                reps = min(args.reps, 3) if transport == "redis" and nbytes > 16 * MiB else args.reps
                results[transport] = await measure(owner, reader, transport, nbytes, reps)
            rows.append((nbytes, bound, results))
            print(f"measured {nbytes // MiB} MiB", file=sys.stderr, flush=True)

        latency: dict[Transport, list[float]] = {}
        for transport in [*transports, "inline"]:
            samples = await measure(owner, reader, transport, 4096, args.latency_reps)
            latency[transport] = sorted(sample.fetch_s for sample in samples)

    return report(rows, latency, transports, device)


Row = tuple[int, list[float], dict[Transport, list[Sample]]]
Pick = Callable[[list[float]], float]


def report(
    rows: list[Row], latency: dict[Transport, list[float]], transports: list[Transport], device: str
) -> int:
    bound = "device copy" if device.startswith("cuda") else "memcpy"
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n{device}, {os.cpu_count()} CPUs, load average {load}")
    failures = fetch_table(rows, transports, bound, "median", statistics.median)
    fetch_table(rows, transports, bound, "best run", min)

    print("\nPublish + fetch throughput, GB/s (median; publish copies into the send buffer)")
    print("| size | " + " | ".join(transports) + " |")
    print("|" + "---|" * (len(transports) + 1))
    for nbytes, _, results in rows:
        cells = [
            f"{gbps(nbytes, statistics.median([s.publish_s + s.fetch_s for s in results[t]])):.2f}"
            for t in transports
        ]
        print(f"| {nbytes // MiB} MiB | " + " | ".join(cells) + " |")

    print("\nFetch latency at 4 KiB, microseconds")
    print("| transport | median | p90 |")
    print("|---|---|---|")
    for transport, times in latency.items():
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
        print(f"| {transport} | {statistics.median(times) * 1e6:.0f} | {p90 * 1e6:.0f} |")

    if device.startswith("cuda"):
        return 0
    verdict = "all met" if not failures else "NOT MET: " + "; ".join(failures)
    print(f"\nGoals at 64 MiB (medians): {verdict}")
    return 1 if failures else 0


def fetch_table(
    rows: list[Row], transports: list[Transport], bound: str, label: str, pick: Pick
) -> list[str]:
    """Print fetch GB/s per size and transport against the copy bound; return the goals missed."""
    print(f"\nFetch throughput, GB/s ({label}); in brackets: share of the in-process {bound}")
    header = (
        f"| size | {bound} | "
        + " | ".join(transports)
        + " | "
        + " | ".join(f"{t}/redis" for t in transports if t != "redis")
        + " |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    failures = []
    for nbytes, copies, results in rows:
        copy = pick(copies)
        fetch = {t: pick([s.fetch_s for s in results[t]]) for t in transports}
        cells = [f"{gbps(nbytes, copy):.2f}"]
        cells += [f"{gbps(nbytes, fetch[t]):.2f} ({copy / fetch[t]:.0%})" for t in transports]
        cells += [f"{fetch['redis'] / fetch[t]:.1f}x" for t in transports if t != "redis"]
        print(f"| {nbytes // MiB} MiB | " + " | ".join(cells) + " |")
        if nbytes == GOAL_SIZE and bound == "memcpy":
            for transport, goal in GOALS.items():
                share, vs_redis = copy / fetch[transport], fetch["redis"] / fetch[transport]
                if share < goal or vs_redis < GOAL_VS_REDIS:
                    failures.append(
                        f"{transport}: {share:.0%} of memcpy (goal {goal:.0%}), "
                        f"{vs_redis:.1f}x redis (goal {GOAL_VS_REDIS:.0f}x)"
                    )
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,16,64,256", help="payload sizes in MiB (default 1,16,64,256)")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per size (after a warm-up)")
    parser.add_argument("--latency-reps", type=int, default=200, help="repetitions of the 4 KiB transfer")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--redis-url", default="", help="use this Redis instead of a private one")
    parser.add_argument("--serve", metavar="REDIS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--max-bytes", type=int, default=256 * MiB, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.prefix, args.device, args.max_bytes))
        return
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
