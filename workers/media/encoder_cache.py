"""Cache of encoder outputs keyed by the media's content hash plus every option that shapes the output.

The encode worker keeps one per process: before running the vision/audio tower on an item it asks
`get_or_compute(content_hash, options, compute)`. The key is never derived from placeholder token ids
(two different images expand to the same placeholders, and a cache keyed by them returns another
image's embeddings); `options` must name everything else the output depends on: model id and
revision, processor settings (min/max pixels, detail, video fps and frame count, audio rate), dtype.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec

from workers.media.cache import ByteLRU, CacheStats
from workers.media.singleflight import SingleFlight

V = TypeVar("V")


def encoder_cache_key(content_hash: str, options: Mapping[str, Any]) -> str:
    """A stable key: sha256 of the content hash and the options as canonical (key-sorted) JSON."""
    canonical = msgspec.json.encode(options, order="sorted")
    return hashlib.sha256(content_hash.encode() + b"\x00" + canonical).hexdigest()


def nbytes(value: Any) -> int:
    """Bytes held by a tensor, an array, bytes, or a dict / list / tuple / msgspec Struct of them."""
    if hasattr(value, "element_size") and hasattr(value, "numel"):  # torch.Tensor, without importing torch
        return int(value.element_size() * value.numel())
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, Mapping):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(nbytes(v) for v in value)
    if isinstance(value, msgspec.Struct):
        return sum(nbytes(getattr(value, name)) for name in value.__struct_fields__)
    return 0


class EncoderOutputCache(Generic[V]):
    """LRU of encoder outputs within `budget_bytes`; concurrent misses for one key compute once.

    Cached values are shared between requests: callers must not modify them in place."""

    def __init__(self, budget_bytes: int, sizeof: Callable[[V], int] = nbytes) -> None:
        self._lru: ByteLRU[str, V] = ByteLRU(budget_bytes, sizeof)
        self._flights: SingleFlight[str, V] = SingleFlight()

    @property
    def enabled(self) -> bool:
        return self._lru.budget > 0

    def get(self, content_hash: str, options: Mapping[str, Any]) -> V | None:
        return self._lru.get(encoder_cache_key(content_hash, options))

    def put(self, content_hash: str, options: Mapping[str, Any], value: V) -> bool:
        return self._lru.put(encoder_cache_key(content_hash, options), value)

    async def get_or_compute(
        self, content_hash: str, options: Mapping[str, Any], compute: Callable[[], Awaitable[V]]
    ) -> V:
        """The cached output, else `await compute()` (once for concurrent callers), stored and returned."""
        key = encoder_cache_key(content_hash, options)
        found = self._lru.get(key)
        if found is not None:
            return found

        async def compute_and_store() -> V:
            value = await compute()
            self._lru.put(key, value)
            return value

        return await self._flights.run(key, compute_and_store)

    def stats(self) -> CacheStats:
        return self._lru.stats()

    def clear(self) -> None:
        self._lru.clear()
