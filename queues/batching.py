"""Group commit: many concurrent callers, one Redis round trip.

`await batcher.submit(item)` queues the item. When no flush is running, the caller itself flushes
its batch (no extra task, no extra loop turn when idle); whatever others queued meanwhile goes out
in the next batch, flushed by a task. Under load batches grow by themselves; when idle an item goes
out at once (no timer, no added latency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 1024) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if not self._flushing:
            self._flushing = True
            try:
                while not future.done():
                    await self._flush_batch()
            finally:
                if self._queue:  # items queued meanwhile (or this caller was cancelled)
                    self._task = asyncio.create_task(self._drain())
                else:
                    self._flushing = False
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._flush_batch()
        finally:
            self._flushing = False

    async def _flush_batch(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        try:
            results = await self._flush([item for item, _ in batch])
        except BaseException as exc:  # the callers decide what a failed flush means
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError(str(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Wait for queued items to be flushed."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
