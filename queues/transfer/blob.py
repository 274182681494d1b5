"""Payloads stored in Redis (the fallback without NIXL or shared memory), moved in chunks.

One key per payload, written with SET (carrying the TTL) then APPENDs, read with GETRANGEs into the
receive buffer and deleted by the reader (its completion signal). Chunks keep every command small:
asyncio on Python 3.11 copies a large pending write over and over, which makes one 256 MiB command
take tens of seconds, and redis-py times a single write out after `socket_timeout`.
"""

from __future__ import annotations

import redis.asyncio as aioredis
import torch
from redis.exceptions import RedisError

from queues.transfer import layout
from queues.transfer.errors import TransferError

CHUNK = 4 << 20


async def store(redis: aioredis.Redis, key: str, payload: bytearray, ttl_s: float) -> None:
    view = memoryview(payload)
    await redis.set(key, view[:CHUNK], px=max(int(ttl_s * 1000), 1))
    for start in range(CHUNK, len(view), CHUNK):
        await redis.append(key, view[start : start + CHUNK])


async def load_into(redis: aioredis.Redis, key: str, target: torch.Tensor) -> None:
    """Fill the uint8 `target` from `key`, then delete the key."""
    nbytes = target.numel()
    try:
        for start in range(0, nbytes, CHUNK):
            end = min(start + CHUNK, nbytes)
            chunk = await redis.getrange(key, start, end - 1)
            if not isinstance(chunk, bytes):
                raise TransferError("failed", "the Redis client decodes responses; payloads need raw bytes")
            if len(chunk) != end - start:
                if not await redis.exists(key):
                    raise TransferError("expired", f"{key} is gone (expired, discarded or already read)")
                raise TransferError("size_mismatch", f"{key} holds fewer bytes than the {nbytes} announced")
            await layout.copy(target[start:end], layout.frombuffer(chunk))
        if await redis.strlen(key) not in (0, nbytes):  # 0: it expired just now, after the last chunk
            raise TransferError("size_mismatch", f"{key} holds more than the {nbytes} bytes announced")
        await redis.delete(key)
    except RedisError as exc:
        raise TransferError("failed", f"reading {key}: {exc}") from exc
