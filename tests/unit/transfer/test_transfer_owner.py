"""Owner: held payloads are freed by notification, shared-memory done marks, expiry or take."""

from __future__ import annotations

import time

import pytest
import torch

from queues.transfer import layout
from queues.transfer.arena import Arena
from queues.transfer.errors import TransferError
from queues.transfer.owner import Owner, notification


def _owner(nbytes: int = 8192, slots: int = 4) -> tuple[Owner, torch.Tensor]:
    table = torch.zeros((2, slots), dtype=torch.int64)
    arena = Arena(torch.zeros(nbytes, dtype=torch.uint8), slots=slots)
    return Owner(arena, table, readers_mark_done=True), table


async def _hold(owner: Owner, tag: int, ttl_s: float = 60.0, value: float = 1.0) -> int:
    tensors = [torch.full((16,), value)]
    specs, nbytes = layout.plan(tensors)
    held = await owner.hold(tensors, specs, nbytes, tag, ttl_s)
    assert torch.equal(layout.views(held.lease.view, specs)[0], tensors[0])
    return held.lease.slot


async def test_the_slot_holds_the_tag_until_a_notification_frees_it() -> None:
    owner, table = _owner()
    slot = await _hold(owner, tag=5)
    assert int(table[0, slot]) == 5 and owner.held_count == 1 and owner.held_bytes == 64
    owner.on_notifications([b"unrelated", b"ttx:not-a-number", notification(99)])
    assert owner.held_count == 1
    owner.on_notifications([notification(5)])
    assert owner.held_count == 0 and int(table[0, slot]) == 0 and owner.arena.used_bytes == 0


async def test_a_shared_memory_reader_marks_done_in_the_slot_table() -> None:
    owner, table = _owner()
    slot = await _hold(owner, tag=8)
    table[1, slot] = 7  # a stale mark for an earlier tag frees nothing
    owner.collect(time.time())
    assert owner.held_count == 1
    table[1, slot] = 8
    owner.collect(time.time())
    assert owner.held_count == 0


async def test_expiry_frees_only_what_is_due() -> None:
    owner, _ = _owner()
    await _hold(owner, tag=1, ttl_s=1.0)
    await _hold(owner, tag=2, ttl_s=100.0)
    owner.collect(time.time() + 10)
    assert owner.held_count == 1
    assert not owner.free(1) and owner.free(2)


async def test_take_hands_the_lease_over_and_clears_the_tag() -> None:
    owner, table = _owner()
    slot = await _hold(owner, tag=3, value=4.0)
    lease = owner.take(3)
    assert lease is not None and owner.take(3) is None
    assert int(table[0, slot]) == 0 and owner.held_count == 0
    assert owner.arena.used_bytes > 0  # still the taker's
    lease.release()
    assert owner.arena.used_bytes == 0


async def test_too_large_for_the_send_buffer() -> None:
    owner, _ = _owner(nbytes=1024)
    tensors = [torch.zeros(2048, dtype=torch.uint8)]
    specs, nbytes = layout.plan(tensors)
    with pytest.raises(TransferError) as caught:
        await owner.hold(tensors, specs, nbytes, 1, 60.0)
    assert caught.value.reason == "too_large"


async def test_clear_frees_everything() -> None:
    owner, table = _owner()
    for tag in (1, 2, 3):
        await _hold(owner, tag=tag)
    owner.clear()
    assert owner.held_count == 0 and owner.arena.used_bytes == 0 and not table[0].any()
