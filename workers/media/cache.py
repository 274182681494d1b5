"""A byte-budgeted LRU cache with hit / miss / eviction counters.

Used for decoded media (keyed by content hash + decode options), for the URL index (URL -> content
hash and validators) and by the encoder-output cache. Not thread-safe: use it from one event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    budget: int


class ByteLRU(Generic[K, V]):
    """Least-recently-used eviction once the summed `sizeof` of the values exceeds `budget`.

    A value larger than the whole budget is not stored. A budget of 0 stores nothing."""

    def __init__(self, budget: int, sizeof: Callable[[V], int]) -> None:
        if budget < 0:
            raise ValueError("budget must not be negative")
        self.budget = budget
        self._sizeof = sizeof
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def get(self, key: K, *, count_miss: bool = True) -> V | None:
        """The value for `key` (now the most recently used), counting a hit or a miss.

        `count_miss=False` is for a lookup that a counted one follows when it fails."""
        item = self._items.get(key)
        if item is None:
            if count_miss:
                self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def peek(self, key: K) -> V | None:
        """The value for `key` without touching recency or counters."""
        item = self._items.get(key)
        return None if item is None else item[0]

    def put(self, key: K, value: V) -> bool:
        """Store `value`; evict least recently used entries to fit. False if it was too large to store."""
        size = max(0, self._sizeof(value))
        self.discard(key)
        if size > self.budget:
            return False
        self._items[key] = (value, size)
        self._bytes += size
        while self._bytes > self.budget:
            _, (_, evicted) = self._items.popitem(last=False)
            self._bytes -= evicted
            self.evictions += 1
        return True

    def discard(self, key: K) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1]

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.evictions, len(self._items), self._bytes, self.budget)
