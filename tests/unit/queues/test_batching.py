"""The group-commit batcher: one flush for concurrent callers, failures and cancellations contained."""

from __future__ import annotations

import asyncio

import pytest

from queues.batching import Batcher


class Recorder:
    """A flush that records its batches and can be held open until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail: Exception | None = None

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [item * 10 for item in items]


async def test_concurrent_callers_share_one_flush() -> None:
    flush = Recorder()
    batcher = Batcher(flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert flush.batches == [[0, 1, 2, 3, 4]]


async def test_items_queued_during_a_flush_go_in_the_next() -> None:
    flush = Recorder()
    flush.release.clear()
    batcher = Batcher(flush)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    flush.release.set()
    assert await first == 10
    assert [await task for task in later] == [20, 30]
    assert flush.batches == [[1], [2, 3]]


async def test_max_batch_splits_batches() -> None:
    flush = Recorder()
    batcher = Batcher(flush, max_batch=2)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert flush.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_flush_fails_every_caller_of_its_batch() -> None:
    flush = Recorder()
    flush.fail = ConnectionError("down")
    batcher = Batcher(flush)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    flush.fail = None
    assert await batcher.submit(7) == 70  # the batcher recovers


async def test_a_cancelled_caller_does_not_abort_the_others_flush() -> None:
    flush = Recorder()
    flush.release.clear()
    batcher = Batcher(flush)
    first = asyncio.create_task(batcher.submit(1))
    second = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.01)
    assert flush.batches == [[1, 2]]  # the flush is in progress
    first.cancel()
    await asyncio.sleep(0)
    flush.release.set()
    assert await second == 20
    with pytest.raises(asyncio.CancelledError):
        await first
    await batcher.close()
