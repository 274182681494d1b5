"""Streams one request's generated tokens to its client, one Redis round trip at a time.

Tokens are never awaited one by one: `add()` returns at once, and while a publish is in flight the
next tokens gather and go out together in one event. Under load a request needs a few messages
instead of one per token; when idle each token leaves as soon as it exists. With an interval, a
request's events leave at most that often: tokens a fast engine makes in between travel together
(the first token never waits, nor does the last). The last event (with the finish reason and usage)
is handed to the runtime, which publishes it with the job's settle.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from queues.messages import TokenEvent, TokenLogprob, TopLogprob, Usage
from queues.runtime import ClientGone, JobContext
from workers.engine.types import TokenOutput


def token_event(batch: list[TokenOutput], timings: dict[str, float] | None) -> TokenEvent:
    """One event for consecutive outputs; the last one's finish reason, usage and timings."""
    last = batch[-1]
    final = last.finish_reason is not None
    logprobs = None
    if any(output.logprob is not None for output in batch):
        logprobs = [
            TokenLogprob(
                output.token_id,
                output.logprob if output.logprob is not None else 0.0,
                [TopLogprob(token_id, logprob) for token_id, logprob in output.top_logprobs or []],
            )
            for output in batch
        ]
    return TokenEvent(
        seq=batch[0].index,
        token_ids=[output.token_id for output in batch],
        texts=[output.text for output in batch],
        logprobs=logprobs,
        finish_reason=last.finish_reason,
        usage=Usage(last.prompt_tokens, last.completion_tokens) if final else None,
        timings=timings if final else None,
    )


class TokenEmitter:
    """`async with TokenEmitter(ctx) as emitter: emitter.add(output)...`; leaving the block waits
    until every token but the last event is out (raising ClientGone when nobody listened, or the
    publish error) and leaves the last event to the job's settle (`JobContext.finish`).

    With `stream=False` (the client wants the whole answer at once) tokens are held back and leave
    in one event with the last one."""

    def __init__(self, ctx: JobContext, stream: bool = True, interval_s: float = 0.0) -> None:
        self._ctx = ctx
        self._stream = stream
        self._interval_s = interval_s
        self._next_at = 0.0  # loop time before which no other event leaves
        self._wake: asyncio.Future[None] | None = None
        self._pending: list[TokenOutput] = []
        self._timings: dict[str, float] | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, output: TokenOutput, timings: dict[str, float] | None = None) -> None:
        """Queue a token (with the request's timings on the last one); raises if an earlier publish
        failed or found the client gone."""
        if self._task is not None and self._task.done():
            self._task.result()  # re-raises ClientGone or a Redis error
        self._pending.append(output)
        if timings is not None:
            self._timings = timings
        if not self._stream or output.finish_reason is not None:
            if self._wake is not None:
                _resolve(self._wake)  # stop waiting out the interval: the rest leaves now
            return  # the last event leaves with the job's settle (see __aexit__)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending and self._pending[-1].finish_reason is None:
            wait = self._next_at - loop.time()
            if wait > 0:  # until the interval is over or the last token comes (see add)
                self._wake = loop.create_future()
                timer = loop.call_later(wait, _resolve, self._wake)
                try:
                    await self._wake
                finally:
                    timer.cancel()
                    self._wake = None
                continue
            batch, self._pending = self._pending, []
            self._next_at = loop.time() + self._interval_s
            await self._ctx.emit(token_event(batch, self._timings))

    async def __aenter__(self) -> TokenEmitter:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            if self._task is not None:
                await self._task
            if self._pending:
                batch, self._pending = self._pending, []
                event = token_event(batch, self._timings)
                if batch[-1].finish_reason is not None:
                    self._ctx.finish(event)
                else:
                    await self._ctx.emit(event)
        elif self._task is not None:  # the job failed or was cancelled: stop publishing for it
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientGone, Exception):
                await self._task


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
