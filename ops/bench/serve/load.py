"""Load loops: closed (N users, each sending its next request when the last one ends) and open
(Poisson arrivals at a fixed rate, however many are in flight).

Each loop runs a warm-up, then a measured window; a request counts when it ends inside the window.
CPU use of the client and of the system under test is metered over the same window. The client's
garbage collector never runs during a loop (`no_collector_pauses`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ops.bench.serve.client import Client, Sample, build_request
from ops.bench.serve.procs import CpuMeter

PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Workload:
    """What to send where: `body(i)` is the JSON of the i-th request."""

    host: str
    port: int
    body: Callable[[int], bytes]
    stream: bool
    expect_tokens: int
    keep_alive: bool = True

    def request(self, i: int) -> bytes:
        return build_request(self.host, self.port, PATH, self.body(i), self.keep_alive)

    def client(self) -> Client:
        return Client(self.host, self.port, keep_alive=self.keep_alive)


@dataclass
class Run:
    samples: list[Sample]  # every request sent, warm-up and stragglers included
    begin: float  # the measured window (perf_counter seconds)
    end: float
    cpu_s: dict[str, float]  # CPU seconds spent in the window, per process name ("client" included)
    offered_rps: float = 0.0  # open loop: the arrival rate

    @property
    def window_s(self) -> float:
        return self.end - self.begin

    @property
    def ok(self) -> list[Sample]:
        """Successful requests that ended inside the window: what throughput and latency count."""
        return [s for s in self.samples if not s.error and self.begin <= s.end <= self.end]

    @property
    def errors(self) -> list[str]:
        """Every failure, inside the window or not (a request that hung past it counts too)."""
        return [sample.error for sample in self.samples if sample.error]


@contextlib.contextmanager
def no_collector_pauses() -> Iterator[None]:
    """Keep the client's cyclic garbage collector from pausing it during a load loop.

    The benchmark process holds torch and transformers (the tiny-model builder) and every sample of
    every cell so far: 0.4-2 M objects that a full collection walks while the client, sharing two
    CPUs with the system under test, reads no socket. Such a pause (240 ms seen at 425 k objects)
    stalls every request in flight at once, and was the TTFT p99 of 0.3-2.9 s in issue 23. What
    lives now is collected and frozen out of the collector's sight, and during the loop objects are
    freed by reference counts only (the client makes no cycles worth a pause); the collector is
    back on after the loop, outside every measured window.
    """
    gc.collect()
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def _metered(meter: CpuMeter, begin: float, end: float) -> dict[str, float]:
    await asyncio.sleep(max(0.0, begin - time.perf_counter()))
    meter.start()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    return meter.stop()


async def closed_loop(
    work: Workload, concurrency: int, warmup_s: float, duration_s: float, meter: CpuMeter, each: int = 2
) -> Run:
    """The window opens after `warmup_s` once every user has had an answer, and closes after `duration_s`
    once every user has had `each` more, so a slow system is measured over a longer window."""
    counter = itertools.count()
    samples: list[Sample] = []
    answers = [0] * concurrency
    answered = asyncio.Event()
    closed = False

    async def user(k: int) -> None:
        client = work.client()
        try:
            while not closed:
                request = work.request(next(counter))
                samples.append(await client.send(request, work.stream, work.expect_tokens))
                answers[k] += 1
                answered.set()
        finally:
            client.close()
            answered.set()

    async def settled(users: list[asyncio.Task[None]], floor: list[int]) -> None:
        """Until every user has had `floor` answers (or one of them stopped)."""
        while not all(n >= f for n, f in zip(answers, floor, strict=True)) and not any(
            u.done() for u in users
        ):
            answered.clear()
            await answered.wait()

    with no_collector_pauses():
        users = [asyncio.create_task(user(k)) for k in range(concurrency)]
        await asyncio.sleep(warmup_s)
        await settled(users, [1] * concurrency)
        begin, floor = time.perf_counter(), [n + each for n in answers]
        meter.start()
        await asyncio.sleep(duration_s)
        await settled(users, floor)
        end, closed = time.perf_counter(), True
        cpu = meter.stop()
        await asyncio.gather(*users)
    return Run(samples, begin, end, cpu)


async def open_loop(
    work: Workload, rate: float, warmup_s: float, duration_s: float, meter: CpuMeter, seed: int = 1
) -> Run:
    """Requests arrive at exponential intervals (mean 1/rate), each on an idle connection or a new one."""
    rng = random.Random(seed)
    idle: list[Client] = []
    samples: list[Sample] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        client = idle.pop() if idle else work.client()
        samples.append(await client.send(work.request(i), work.stream, work.expect_tokens))
        idle.append(client)

    with no_collector_pauses():
        start = time.perf_counter()
        begin = start + warmup_s
        end = begin + duration_s
        cpu = asyncio.create_task(_metered(meter, begin, end))
        arrival = start
        for i in itertools.count():
            if arrival >= end:
                break
            await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
            task = asyncio.create_task(one(i))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            arrival += rng.expovariate(rate)
        if in_flight:
            await asyncio.gather(*in_flight)
        for client in idle:
            client.close()
        return Run(samples, begin, end, await cpu, offered_rps=rate)
