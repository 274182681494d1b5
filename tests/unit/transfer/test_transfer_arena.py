"""Arena: leases of a fixed buffer, waiting in arrival order at the byte and slot caps."""

from __future__ import annotations

import asyncio

import pytest
import torch

from queues.transfer.arena import Arena

KIB = 1024


def _arena(nbytes: int = 4 * KIB, slots: int = 0) -> Arena:
    return Arena(torch.zeros(nbytes, dtype=torch.uint8), slots=slots)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lease_views_its_own_region() -> None:
    arena = _arena()
    first, second = await arena.allocate(100), await arena.allocate(100)
    first.view.fill_(1)
    second.view.fill_(2)
    assert first.nbytes == 100 and int(first.view.sum()) == 100 and int(second.view.sum()) == 200
    assert arena.count == 2
    first.release()
    first.release()  # idempotent
    assert arena.count == 1


async def test_waits_at_the_byte_cap_until_a_release() -> None:
    arena = _arena()
    held = await arena.allocate(3 * KIB)
    waiting = asyncio.create_task(arena.allocate(2 * KIB))
    await _settle()
    assert not waiting.done()
    held.release()
    lease = await asyncio.wait_for(waiting, 5)
    assert lease.nbytes == 2 * KIB


async def test_waits_at_the_slot_cap_and_slots_are_distinct() -> None:
    arena = _arena(slots=2)
    a, b = await arena.allocate(1), await arena.allocate(1)
    assert {a.slot, b.slot} == {0, 1}
    waiting = asyncio.create_task(arena.allocate(1))
    await _settle()
    assert not waiting.done()
    a.release()
    assert (await asyncio.wait_for(waiting, 5)).slot == a.slot


async def test_waiters_are_served_in_arrival_order() -> None:
    arena = _arena()
    held = await arena.allocate(4 * KIB)
    big = asyncio.create_task(arena.allocate(3 * KIB))
    await _settle()
    small = asyncio.create_task(arena.allocate(KIB))
    await _settle()
    assert arena.try_allocate(1) is None  # others are waiting: no overtaking
    held.release()
    await asyncio.wait_for(asyncio.gather(big, small), 5)
    assert big.result().offset < small.result().offset


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    arena = _arena()
    held = await arena.allocate(4 * KIB)
    waiting = asyncio.create_task(arena.allocate(KIB))
    await _settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    held.release()
    assert arena.used_bytes == 0
    assert (await arena.allocate(4 * KIB)).nbytes == 4 * KIB


async def test_a_lease_that_can_never_fit_is_refused_at_once() -> None:
    arena = _arena()
    assert not arena.fits(8 * KIB)
    with pytest.raises(ValueError):
        await arena.allocate(8 * KIB)
