"""In-flight de-duplication: concurrent calls for one key share a single execution.

Ten requests for the same URL arriving together fetch it once; the others wait for that fetch and
get its result (or its exception). The shared work runs in its own task, so a caller that is
cancelled does not cancel it for the others; it is cancelled only when every caller has gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._flights: dict[K, tuple[asyncio.Task[V], list[int]]] = {}
        self.started = 0  # executions run
        self.joined = 0  # calls that shared an execution already running

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """Await `work()`, or the execution of it already running under `key`."""
        flight = self._flights.get(key)
        if flight is None:
            task = asyncio.create_task(_call(work))
            flight = (task, [0])
            self._flights[key] = flight
            task.add_done_callback(lambda _: self._forget(key, task))
            self.started += 1
        else:
            self.joined += 1
        task, waiters = flight
        waiters[0] += 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if waiters[0] == 1 and not task.done():
                task.cancel()  # the last caller has gone; later callers start afresh
                self._forget(key, task)
            raise
        finally:
            waiters[0] -= 1

    def _forget(self, key: K, task: asyncio.Task[V]) -> None:
        if self._flights.get(key, (None,))[0] is task:
            del self._flights[key]
        if task.done() and not task.cancelled():
            task.exception()  # mark retrieved: waiters that were cancelled never read it


async def _call(work: Callable[[], Awaitable[V]]) -> V:
    return await work()
