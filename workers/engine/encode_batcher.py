"""Coalesces concurrent encode calls into batches: callers arriving within a short window share one
encoder run. A failing batch is retried call by call, so one bad item fails only its own request."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from workers.engine.base import EncodedItem
from workers.engine.limits import EngineLimits, EngineStats
from workers.media.types import LoadedMedia

EncodeFn = Callable[[list[LoadedMedia]], Awaitable[list[EncodedItem]]]


@dataclass
class _Call:
    items: list[LoadedMedia]
    future: asyncio.Future[list[EncodedItem]]


class EncodeBatcher:
    def __init__(self, encode: EncodeFn, limits: EngineLimits, stats: EngineStats) -> None:
        self._encode = encode
        self._limits = limits
        self._stats = stats
        self._calls: list[_Call] = []
        self._task: asyncio.Task[None] | None = None

    async def encode(self, items: list[LoadedMedia]) -> list[EncodedItem]:
        if not items:
            return []
        call = _Call(list(items), asyncio.get_running_loop().create_future())
        self._calls.append(call)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await call.future

    async def _run(self) -> None:
        while self._calls:
            await asyncio.sleep(self._limits.encode_window_s)
            batch = [self._calls.pop(0)]
            size = len(batch[0].items)
            while self._calls and size + len(self._calls[0].items) <= self._limits.max_encode_items:
                size += len(self._calls[0].items)
                batch.append(self._calls.pop(0))
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Call]) -> None:
        items = [item for call in batch for item in call.items]
        try:
            encoded = await self._encode(items)
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0].future, error=error)
                return
            for call in batch:
                await self._run_batch([call])
            return
        self._stats.encode_batches += 1
        self._stats.encode_items += len(items)
        offset = 0
        for call in batch:
            _settle(call.future, result=encoded[offset : offset + len(call.items)])
            offset += len(call.items)

    def close(self) -> None:
        for call in self._calls:
            _settle(call.future, error=RuntimeError("engine is closed"))
        self._calls.clear()
        if self._task is not None:
            self._task.cancel()


def _settle(
    future: asyncio.Future[list[EncodedItem]],
    result: list[EncodedItem] | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])
