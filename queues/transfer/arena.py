"""A fixed, registered buffer handed out in leases, with fair (FIFO) waiting when it is full.

Used twice per process: the owner's send buffer (each lease also takes a slot of the owner's slot
table, so both bytes and the number of held transfers are capped) and the reader's receive pool.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import torch

from queues.transfer.allocator import Allocator


class Lease:
    """A region of a buffer (`view`, uint8) held until `release()`; release is idempotent."""

    __slots__ = ("_on_release", "offset", "slot", "view")

    def __init__(
        self, view: torch.Tensor, offset: int, slot: int, on_release: Callable[[Lease], None] | None
    ) -> None:
        self.view = view
        self.offset = offset
        self.slot = slot
        self._on_release = on_release

    @property
    def nbytes(self) -> int:
        return self.view.numel()

    @property
    def released(self) -> bool:
        return self._on_release is None

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release(self)


class Arena:
    """Leases of `buffer` (1-D uint8). With `slots` > 0 every lease also gets a slot index and at
    most `slots` leases exist at once."""

    def __init__(self, buffer: torch.Tensor, slots: int = 0) -> None:
        self.buffer = buffer
        self._allocator = Allocator(buffer.numel())
        self._slots: list[int] | None = list(range(slots - 1, -1, -1)) if slots else None
        self._waiters: deque[tuple[int, asyncio.Future[Lease]]] = deque()

    @property
    def capacity(self) -> int:
        return self._allocator.capacity

    @property
    def used_bytes(self) -> int:
        return self._allocator.used_bytes

    @property
    def count(self) -> int:
        return self._allocator.count

    def fits(self, nbytes: int) -> bool:
        """Whether a lease of `nbytes` can ever be granted."""
        return self._allocator.size_of(nbytes) <= self.capacity

    def try_allocate(self, nbytes: int) -> Lease | None:
        """A lease now, or None (also when others are already waiting: they go first)."""
        if self._waiters:
            return None
        return self._take(nbytes)

    async def allocate(self, nbytes: int) -> Lease:
        """A lease, waiting (in arrival order) while the buffer or the slots are exhausted."""
        if not self.fits(nbytes):
            raise ValueError(f"{nbytes} bytes can never fit an arena of {self.capacity} bytes")
        lease = self.try_allocate(nbytes)
        if lease is not None:
            return lease
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        entry = (nbytes, future)
        self._waiters.append(entry)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.result().release()
            raise
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
                self._wake()

    def _take(self, nbytes: int) -> Lease | None:
        if self._slots is not None and not self._slots:
            return None
        offset = self._allocator.alloc(nbytes)
        if offset is None:
            return None
        slot = self._slots.pop() if self._slots is not None else -1
        return Lease(self.buffer[offset : offset + nbytes], offset, slot, self._release)

    def _release(self, lease: Lease) -> None:
        self._allocator.free(lease.offset)
        if self._slots is not None:
            self._slots.append(lease.slot)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            nbytes, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            lease = self._take(nbytes)
            if lease is None:
                return
            self._waiters.popleft()
            future.set_result(lease)
