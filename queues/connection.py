"""Redis clients for the runtime: timeouts from the configuration, and the safety check at start."""

from __future__ import annotations

import redis.asyncio as aioredis

from queues.config import RuntimeConfig


def connect(config: RuntimeConfig, *, blocking_ms: int = 0, max_connections: int = 64) -> aioredis.Redis:
    """A client whose every call fails within the configured timeout once Redis is unreachable.

    `blocking_ms` widens the read timeout for a client that issues blocking reads (XREADGROUP BLOCK).
    Callers beyond `max_connections` wait (up to the timeout) for a free connection instead of
    failing: a burst of requests queues here rather than being refused.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        config.redis_url,
        socket_connect_timeout=config.redis_timeout_s,
        socket_timeout=config.redis_timeout_s + blocking_ms / 1000,
        socket_keepalive=True,
        health_check_interval=30,
        max_connections=max_connections,
        timeout=config.redis_timeout_s,
    )
    return aioredis.Redis(connection_pool=pool)


class UnsafeRedis(RuntimeError):
    """The Redis server could lose jobs (e.g. it evicts keys under memory pressure)."""


async def check_server(client: aioredis.Redis) -> dict[str, str]:
    """Refuse a Redis that evicts keys (an evicted job is a lost job) or is older than 6.2.

    Returns the server's version and run id (a changed run id means a restarted server)."""
    info = await client.info("server")
    memory = await client.info("memory")
    version = str(info.get("redis_version", "0"))
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (6, 2):
        raise UnsafeRedis(f"Redis {version} is too old: streams need XAUTOCLAIM (6.2 or newer)")
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise UnsafeRedis(
            f"Redis maxmemory-policy is {policy!r}: it may evict queued jobs. Set it to 'noeviction'."
        )
    return {"version": version, "run_id": str(info.get("run_id", ""))}
