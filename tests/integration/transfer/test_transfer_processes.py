"""Tensor transfer between two real processes: an owner (transfer_owner.py) and this test process.

Byte-exact transfers from 1 KiB to 256 MiB over NIXL, shared memory, inline and Redis; a multi-tensor
KV transfer; an owner killed mid-transfer; expiry; 64 concurrent transfers; no registered memory,
shared-memory file or metadata left after an owner shuts down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from ops.redis import RedisServer
from queues.keys import Keys
from queues.transfer import Received, TensorRef, TensorTransfer, TransferConfig, TransferError, layout, shm

MIB = 1 << 20
PREFIX = "transfer-processes"
OWNER_SCRIPT = Path(__file__).with_name("transfer_owner.py")
ANSWER_TIMEOUT_S = 120
READER = TransferConfig(pool_bytes=576 * MIB, read_timeout_s=30)
# Shared-memory owners reserve up to 320 MiB; a small /dev/shm (containers default to 64 MB) would
# refuse that, and a file elsewhere shares memory between processes just the same.
SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 2 << 30 else ""


class OwnerProcess:
    """A transfer_owner.py child process and its JSON-lines conversation."""

    def __init__(self, process: asyncio.subprocess.Process, name: str) -> None:
        self.process = process
        self.name = name
        self.shm_path = ""

    @classmethod
    async def start(cls, url: str, name: str, **config: Any) -> OwnerProcess:
        config.setdefault("shm_dir", SHM_DIR or tempfile.gettempdir())
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(OWNER_SCRIPT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        owner = cls(process, name)
        answer = await owner.call(op="start", url=url, prefix=PREFIX, name=name, config=config)
        owner.shm_path = answer["shm_path"]
        return owner

    async def call(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        await self.process.stdin.drain()
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            line = await self.process.stdout.readline()
        assert line, f"owner {self.name} exited (code {self.process.returncode})"
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer, answer["error"]
        return answer

    async def publish(
        self, tensors: list[dict[str, Any]], seed: int, **options: Any
    ) -> tuple[TensorRef, str]:
        answer = await self.call(op="publish", tensors=tensors, seed=seed, **options)
        return msgspec.msgpack.decode(base64.b64decode(answer["ref"]), type=TensorRef), answer["digest"]

    async def held_count(self) -> int:
        return int((await self.call(op="stats"))["held_count"])

    async def wait_until_nothing_held(self, limit_s: float = 20.0) -> int:
        """Poll the owner until it holds nothing (or `limit_s` passes); returns what it still holds."""
        for _ in range(int(limit_s / 0.05)):
            held = await self.held_count()
            if held == 0:
                return 0
            await asyncio.sleep(0.05)
        return await self.held_count()

    def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.close()
            try:
                async with asyncio.timeout(30):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _bytes(nbytes: int) -> list[dict[str, Any]]:
    return [{"dtype": "uint8", "shape": [nbytes]}]


def _check(received: Received, digest: str) -> None:
    with received:
        assert layout.digest(received.tensors) == digest


@pytest_asyncio.fixture(scope="module")
async def client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="module")
async def reader(client: aioredis.Redis) -> AsyncIterator[TensorTransfer]:
    transfer = await TensorTransfer.start(client, Keys(PREFIX), "reader", READER)
    yield transfer
    await transfer.close()
    assert transfer.registered_count == 0


@pytest_asyncio.fixture(scope="module")
async def nixl_owner(redis_server: RedisServer) -> AsyncIterator[OwnerProcess]:
    owner = await OwnerProcess.start(redis_server.url, "owner-nixl", held_max_bytes=320 * MIB, pool_bytes=MIB)
    yield owner
    await owner.stop()


@pytest_asyncio.fixture(scope="module")
async def shm_owner(redis_server: RedisServer) -> AsyncIterator[OwnerProcess]:
    owner = await OwnerProcess.start(
        redis_server.url, "owner-shm", transport="shm", held_max_bytes=320 * MIB, pool_bytes=MIB
    )
    yield owner
    await owner.stop()


CASES = [
    ("nixl", 1024),
    ("nixl", 1000 * 1000 + 7),
    ("nixl", 64 * MIB),
    ("nixl", 256 * MIB),
    ("shm", 1024),
    ("shm", MIB + 1),
    ("shm", 256 * MIB),
    ("inline", 1024),
    ("inline", 64 * 1024),
    ("redis", 1024),
    ("redis", 9 * MIB + 5),
    ("redis", 256 * MIB),
]


@pytest.mark.parametrize(("transport", "nbytes"), CASES, ids=[f"{t}-{n}" for t, n in CASES])
async def test_byte_exact(
    nixl_owner: OwnerProcess, shm_owner: OwnerProcess, reader: TensorTransfer, transport: str, nbytes: int
) -> None:
    owner = shm_owner if transport == "shm" else nixl_owner
    ref, digest = await owner.publish(_bytes(nbytes), seed=nbytes, transport=transport)
    assert ref.transport == transport and ref.nbytes == nbytes
    _check(await reader.fetch(ref), digest)
    assert await owner.wait_until_nothing_held() == 0


@pytest.mark.parametrize("transport", ["nixl", "shm"])
async def test_kv_cache_of_all_layers_in_one_transfer(
    nixl_owner: OwnerProcess, shm_owner: OwnerProcess, reader: TensorTransfer, transport: str
) -> None:
    layers = 6
    specs: list[dict[str, Any]] = [{"dtype": "bfloat16", "shape": [1, 2, 37, 16]} for _ in range(2 * layers)]
    specs += [
        {"dtype": "int64", "shape": []},  # e.g. rope_delta
        {"dtype": "float32", "shape": [5, 3], "transposed": True},
        {"dtype": "bool", "shape": [7]},
        {"dtype": "float16", "shape": [0, 4]},
    ]
    owner = shm_owner if transport == "shm" else nixl_owner
    ref, digest = await owner.publish(specs, seed=7, transport=transport)
    assert len(ref.descs) == 1 and len(ref.tensors) == len(specs)
    with await reader.fetch(ref) as got:
        assert [list(t.shape) for t in got.tensors] == [s["shape"] for s in specs]
        assert [layout.dtype_name(t.dtype) for t in got.tensors] == [s["dtype"] for s in specs]
        assert layout.digest(got.tensors) == digest


async def test_64_concurrent_transfers(nixl_owner: OwnerProcess, reader: TensorTransfer) -> None:
    published = [
        await nixl_owner.publish(_bytes(4096 + 37 * 1024 * i), seed=i, transport="nixl") for i in range(64)
    ]
    results = await asyncio.gather(*(reader.fetch(ref) for ref, _ in published))
    for received, (_, digest) in zip(results, published, strict=True):
        _check(received, digest)
    assert await nixl_owner.wait_until_nothing_held() == 0


async def test_expiry_frees_the_owners_memory(nixl_owner: OwnerProcess, reader: TensorTransfer) -> None:
    assert await nixl_owner.wait_until_nothing_held() == 0
    ref, _ = await nixl_owner.publish(_bytes(4 * MIB), seed=1, transport="nixl", ttl=0.5)
    stats = await nixl_owner.call(op="stats")
    assert stats["held_count"] == 1 and stats["held_bytes"] == 4 * MIB
    assert await nixl_owner.wait_until_nothing_held() == 0  # nobody read it
    with pytest.raises(TransferError) as caught:
        await reader.fetch(ref)
    assert caught.value.reason == "expired"


async def test_owner_killed_mid_transfer(redis_server: RedisServer, reader: TensorTransfer) -> None:
    owner = await OwnerProcess.start(redis_server.url, "victim", held_max_bytes=400 * MIB, pool_bytes=MIB)
    try:
        warm, digest = await owner.publish(_bytes(4096), seed=0, transport="nixl")
        _check(await reader.fetch(warm), digest)  # connected, metadata cached
        published = [await owner.publish(_bytes(64 * MIB), seed=i, transport="nixl") for i in range(6)]
        unread, _ = await owner.publish(_bytes(MIB), seed=9, transport="nixl")
        fetches = [asyncio.create_task(reader.fetch(ref)) for ref, _ in published]
        await asyncio.wait(fetches, return_when=asyncio.FIRST_COMPLETED)
        owner.kill()
        outcomes = await asyncio.gather(*fetches, return_exceptions=True)
        failed = 0
        for outcome, (_, expected) in zip(outcomes, published, strict=True):
            if isinstance(outcome, Received):
                _check(outcome, expected)  # finished before the kill: must be exact
            else:
                assert isinstance(outcome, TransferError), repr(outcome)
                failed += 1
        assert failed > 0
        with pytest.raises(TransferError) as caught:
            await reader.fetch(unread)
        assert caught.value.reason in ("owner_gone", "failed")
    finally:
        owner.kill()
        await owner.stop()


async def test_shared_memory_owner_killed(redis_server: RedisServer, reader: TensorTransfer) -> None:
    owner = await OwnerProcess.start(
        redis_server.url, "shm-victim", transport="shm", held_max_bytes=8 * MIB, pool_bytes=MIB
    )
    try:
        ref, digest = await owner.publish(_bytes(MIB), seed=3, transport="shm")
        _check(await reader.fetch(ref), digest)
        unread, _ = await owner.publish(_bytes(MIB), seed=4, transport="shm")
        owner.kill()
        await owner.process.wait()
        with pytest.raises(TransferError) as caught:
            await reader.fetch(unread)
        assert caught.value.reason == "owner_gone"
        # The killed owner left its file behind; the next start on this host sweeps it.
        assert owner.shm_path in shm.sweep(str(Path(owner.shm_path).parent))
    finally:
        await owner.stop()


@pytest.mark.parametrize("transport", ["nixl", "shm"])
async def test_nothing_left_after_an_owner_shuts_down(
    redis_server: RedisServer, client: aioredis.Redis, reader: TensorTransfer, transport: str
) -> None:
    owner = await OwnerProcess.start(
        redis_server.url, f"closing-{transport}", transport=transport, held_max_bytes=8 * MIB, pool_bytes=MIB
    )
    try:
        read, digest = await owner.publish(_bytes(MIB), seed=5, transport=transport)
        _check(await reader.fetch(read), digest)
        unread, _ = await owner.publish(_bytes(MIB), seed=6, transport=transport)
        assert await client.exists(Keys(PREFIX).agent(owner.name)) == 1
        answer = await owner.call(op="close")
        assert answer == {"registered": 0, "shm_exists": False}
        assert await client.exists(Keys(PREFIX).agent(owner.name)) == 0
        with pytest.raises(TransferError) as caught:
            await reader.fetch(unread)
        assert caught.value.reason in ("owner_gone", "expired")
    finally:
        await owner.stop()
