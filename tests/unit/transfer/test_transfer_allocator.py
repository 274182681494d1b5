"""The first-fit allocator never hands out overlapping ranges and coalesces what is freed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queues.transfer.allocator import Allocator

ALIGN = 256
CAPACITY = 64 * ALIGN


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20 * ALIGN)), max_size=60))
def test_ranges_never_overlap_and_everything_coalesces(steps: list[tuple[bool, int]]) -> None:
    allocator = Allocator(CAPACITY, ALIGN)
    live: dict[int, int] = {}
    for allocate, nbytes in steps:
        if allocate or not live:
            offset = allocator.alloc(nbytes)
            if offset is None:
                assert allocator.largest_free < allocator.size_of(nbytes)
                continue
            size = allocator.size_of(nbytes)
            assert offset % ALIGN == 0 and offset + size <= CAPACITY
            assert all(offset + size <= o or o + s <= offset for o, s in live.items())
            live[offset] = size
        else:
            offset = sorted(live)[nbytes % len(live)]
            allocator.free(offset)
            del live[offset]
        assert allocator.used_bytes == sum(live.values())
        assert allocator.count == len(live)
    for offset in list(live):
        allocator.free(offset)
    assert allocator.largest_free == CAPACITY
    assert allocator.alloc(CAPACITY) == 0


def test_zero_bytes_still_get_a_distinct_range() -> None:
    allocator = Allocator(CAPACITY, ALIGN)
    assert allocator.alloc(0) != allocator.alloc(0)


def test_double_free_is_an_error() -> None:
    allocator = Allocator(CAPACITY, ALIGN)
    offset = allocator.alloc(10)
    assert offset is not None
    allocator.free(offset)
    with pytest.raises(ValueError):
        allocator.free(offset)
