"""Stopping a background task for sure.

On Python 3.11 a cancellation that lands inside `asyncio.wait_for` can be lost when the awaited call
completes at the same moment (redis-py's blocking connection pool waits in one). The task then runs
on, and whoever awaited it after a single `cancel()` waits forever: a test teardown hung five
minutes on a tensor-transfer housekeeping task that way.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any], every_s: float = 0.1) -> None:
    """Cancel `task`, again every `every_s` while it runs on, and wait for its end; an exception it
    ended with (other than the cancellation) is raised here."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=every_s)
    with contextlib.suppress(asyncio.CancelledError):
        await task
