"""The serving benchmark's load loops against the trivial server: every request counted, and the
client's garbage collector never runs while a loop measures (a full collection of the benchmark's
heap paused the client for 0.2-3 s and showed up as the system's TTFT p99: issue 23)."""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ops.bench.serve.load import Run, Workload, closed_loop, open_loop
from ops.bench.serve.procs import CpuMeter
from ops.bench.serve.systems import trivial
from ops.bench.serve.target import Target

TOKENS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with trivial(TOKENS, Path(tmp_path_factory.mktemp("trivial"))) as target:
        yield target


async def closed(work: Workload, meter: CpuMeter) -> Run:
    return await closed_loop(work, 4, 0.2, 0.5, meter)


async def opened(work: Workload, meter: CpuMeter) -> Run:
    return await open_loop(work, 400.0, 0.2, 0.5, meter)


@pytest.mark.parametrize("loop", [closed, opened], ids=["closed", "open"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
async def test_no_collection_while_a_loop_runs(
    server: Target, loop: Callable[[Workload, CpuMeter], Awaitable[Run]], stream: bool
) -> None:
    collections: list[float] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(time.perf_counter())

    garbage = [[i] for i in range(100_000)]  # container objects: the collector would want to run
    gc.callbacks.append(seen)
    try:
        run = await loop(server.workload(stream, TOKENS, []), CpuMeter(server.pids))
    finally:
        gc.callbacks.remove(seen)
    del garbage
    assert run.ok and not run.errors
    assert all(s.tokens == TOKENS for s in run.ok)
    assert [t for t in collections if run.begin <= t <= run.end] == []  # none in the measured window
    assert gc.isenabled()
