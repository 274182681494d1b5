"""Continuous batching on the asyncio side: who decodes next, and where each token goes.

Sequences wait in arrival order until the batch has room (`max_batch_size` sequences and
`max_kv_tokens` reserved positions; a lone sequence always fits). Each `step` admits waiting
sequences, drops cancelled ones and advances the whole batch by one token; the scheduler keeps two
steps queued so the engine never idles while tokens are routed to their request's stream. The step
itself is supplied by the engine (a model forward on the engine thread, or a simulated one in the
mock).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

import torch

from workers.engine.limits import EngineLimits, EngineStats
from workers.engine.sequence import Sequence
from workers.engine.types import TokenOutput

PIPELINE_DEPTH = 2


@dataclass
class Admission:
    sequence: Sequence
    kv: list[torch.Tensor]
    stream: bool = True  # False: the consumer wants the outputs only at the end, in one wake-up
    held: list[TokenOutput] = field(default_factory=list)
    queue: asyncio.Queue[TokenOutput | list[TokenOutput] | BaseException | None] = field(
        default_factory=asyncio.Queue
    )


@dataclass(frozen=True)
class StepResult:
    outputs: list[tuple[Sequence, TokenOutput]]  # each stepped sequence's new token
    rows: int  # sequences still in the batch after the step


StepFn = Callable[[list[Admission], list[str]], Awaitable[StepResult]]
"""Apply drops (request ids) and admissions, then run one step over the whole batch."""


class DecodeScheduler:
    def __init__(
        self,
        step: StepFn,
        clear: Callable[[], Awaitable[None]],
        limits: EngineLimits,
        stats: EngineStats,
    ) -> None:
        self._step = step
        self._clear = clear
        self._limits = limits
        self._stats = stats
        self._waiting: deque[Admission] = deque()
        self._running: dict[str, Admission] = {}
        self._drops: list[str] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def knows(self, request_id: str) -> bool:
        return request_id in self._running or any(a.sequence.request_id == request_id for a in self._waiting)

    async def stream(
        self, sequence: Sequence, kv: list[torch.Tensor], stream: bool = True
    ) -> AsyncGenerator[TokenOutput, None]:
        """All outputs of `sequence`, the first (prefill's token) right away. With `stream=False` the
        others arrive together after the last step (one wake-up of the consumer, not one a step)."""
        if self._closed:
            raise RuntimeError("engine is closed")
        if self.knows(sequence.request_id):
            raise ValueError(f"request {sequence.request_id!r} is already generating")
        first = sequence.first_output()
        if first.finish_reason is not None:
            yield first
            return
        admission = Admission(sequence, kv, stream)
        self._waiting.append(admission)
        self._start()
        finished = False
        try:
            yield first
            while not finished:
                item = await admission.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                for output in item if isinstance(item, list) else [item]:
                    finished = output.finish_reason is not None
                    yield output
        finally:
            if not finished:
                self.forget(sequence.request_id)

    def forget(self, request_id: str) -> None:
        """Stop a sequence wherever it is; its stream ends and its KV row is freed before the next step."""
        for admission in self._waiting:
            if admission.sequence.request_id == request_id:
                self._waiting.remove(admission)
                admission.queue.put_nowait(None)
                return
        running = self._running.pop(request_id, None)
        if running is not None:
            self._drops.append(request_id)
            running.queue.put_nowait(None)
            self._wake.set()

    def _start(self) -> None:
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())

    def _admissible(self) -> list[Admission]:
        admitted: list[Admission] = []
        count = len(self._running)
        reserved = sum(a.sequence.reserved_tokens for a in self._running.values())
        while self._waiting and count < self._limits.max_batch_size:
            need = self._waiting[0].sequence.reserved_tokens
            if count and reserved + need > self._limits.max_kv_tokens:
                break
            admitted.append(self._waiting.popleft())
            count += 1
            reserved += need
        return admitted

    def _launch(self) -> asyncio.Future[StepResult] | None:
        """Start the next step with this moment's admissions and drops (None: nothing to step)."""
        admitted = self._admissible()
        drops, self._drops = self._drops, []
        for admission in admitted:
            self._running[admission.sequence.request_id] = admission
        if not self._running and not drops:
            return None
        return asyncio.ensure_future(self._step(admitted, drops))

    async def _loop(self) -> None:
        # Two steps in flight: the engine starts the next step while this side routes the tokens of the
        # last one. Sequences a step finishes leave the batch on the engine side at once, so a queued
        # step never advances them; admissions and drops take effect one step later.
        in_flight: deque[asyncio.Future[StepResult]] = deque()
        while not self._closed:
            while len(in_flight) < PIPELINE_DEPTH and (step := self._launch()) is not None:
                in_flight.append(step)
            if not in_flight:
                if not self._waiting:
                    self._wake.clear()
                    await self._wake.wait()
                continue
            try:
                result = await in_flight.popleft()
            except Exception as error:
                await self._fail_running(error)
                continue
            self._dispatch(result)

    def _dispatch(self, result: StepResult) -> None:
        if result.outputs:
            self._stats.decode_steps += 1
            self._stats.decode_tokens += len(result.outputs)
            self._stats.peak_batch = max(self._stats.peak_batch, len(result.outputs))
        self._stats.rows_after_step = result.rows
        for sequence, output in result.outputs:
            running = self._running.get(sequence.request_id)
            if running is None or running.sequence is not sequence:
                continue  # cancelled while the step ran
            if output.finish_reason is not None:
                del self._running[sequence.request_id]
                running.queue.put_nowait([*running.held, output] if running.held else output)
            elif running.stream:
                running.queue.put_nowait(output)
            else:
                running.held.append(output)

    async def _fail_running(self, error: Exception) -> None:
        failed, self._running = self._running, {}
        for admission in failed.values():
            admission.queue.put_nowait(error)
        await self._clear()

    def close(self) -> None:
        self._closed = True
        for admission in [*self._waiting, *self._running.values()]:
            admission.queue.put_nowait(None)
        self._waiting.clear()
        self._running.clear()
        if self._task is not None:
            self._task.cancel()
        self._wake.set()
