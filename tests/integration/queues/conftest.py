"""Fixtures for the runtime tests: worker processes, a producer and a token-stream factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from queues.config import RuntimeConfig
from queues.keys import Keys
from queues.producer import Producer
from queues.pubsub import Subscriber
from tests.helpers import Processes


@pytest.fixture
def config(redis_url: str) -> RuntimeConfig:
    return RuntimeConfig(redis_url=redis_url, lease_s=1.0, block_ms=200, grace_s=5.0, heartbeat_s=0.5)


@pytest.fixture
def processes(config: RuntimeConfig) -> Iterator[Processes]:
    env = {
        "REDIS_URL": config.redis_url,
        "QUEUE_LEASE_S": str(config.lease_s),
        "QUEUE_BLOCK_MS": str(config.block_ms),
        "QUEUE_GRACE_S": str(config.grace_s),
        "QUEUE_HEARTBEAT_S": str(config.heartbeat_s),
        "LOG_LEVEL": "WARNING",
    }
    procs = Processes(env)
    yield procs
    procs.stop_all()


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def producer(redis: aioredis.Redis, keys: Keys) -> Producer:
    return Producer(redis, keys, backlog_limit=0)


@pytest.fixture
async def subscriber(redis: aioredis.Redis) -> AsyncIterator[Subscriber]:
    sub = Subscriber(redis)
    await sub.start()
    yield sub
    await sub.close()
