"""`cancel_and_wait` ends a task even when one cancellation is lost (Python 3.11's `wait_for` can drop
one that lands as the awaited call completes; here the task drops the first one itself)."""

from __future__ import annotations

import asyncio

import pytest

from queues.stopping import cancel_and_wait


async def test_a_lost_cancellation_is_sent_again() -> None:
    lost = 0

    async def housekeeping() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1  # swallowed, as a cancel lost inside wait_for would be

    task = asyncio.create_task(housekeeping())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(cancel_and_wait(task, every_s=0.05), timeout=5)
    assert task.cancelled() and lost == 1


async def test_the_task_error_is_raised() -> None:
    async def failing() -> None:
        raise RuntimeError("broken")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="broken"):
        await cancel_and_wait(task)
