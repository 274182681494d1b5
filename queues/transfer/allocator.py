"""First-fit allocator of byte ranges in a fixed-size buffer, coalescing freed neighbours.

Pure bookkeeping (offsets only, no memory, no waiting); `arena.Arena` builds on it.
"""

from __future__ import annotations

import bisect

from queues.transfer.layout import ALIGN, align_up


class Allocator:
    """Hands out `align`-aligned ranges of `[0, capacity)`; zero-byte requests get one unit."""

    def __init__(self, capacity: int, align: int = ALIGN) -> None:
        self.align = align
        self.capacity = capacity - capacity % align
        self._free: list[tuple[int, int]] = [(0, self.capacity)] if self.capacity else []
        self._used: dict[int, int] = {}
        self.used_bytes = 0

    def size_of(self, nbytes: int) -> int:
        """Bytes an allocation of `nbytes` occupies."""
        return max(self.align, align_up(nbytes, self.align))

    def alloc(self, nbytes: int) -> int | None:
        """Offset of a free range of at least `nbytes`, or None when none is large enough."""
        size = self.size_of(nbytes)
        for index, (offset, free) in enumerate(self._free):
            if free >= size:
                if free == size:
                    del self._free[index]
                else:
                    self._free[index] = (offset + size, free - size)
                self._used[offset] = size
                self.used_bytes += size
                return offset
        return None

    def free(self, offset: int) -> None:
        size = self._used.pop(offset, None)
        if size is None:
            raise ValueError(f"offset {offset} is not allocated")
        self.used_bytes -= size
        index = bisect.bisect_left(self._free, offset, key=lambda block: block[0])
        start, end = offset, offset + size
        if index < len(self._free) and self._free[index][0] == end:
            end += self._free[index][1]
            del self._free[index]
        if index > 0 and sum(self._free[index - 1]) == start:
            start = self._free[index - 1][0]
            index -= 1
            del self._free[index]
        self._free.insert(index, (start, end - start))

    @property
    def largest_free(self) -> int:
        return max((size for _, size in self._free), default=0)

    @property
    def count(self) -> int:
        return len(self._used)
