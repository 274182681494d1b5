"""Serving benchmark: requests/s, time to first token, inter-token and end-to-end latency of the whole
system over HTTP, with the mock engine (the system's own overhead) and the real tiny model.

    python -m ops.bench.serve_bench                      # agg mode, mock engine and real tiny model
    python -m ops.bench.serve_bench --peer dynamo        # + NVIDIA Dynamo 1.6.1 frontend + mocker
    python -m ops.bench.serve_bench --quick              # a short smoke run
    python -m ops.bench.serve_bench --mode e-p-d --images 1 --engine hf

Closed loop at each `--concurrency` (every user sends its next request when the last one ends) and an
open loop of Poisson arrivals at `--rate` (default: half the lowest closed-loop req/s at concurrency
32 among the systems compared), streaming and not. Every request asks for `--tokens` tokens with
`ignore_eos`; a request counts when it ends inside the measured window with exactly that many
completion tokens (a closed-loop window closes only once every user has had two more answers, so a
slow system is measured over a longer one). With `--peer dynamo`, Dynamo (installed on first use
into .bench/dynamo/) runs beside our system with the mock engine, and the goal cell (concurrency 32)
is measured `--repeats` times alternating between the two. The load client's own ceiling is measured
against a trivial server first. Tables go to stdout; progress and the systems' output before them.
Environment variables reach our processes (e.g. OMP_NUM_THREADS=1 for the real model on few CPUs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvloop

from ops.bench.serve import dynamo as dynamo_peer
from ops.bench.serve.load import Run, closed_loop, open_loop
from ops.bench.serve.procs import CpuMeter
from ops.bench.serve.report import (
    STALL_MS,
    Row,
    ceiling_table,
    goal_table,
    keep_alive_table,
    stalled,
    sweep_table,
)
from ops.bench.serve.systems import MOCK_ENV, triptych, trivial
from ops.bench.serve.target import Target, answer_text, png_data_url, probe
from ops.tiny_model import build

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / ".bench"
GOAL_CONCURRENCY = 32
FULL = {"concurrency": "1,8,32,64", "duration": 5.0, "warmup": 1.0, "repeats": 3}
QUICK = {"concurrency": "1,32", "duration": 2.0, "warmup": 0.5, "repeats": 1}


@dataclass
class Plan:
    mode: str
    concurrency: list[int]
    rate: float  # 0: automatic
    warmup_s: float
    duration_s: float
    repeats: int
    tokens: int
    images: list[str]


class Bench:
    """Runs cells (one system, one load) on one event loop and keeps the rows."""

    def __init__(self, runner: asyncio.Runner, plan: Plan) -> None:
        self.runner = runner
        self.plan = plan
        self.stall_ms: float | None = None  # a p99 above it is marked (mock engines)

    def closed(self, target: Target, concurrency: int, stream: bool, keep_alive: bool = True) -> Run:
        plan = self.plan
        work = target.workload(stream, plan.tokens, plan.images, keep_alive)
        meter = CpuMeter(target.pids)
        return self.runner.run(closed_loop(work, concurrency, plan.warmup_s, plan.duration_s, meter))

    def open(self, target: Target, rate: float, stream: bool) -> Run:
        plan = self.plan
        work = target.workload(stream, plan.tokens, plan.images)
        meter = CpuMeter(target.pids)
        return self.runner.run(open_loop(work, rate, plan.warmup_s, plan.duration_s, meter))

    def cell(self, target: Target, load: str, stream: bool, run: Run) -> Row:
        row = Row(target.name, load, stream, [run])
        kind = "streaming" if stream else "plain"
        note = f", {row.errors} errors (first: {row.first_error})" if row.errors else ""
        if stalled(row, self.stall_ms):
            note += f", p99 above {self.stall_ms:.0f} ms: a stall"
        print(
            f"  {target.name:>16} {load:<14} {kind:<9} {row.rps:8.1f} req/s{note}",
            file=sys.stderr,
            flush=True,
        )
        return row

    def sweep(self, targets: list[Target]) -> list[Row]:
        """Every closed-loop concurrency, then the open loop, on each target in turn per cell."""
        rows: list[Row] = []
        for stream in (True, False):
            for concurrency in self.plan.concurrency:
                for target in targets:
                    run = self.closed(target, concurrency, stream)
                    rows.append(self.cell(target, f"closed c={concurrency}", stream, run))
            rate = self.plan.rate or self._auto_rate([row for row in rows if row.stream == stream])
            for target in targets:
                rows.append(self.cell(target, f"open {rate:.0f}/s", stream, self.open(target, rate, stream)))
        return sorted(rows, key=lambda row: (not row.stream, _load_order(row.load)))

    def _auto_rate(self, rows: list[Row]) -> float:
        def level(row: Row) -> int:
            return int(row.load.split("=")[1])

        eligible = [row for row in rows if level(row) <= GOAL_CONCURRENCY] or rows
        top = max(level(row) for row in eligible)
        return max(1.0, 0.5 * min(row.rps for row in eligible if level(row) == top))

    def goal(self, ours: Target, peer: Target) -> tuple[list[Row], list[Row]]:
        """The goal cell, `repeats` times per system, alternating which goes first."""
        mine, theirs = [], []
        for stream in (True, False):
            runs: dict[str, list[Run]] = {ours.name: [], peer.name: []}
            for repeat in range(self.plan.repeats):
                order = (ours, peer) if repeat % 2 == 0 else (peer, ours)
                for target in order:
                    run = self.closed(target, GOAL_CONCURRENCY, stream)
                    runs[target.name].append(run)
                    self.cell(target, f"goal #{repeat + 1}", stream, run)
            load = f"closed c={GOAL_CONCURRENCY}"
            mine.append(Row(ours.name, load, stream, runs[ours.name]))
            theirs.append(Row(peer.name, load, stream, runs[peer.name]))
        return mine, theirs

    def keep_alive(self, targets: list[Target]) -> list[Row]:
        """Streaming at concurrency 1 over one kept-alive connection, and over a new one per request."""
        rows = []
        for target in targets:
            for keep in (True, False):
                run = self.closed(target, 1, True, keep_alive=keep)
                rows.append(self.cell(target, "kept-alive" if keep else "new conn", True, run))
        return rows


def _load_order(load: str) -> tuple[int, float]:
    kind, _, value = load.partition(" ")
    number = float(value.split("=")[-1].rstrip("/s"))
    return (0 if kind == "closed" else 1, number)


def model_dir(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    target = BENCH_DIR / "serve" / "tiny-qwen2-vl"
    if not (target / "config.json").exists():
        print(f"building the tiny qwen2-vl model into {target}", file=sys.stderr, flush=True)
        build("qwen2-vl", target)
    return target


@contextlib.contextmanager
def systems(plan: Plan, model: Path, engine: str, peer: bool) -> Iterator[list[Target]]:
    with contextlib.ExitStack() as stack:
        print(f"starting triptych ({engine} engine, {plan.mode}) ...", file=sys.stderr, flush=True)
        targets = [stack.enter_context(triptych(plan.mode, model, engine))]
        if peer:
            print("starting NVIDIA Dynamo frontend + mocker ...", file=sys.stderr, flush=True)
            log_dir = BENCH_DIR / "serve" / "logs"
            targets.append(stack.enter_context(dynamo_peer.dynamo(model, plan.tokens, BENCH_DIR, log_dir)))
        yield targets


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["agg", "e-pd", "e-p-d"], default="agg")
    parser.add_argument("--engine", choices=["mock", "hf", "sglang", "both"], default="both")
    parser.add_argument(
        "--peer", choices=["dynamo"], help="run NVIDIA Dynamo 1.6.1 side by side (mock engine)"
    )
    parser.add_argument("--concurrency", help="closed-loop users, comma-separated (default: 1,8,32,64)")
    parser.add_argument("--rate", type=float, default=0.0, help="open-loop arrivals/s (default: automatic)")
    parser.add_argument("--duration", type=float, help="measured seconds per cell, at least (default: 5)")
    parser.add_argument("--warmup", type=float, help="seconds before each measured window (default: 1)")
    parser.add_argument("--repeats", type=int, help="alternating runs of the goal cell (default: 3)")
    parser.add_argument("--tokens", type=int, default=16, help="output tokens per request")
    parser.add_argument("--images", type=int, default=0, help="images per request (our system only)")
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: the tiny qwen2-vl)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the client-ceiling measurement")
    parser.add_argument("--quick", action="store_true", help="smoke run: c=1,32, 2 s cells, one goal run")
    args = parser.parse_args(argv)
    if args.peer and args.engine == "hf":
        parser.error("the peer runs beside the mock engine: use --engine mock or both")
    if args.peer and args.images:
        parser.error("--images applies to our system only; leave it out when comparing with a peer")
    for key, full in FULL.items():  # what was not given: the quick or the full run's value
        if getattr(args, key) is None:
            setattr(args, key, QUICK[key] if args.quick else full)
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop every system on SIGTERM too
    model = model_dir(args.model)
    plan = Plan(
        mode=args.mode,
        concurrency=[int(c) for c in args.concurrency.split(",")],
        rate=args.rate,
        warmup_s=args.warmup,
        duration_s=args.duration,
        repeats=args.repeats,
        tokens=args.tokens,
        images=[png_data_url()] * args.images,
    )
    engines = ["mock", "hf"] if args.engine == "both" else [args.engine]
    before = os.getloadavg()
    out: list[str] = []
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        bench = Bench(runner, plan)
        if not args.no_ceiling:
            out += client_ceiling(bench)
        for engine in engines:
            out += compare(bench, model, engine, bool(args.peer) and engine == "mock")
    header = (
        f"## Serving benchmark: {plan.mode} mode, {plan.tokens} output tokens a request, "
        f"{plan.duration_s:g} s measured per cell after {plan.warmup_s:g} s warm-up, "
        f"{os.cpu_count()} CPUs, load client and systems on the same machine "
        f"(load average {before[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)"
    )
    print("\n" + "\n\n".join([header, *out]), flush=True)


def client_ceiling(bench: Bench) -> list[str]:
    print("measuring the load client against a trivial server ...", file=sys.stderr, flush=True)
    rows = []
    with trivial(bench.plan.tokens, BENCH_DIR / "serve" / "logs") as target:
        for stream in (True, False):
            run = bench.closed(target, GOAL_CONCURRENCY, stream)
            rows.append(bench.cell(target, f"closed c={GOAL_CONCURRENCY}", stream, run))
    return ["### Load client ceiling (against the trivial server)", ceiling_table(rows)]


def compare(bench: Bench, model: Path, engine: str, peer: bool) -> list[str]:
    plan = bench.plan
    bench.stall_ms = STALL_MS if engine == "mock" else None
    with systems(plan, model, engine, peer) as targets:
        samples = []
        for target in targets:
            bench.runner.run(probe(target, plan.tokens, plan.images))
            reply = answer_text(target, plan.tokens, plan.images)
            samples.append(f"- {target.name}: {target.config}. A reply: {reply!r}")
        title = "Mock engine" if engine == "mock" else "Real tiny model"
        out = [f"### {title} ({model.name})", "\n".join(samples)]
        if peer:
            ours, theirs = bench.goal(targets[0], targets[1])
            out += [
                "#### Goal: concurrency 32, side by side",
                goal_table(ours, theirs, plan.repeats, plan.mode),
            ]
        rows = bench.sweep(targets)
        out += [
            "#### Closed and open loop",
            sweep_table(rows, targets[1].name if peer else None, bench.stall_ms),
        ]
        if engine == "mock":
            keep = keep_alive_table(bench.keep_alive(targets))
            out += ["#### Streaming at concurrency 1: kept-alive connection vs a new one per request", keep]
            out += [f"Mock engine settings: {', '.join(f'{k}={v}' for k, v in MOCK_ENV.items())}"]
        return out


if __name__ == "__main__":
    main()
