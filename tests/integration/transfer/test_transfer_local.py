"""TensorTransfer end to end inside one process: two endpoints (two NIXL agents), a real Redis.

Covers the API's behaviour and every failure reason a reader can meet; the two-process tests in
test_transfer_processes.py cover what needs separate processes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import torch

from ops.redis import RedisServer
from queues.keys import Keys
from queues.transfer import Desc, TensorRef, TensorTransfer, TransferConfig, TransferError, layout

MIB = 1 << 20
SMALL = TransferConfig(held_max_bytes=8 * MIB, pool_bytes=8 * MIB, read_timeout_s=10, inline_max_bytes=1024)
_names = itertools.count()


@pytest_asyncio.fixture(scope="module")
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys("transfer-local")


@pytest_asyncio.fixture(scope="module")
async def owner(client: aioredis.Redis, keys: Keys) -> AsyncIterator[TensorTransfer]:
    transfer = await TensorTransfer.start(client, keys, "owner", SMALL)
    yield transfer
    await transfer.close()


@pytest_asyncio.fixture(scope="module")
async def reader(client: aioredis.Redis, keys: Keys) -> AsyncIterator[TensorTransfer]:
    transfer = await TensorTransfer.start(client, keys, "reader", SMALL)
    yield transfer
    await transfer.close()


def _tensors(nbytes: int = 64 * 1024, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(nbytes // 8, generator=generator).view(-1, 2),
        torch.arange(5, dtype=torch.int64),
        torch.randn(3, 4, generator=generator).to(torch.bfloat16).t(),
    ]


async def _fetch_reason(transfer: TensorTransfer, ref: TensorRef, limit_s: float | None = None) -> str:
    with pytest.raises(TransferError) as caught:
        await transfer.fetch(ref, timeout=limit_s)
    return caught.value.reason


async def _until(predicate: object, limit_s: float = 10.0) -> bool:
    """Poll `predicate()` (a zero-argument callable) until true; False if it never became true."""
    assert callable(predicate)
    for _ in range(int(limit_s / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


@pytest.mark.parametrize("transport", ["nixl", "inline", "redis"])
async def test_round_trip(owner: TensorTransfer, reader: TensorTransfer, transport: str) -> None:
    tensors = _tensors()
    ref = await owner.publish(tensors, transport=transport)  # type: ignore[arg-type]
    assert ref.transport == transport
    with await reader.fetch(ref) as got:
        assert [t.dtype for t in got.tensors] == [t.dtype for t in tensors]
        assert [t.shape for t in got.tensors] == [t.shape for t in tensors]
        assert layout.digest(got.tensors) == layout.digest(tensors)
    assert got.released and got.tensors == []


async def test_auto_picks_inline_for_small_and_nixl_for_large(owner: TensorTransfer) -> None:
    small = await owner.publish([torch.zeros(16)])
    large = await owner.publish([torch.zeros(4096)])
    assert (small.transport, large.transport) == ("inline", "nixl")
    assert small.data and not large.data and len(large.descs) == 1
    await owner.discard(large)


async def test_all_tensors_of_a_job_move_as_one_transfer(
    owner: TensorTransfer, reader: TensorTransfer
) -> None:
    kv = [torch.randn(1, 2, 9, 8) for _ in range(2 * 12)]
    ref = await owner.publish(kv, transport="nixl")
    assert len(ref.descs) == 1 and len(ref.tensors) == 24
    with await reader.fetch(ref) as got:
        assert all(torch.equal(a, b) for a, b in zip(got.tensors, kv, strict=True))


async def test_a_second_read_of_a_consumed_ref_is_refused(
    owner: TensorTransfer, reader: TensorTransfer
) -> None:
    for transport in ("nixl", "redis"):
        ref = await owner.publish(_tensors(), transport=transport)
        (await reader.fetch(ref)).release()
        assert await _until(lambda: owner.held_count == 0)
        assert await _fetch_reason(reader, ref) == "expired"


async def test_a_read_after_expiry_is_refused(owner: TensorTransfer, reader: TensorTransfer) -> None:
    ref = await owner.publish(_tensors(), transport="nixl", ttl=0.05)
    assert await _until(lambda: owner.held_count == 0)
    assert await _fetch_reason(reader, ref) == "expired"
    # Even with a forged expiry, the freed slot's tag no longer matches.
    forged = msgspec.structs.replace(ref, expires_at=ref.expires_at + 3600)
    assert await _fetch_reason(reader, forged) == "expired"


async def test_discard_by_the_owner_and_by_a_reader(owner: TensorTransfer, reader: TensorTransfer) -> None:
    first = await owner.publish(_tensors(), transport="nixl")
    await owner.discard(first)
    assert owner.held_count == 0
    assert await _fetch_reason(reader, first) == "expired"
    second = await owner.publish(_tensors(), transport="nixl")
    await reader.discard(second)  # a cancelled job on the reading side
    assert await _until(lambda: owner.held_count == 0)
    third = await owner.publish(_tensors(), transport="redis")
    await reader.discard(third)
    assert await _fetch_reason(reader, third) == "expired"


async def test_an_own_ref_is_handed_over_without_a_copy(owner: TensorTransfer) -> None:
    tensors = _tensors()
    ref = await owner.publish(tensors, transport="nixl")
    with await owner.fetch(ref) as got:
        assert got.tensors[0].data_ptr() == ref.descs[0].addr
        assert layout.digest(got.tensors) == layout.digest(tensors)
        assert owner.held_count == 0
    assert await _fetch_reason(owner, ref) == "expired"


async def test_stale_epoch_and_gone_owner(client: aioredis.Redis, keys: Keys, reader: TensorTransfer) -> None:
    name = f"restarting-{next(_names)}"
    first = await TensorTransfer.start(client, keys, name, SMALL)
    old = await first.publish(_tensors(), transport="nixl")
    await first.close()
    assert await _fetch_reason(reader, old) == "owner_gone"
    second = await TensorTransfer.start(client, keys, name, SMALL)
    try:
        assert second.epoch != first.epoch
        assert await _fetch_reason(reader, old) == "stale"
    finally:
        await second.close()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"nbytes": 1 << 30}, "size_mismatch"),
        ({"descs": [Desc(0x1000, 0)]}, "size_mismatch"),
        ({"slot": 1 << 20}, "invalid"),
        ({"transport": "pigeon"}, "invalid"),
    ],
)
async def test_malformed_refs(
    owner: TensorTransfer, reader: TensorTransfer, change: dict[str, object], reason: str
) -> None:
    ref = await owner.publish(_tensors(), transport="nixl")
    try:
        if "descs" in change:
            change = {"descs": [Desc(ref.descs[0].addr - (1 << 40), ref.nbytes)]}
        assert await _fetch_reason(reader, msgspec.structs.replace(ref, **change)) == reason
    finally:
        await owner.discard(ref)


async def test_truncated_inline_bytes(owner: TensorTransfer, reader: TensorTransfer) -> None:
    ref = await owner.publish(_tensors(), transport="inline")
    assert await _fetch_reason(reader, msgspec.structs.replace(ref, data=ref.data[:-1])) == "size_mismatch"


async def test_publish_waits_at_the_held_bytes_cap(client: aioredis.Redis, keys: Keys) -> None:
    config = TransferConfig(held_max_bytes=2 * MIB, pool_bytes=4 * MIB, read_timeout_s=10)
    capped = await TensorTransfer.start(client, keys, f"capped-{next(_names)}", config)
    reader = await TensorTransfer.start(client, keys, f"capped-reader-{next(_names)}", config)
    try:
        payload = [torch.zeros(3 * MIB // 8, dtype=torch.float16)]  # 0.75 MiB
        held = [await capped.publish(payload, transport="nixl") for _ in range(2)]
        blocked = asyncio.create_task(capped.publish(payload, transport="nixl"))
        await asyncio.sleep(0.2)
        assert not blocked.done() and capped.held_count == 2
        (await reader.fetch(held[0])).release()
        third = await asyncio.wait_for(blocked, 10)
        (await reader.fetch(third)).release()
        with pytest.raises(TransferError) as caught:
            await capped.publish([torch.zeros(3 * MIB, dtype=torch.uint8)])
        assert caught.value.reason == "too_large"
    finally:
        await capped.close()
        await reader.close()


async def test_publish_waits_at_the_held_count_cap(client: aioredis.Redis, keys: Keys) -> None:
    config = TransferConfig(held_max_bytes=4 * MIB, held_max_count=1, pool_bytes=4 * MIB)
    capped = await TensorTransfer.start(client, keys, f"counted-{next(_names)}", config)
    try:
        first = await capped.publish([torch.zeros(8192)], transport="nixl")
        blocked = asyncio.create_task(capped.publish([torch.zeros(8192)], transport="nixl"))
        await asyncio.sleep(0.1)
        assert not blocked.done()
        await capped.discard(first)
        await capped.discard(await asyncio.wait_for(blocked, 10))
    finally:
        await capped.close()


async def test_fetch_times_out_waiting_for_a_receive_buffer(
    client: aioredis.Redis, keys: Keys, owner: TensorTransfer
) -> None:
    tight = await TensorTransfer.start(client, keys, f"tight-{next(_names)}", TransferConfig(pool_bytes=MIB))
    try:
        first = await owner.publish([torch.zeros(MIB // 8 * 5 // 8, dtype=torch.float64)], transport="nixl")
        second = await owner.publish([torch.ones(MIB // 8 * 5 // 8, dtype=torch.float64)], transport="nixl")
        kept = await tight.fetch(first)
        assert await _fetch_reason(tight, second, limit_s=0.2) == "timeout"
        kept.release()
        assert tight.pool_used_bytes == 0
        with await tight.fetch(second) as got:  # the timed-out read left the payload with its owner
            assert bool((got.tensors[0] == 1).all())
        big = await owner.publish([torch.ones(3 * MIB, dtype=torch.uint8)], transport="nixl")
        registered = tight.registered_count
        with await tight.fetch(big) as got:  # larger than the whole pool: a buffer of its own
            assert int(got.tensors[0].sum()) == 3 * MIB
            assert tight.registered_count == registered + 1
        assert tight.registered_count == registered
    finally:
        await tight.close()


async def test_a_read_given_up_in_flight_returns_its_buffer(client: aioredis.Redis, keys: Keys) -> None:
    config = TransferConfig(held_max_bytes=64 * MIB, pool_bytes=64 * MIB)
    owner = await TensorTransfer.start(client, keys, f"slow-owner-{next(_names)}", config)
    reader = await TensorTransfer.start(client, keys, f"impatient-{next(_names)}", config)
    try:
        warm = await owner.publish([torch.zeros(4096)], transport="nixl")
        (await reader.fetch(warm)).release()
        tensors = [torch.randn(12 * MIB)]  # 48 MiB: its READ takes far longer than the timeout
        ref = await owner.publish(tensors, transport="nixl")
        assert await _fetch_reason(reader, ref, limit_s=0.002) == "timeout"
        assert await _until(lambda: reader.pool_used_bytes == 0)
        with await reader.fetch(ref) as got:  # no notification went out: the owner still holds it
            assert torch.equal(got.tensors[0], tensors[0])
    finally:
        await reader.close()
        await owner.close()


async def test_without_nixl_auto_falls_back_to_shared_memory(
    client: aioredis.Redis, keys: Keys, reader: TensorTransfer
) -> None:
    config = msgspec.structs.replace(SMALL, nixl_backends=("NO_SUCH_BACKEND",))
    fallback = await TensorTransfer.start(client, keys, f"no-nixl-{next(_names)}", config)
    try:
        assert fallback.publishable == {"shm", "inline", "redis"} and fallback.registered_count == 0
        tensors = _tensors()
        ref = await fallback.publish(tensors)
        assert ref.transport == "shm"
        with await reader.fetch(ref) as got:
            assert layout.digest(got.tensors) == layout.digest(tensors)
        assert await _until(lambda: fallback.held_count == 0)
        assert await _fetch_reason(reader, ref) == "expired"
        with pytest.raises(TransferError) as caught:
            await fallback.publish(tensors, transport="nixl")
        assert caught.value.reason == "unavailable"
    finally:
        await fallback.close()


async def test_without_nixl_or_shared_memory_auto_uses_redis(
    client: aioredis.Redis, keys: Keys, reader: TensorTransfer
) -> None:
    config = TransferConfig(nixl_backends=("NO_SUCH_BACKEND",), shm_dir="/nonexistent/dir", pool_bytes=MIB)
    fallback = await TensorTransfer.start(client, keys, f"redis-only-{next(_names)}", config)
    try:
        assert fallback.publishable == {"inline", "redis"}
        tensors = [torch.randn(3 * MIB // 4)]  # 3 MiB: several Redis chunks
        ref = await fallback.publish(tensors)
        assert ref.transport == "redis"
        with await reader.fetch(ref) as got:
            assert torch.equal(got.tensors[0], tensors[0])
    finally:
        await fallback.close()


async def test_forced_transports_that_cannot_start(client: aioredis.Redis, keys: Keys) -> None:
    configs = [
        TransferConfig(transport="nixl", nixl_backends=("NO_SUCH_BACKEND",)),
        TransferConfig(transport="shm", shm_dir="/nonexistent/dir"),
    ]
    if not torch.cuda.is_available():
        configs.append(TransferConfig(device="cuda"))
    for config in configs:
        with pytest.raises(TransferError) as caught:
            await TensorTransfer.start(client, keys, f"forced-{next(_names)}", config)
        assert caught.value.reason == "unavailable"


async def test_a_decoding_redis_client_is_refused(redis_server: RedisServer, keys: Keys) -> None:
    decoding = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        with pytest.raises(ValueError):
            await TensorTransfer.start(decoding, keys, "decoding", SMALL)
    finally:
        await decoding.aclose()


async def test_a_closed_transfer_refuses_work_and_deregisters(client: aioredis.Redis, keys: Keys) -> None:
    transfer = await TensorTransfer.start(client, keys, f"closing-{next(_names)}", SMALL)
    ref = await transfer.publish(_tensors(), transport="nixl")
    assert transfer.registered_count == 4  # send buffer, slot table, receive pool, tag words
    await transfer.close()
    await transfer.close()
    assert transfer.registered_count == 0 and transfer.held_count == 0
    assert await client.exists(keys.agent(transfer.name)) == 0
    for call in (transfer.publish(_tensors()), transfer.fetch(ref)):
        with pytest.raises(TransferError) as caught:
            await call
        assert caught.value.reason == "closed"
