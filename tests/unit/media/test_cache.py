"""ByteLRU, SingleFlight and the encoder-output cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from workers.media.cache import ByteLRU
from workers.media.encoder_cache import EncoderOutputCache, encoder_cache_key, nbytes
from workers.media.singleflight import SingleFlight


def test_lru_evicts_least_recently_used_within_budget() -> None:
    cache: ByteLRU[str, bytes] = ByteLRU(10, len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # a is now the most recent
    cache.put("c", b"1234")  # 12 > 10: evicts b
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.get("b") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.evictions, stats.entries, stats.bytes) == (1, 1, 1, 2, 8)


def test_lru_refuses_values_larger_than_the_budget_and_replaces_keys() -> None:
    cache: ByteLRU[str, bytes] = ByteLRU(10, len)
    assert not cache.put("big", b"x" * 11)
    assert cache.put("k", b"12345")
    assert cache.put("k", b"123")
    assert cache.stats().bytes == 3 and len(cache) == 1
    assert cache.peek("k") == b"123" and cache.stats().hits == 0


def test_zero_budget_stores_nothing() -> None:
    cache: ByteLRU[str, bytes] = ByteLRU(0, len)
    cache.put("a", b"x")
    assert cache.get("a") is None


async def test_single_flight_runs_once_for_concurrent_callers() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    waiters = [asyncio.create_task(flights.run("k", work)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiters) == [42] * 10
    assert (calls, flights.started, flights.joined, len(flights)) == (1, 1, 9, 0)


async def test_single_flight_shares_exceptions_and_forgets_failures() -> None:
    flights: SingleFlight[str, int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    results = await asyncio.gather(flights.run("k", fail), flights.run("k", fail), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

    async def succeed() -> int:
        return 1

    assert await flights.run("k", succeed) == 1  # a failure is not remembered


async def test_single_flight_survives_one_cancelled_caller_and_stops_when_all_leave() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()
    finished = asyncio.Event()

    async def work() -> int:
        try:
            await gate.wait()
            return 7
        finally:
            finished.set()

    first = asyncio.create_task(flights.run("k", work))
    second = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == 7
    with pytest.raises(asyncio.CancelledError):
        await first

    gate.clear()
    finished.clear()
    only = asyncio.create_task(flights.run("j", work))
    await asyncio.sleep(0)
    only.cancel()
    await asyncio.wait_for(finished.wait(), 5)  # the shared task was cancelled with its last caller
    assert len(flights) == 0


def test_encoder_key_depends_on_content_and_every_option_not_on_order() -> None:
    base = encoder_cache_key("abc", {"model": "m", "max_pixels": 100, "fps": 2.0})
    assert base == encoder_cache_key("abc", {"fps": 2.0, "max_pixels": 100, "model": "m"})
    assert base != encoder_cache_key("abd", {"model": "m", "max_pixels": 100, "fps": 2.0})
    assert base != encoder_cache_key("abc", {"model": "m", "max_pixels": 101, "fps": 2.0})
    assert base != encoder_cache_key("abc", {"model": "m2", "max_pixels": 100, "fps": 2.0})


async def test_encoder_cache_computes_once_and_keys_by_content() -> None:
    cache: EncoderOutputCache[np.ndarray] = EncoderOutputCache(1 << 20)
    computed: list[str] = []

    def compute(name: str) -> Callable[[], Awaitable[np.ndarray]]:
        async def run() -> np.ndarray:
            computed.append(name)
            await asyncio.sleep(0)
            return np.zeros(16, np.float32)

        return run

    options = {"model": "tiny", "detail": "auto"}
    first = await asyncio.gather(*[cache.get_or_compute("h1", options, compute("h1")) for _ in range(5)])
    again = await cache.get_or_compute("h1", options, compute("h1-again"))
    other = await cache.get_or_compute("h2", options, compute("h2"))
    assert computed == ["h1", "h2"]
    assert all(f is first[0] for f in first) and again is first[0] and other is not first[0]
    assert cache.stats().entries == 2 and cache.stats().bytes == 128


def test_encoder_cache_disabled_with_zero_budget() -> None:
    cache: EncoderOutputCache[np.ndarray] = EncoderOutputCache(0)
    assert not cache.enabled
    assert not cache.put("h", {}, np.zeros(4))
    assert cache.get("h", {}) is None


def test_nbytes_of_nested_outputs() -> None:
    value = {"embeds": np.zeros((4, 8), np.float32), "grid": [np.zeros(3, np.int64)], "raw": b"xy"}
    assert nbytes(value) == 4 * 8 * 4 + 3 * 8 + 2
