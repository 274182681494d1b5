"""Owner side: payloads held in the send buffer until a reader is done, a discard, or expiry.

Each held payload occupies a lease of the send arena and one slot of the slot table, whose row 0
holds the payload's tag while it is live. Freeing clears the tag *before* the memory can be reused,
so a late or duplicate reader that checks the tag after copying detects that it read freed memory.
Readers report completion by NIXL notification (`on_notifications`) or, over shared memory, by
writing the tag into row 1 of the slot table (`collect` scans it). The arena's size and slot count
are the caps on held bytes and held transfers: `hold` waits at either cap.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from queues.transfer import layout
from queues.transfer.arena import Arena, Lease
from queues.transfer.errors import TransferError
from queues.transfer.ref import TensorSpec

log = logging.getLogger(__name__)

NOTIF_PREFIX = b"ttx:"


def notification(tag: int) -> bytes:
    """The completion message a reader sends for `tag`."""
    return NOTIF_PREFIX + str(tag).encode()


@dataclass
class Held:
    tag: int
    lease: Lease
    expires_at: float  # unix seconds


class Owner:
    """The held payloads of one process. `slots` is the int64 [2, n] slot table (CPU)."""

    def __init__(self, arena: Arena, slots: torch.Tensor, readers_mark_done: bool) -> None:
        self.arena = arena
        self._live = slots[0].numpy()
        self._done = slots[1].numpy()
        self._live[:] = 0
        self._done[:] = 0
        self._readers_mark_done = readers_mark_done
        self._held: dict[int, Held] = {}
        self._expiry: list[tuple[float, int]] = []

    @property
    def held_count(self) -> int:
        return len(self._held)

    @property
    def held_bytes(self) -> int:
        return sum(held.lease.nbytes for held in self._held.values())

    async def hold(
        self,
        tensors: Sequence[torch.Tensor],
        specs: Sequence[TensorSpec],
        nbytes: int,
        tag: int,
        ttl_s: float,
    ) -> Held:
        """Copy `tensors` into a new lease (waiting at the caps) and hold it under `tag` (unique) for
        `ttl_s` seconds from now."""
        if not self.arena.fits(nbytes):
            raise TransferError(
                "too_large",
                f"{nbytes} bytes exceed the send buffer of {self.arena.capacity} bytes "
                "(raise TRANSFER_HELD_MAX_BYTES)",
            )
        lease = await self.arena.allocate(nbytes)
        try:
            await layout.pack(lease.view, tensors, specs)
        except BaseException:
            lease.release()
            raise
        held = Held(tag, lease, time.time() + ttl_s)
        self._done[lease.slot] = 0
        self._live[lease.slot] = held.tag
        self._held[held.tag] = held
        heapq.heappush(self._expiry, (held.expires_at, held.tag))
        return held

    def take(self, tag: int) -> Lease | None:
        """Stop holding `tag` and hand its lease to the caller (a read inside this process)."""
        held = self._held.pop(tag, None)
        if held is None:
            return None
        self._live[held.lease.slot] = 0
        return held.lease

    def free(self, tag: int) -> bool:
        lease = self.take(tag)
        if lease is not None:
            lease.release()
        return lease is not None

    def on_notifications(self, messages: Iterable[bytes]) -> None:
        for message in messages:
            if not message.startswith(NOTIF_PREFIX):
                log.debug("ignoring a foreign notification %r", message[:32])
                continue
            try:
                tag = int(message[len(NOTIF_PREFIX) :])
            except ValueError:
                log.warning("malformed completion notification %r", message[:32])
                continue
            self.free(tag)

    def collect(self, now: float) -> None:
        """Free payloads past their expiry and those that shared-memory readers marked done."""
        while self._expiry and self._expiry[0][0] <= now:
            _, tag = heapq.heappop(self._expiry)
            if self.free(tag):
                log.info("transfer %d expired unread; freed", tag)
        if self._readers_mark_done and self._held:
            done = (self._live == self._done) & (self._live != 0)
            for tag in self._live[done.nonzero()[0]].tolist():
                self.free(int(tag))
        if len(self._expiry) > 2 * len(self._held) + 64:
            self._expiry = [(at, tag) for at, tag in self._expiry if tag in self._held]
            heapq.heapify(self._expiry)

    def clear(self) -> None:
        for tag in list(self._held):
            self.free(tag)
        self._expiry.clear()
