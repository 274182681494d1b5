"""Group commit: many concurrent callers, one Redis round trip.

`await batcher.submit(item)` queues the item; one flushing task sends the queued items together and
keeps going while more arrive. Under load batches grow by themselves; when idle an item goes out on
the next loop turn (no timer). The flush runs in its own task, never in a caller's: a caller that is
cancelled (its request was) must not abort a round trip that carries other callers' items.
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
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self._flush_batch()
        finally:
            self._task = None

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
