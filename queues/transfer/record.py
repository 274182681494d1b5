"""The owner's published metadata: one Redis key per agent, written once, kept alive by a TTL.

The record carries the NIXL agent metadata (connection info and the registered send buffer), where
the send buffer and slot table are, and for shared memory the file path and host. Readers fetch it
once per owner and epoch and cache it. The key expires `meta_ttl_s` after the owner stops
refreshing it, so a dead owner's record disappears on its own; `delete` only removes the record of
the epoch that wrote it, never a successor's.
"""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

_DELETE_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class AgentRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    epoch: int
    host: str  # shm.host_id() of the owner
    pid: int  # diagnostics only: PIDs are not comparable across namespaces
    nixl_name: str = ""  # empty when the owner has no NIXL agent
    nixl_meta: bytes = b""
    data_addr: int = 0  # owner-virtual address of the send buffer (descs are relative to it)
    data_nbytes: int = 0
    slots_addr: int = 0  # owner-virtual address of the slot table (int64 [2, n_slots])
    n_slots: int = 0
    shm_path: str = ""  # shared-memory send buffer, when there is one


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AgentRecord)


def encode(record: AgentRecord) -> bytes:
    return _encoder.encode(record)


def decode(raw: bytes) -> AgentRecord:
    return _decoder.decode(raw)


async def publish(redis: aioredis.Redis, key: str, record: AgentRecord, ttl_s: float) -> None:
    await redis.set(key, encode(record), px=max(int(ttl_s * 1000), 1))


async def refresh(redis: aioredis.Redis, key: str, record: AgentRecord, ttl_s: float) -> bool:
    """Extend the TTL, writing the record again if it vanished (Redis restarted or was flushed).

    Returns False, leaving the key alone, when another process published under the same name.
    """
    raw = await redis.get(key)
    if raw is None:
        await publish(redis, key, record, ttl_s)
        return True
    if raw != encode(record):
        return False
    await redis.pexpire(key, max(int(ttl_s * 1000), 1))
    return True


async def load(redis: aioredis.Redis, key: str) -> AgentRecord | None:
    raw = await redis.get(key)
    if raw is not None and not isinstance(raw, bytes):
        raise TypeError("the Redis client decodes responses; tensor transfer needs decode_responses=False")
    return None if raw is None else decode(raw)


async def delete(redis: aioredis.Redis, key: str, record: AgentRecord) -> None:
    await redis.eval(_DELETE_IF_SAME, 1, key, encode(record))
