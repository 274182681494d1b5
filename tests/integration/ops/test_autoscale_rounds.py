"""One autoscaler round in-process against a real redis-server: watch-only mode (what runs beside
KEDA on Kubernetes) and a round without Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from ops.autoscale.loop import Autoscaler
from ops.autoscale.settings import AutoscaleSettings
from ops.redis import free_port
from queues.config import RuntimeConfig, from_env
from queues.keys import Keys
from queues.producer import Producer
from tests.helpers import make_job

KEYS = Keys()
WATCH = {"MODE": "agg", "AUTOSCALE_SPAWN": "false", "AUTOSCALE_TARGET_PER_WORKER": "2"}


async def test_watch_only_decides_exports_and_forgets_without_starting_anything(redis, redis_url):
    settings = from_env(AutoscaleSettings, {**WATCH, "AUTOSCALE_FORGET_AFTER_LEASES": "1"})
    autoscaler = Autoscaler(settings, RuntimeConfig(redis_url=redis_url, lease_s=0.3), redis)
    producer = Producer(redis, KEYS, backlog_limit=0)
    for _ in range(5):
        await producer.enqueue(make_job("noop", route=("agg",)))
    [decision] = await autoscaler.round(0.0)  # no group yet: all five wait
    assert (decision.backlog.lag, decision.backlog.pending, decision.wish) == (5, 0, 3)
    assert decision.running == 0 and not autoscaler.pools  # nothing started, nothing owned

    await redis.xgroup_create(KEYS.stream("agg"), "agg", id="0")
    await redis.xreadgroup("agg", "gone-pod.1", {KEYS.stream("agg"): ">"}, count=2)
    await redis.xgroup_createconsumer(KEYS.stream("agg"), "agg", "gone-pod.2")
    await redis.set(
        KEYS.heartbeat("agg", "live-pod.1"), b'{"pid":1,"host":"h","busy":0,"slots":1,"started":0}'
    )
    await redis.xgroup_createconsumer(KEYS.stream("agg"), "agg", "live-pod.1")
    [decision] = await autoscaler.round(1.0)  # silence of the heartbeat-less consumers starts now
    assert (decision.backlog.total, decision.running, decision.target) == (5, 1, 3)
    await asyncio.sleep(0.4)  # Redis' own idle clock must pass the 0.3 s too
    await autoscaler.round(2.0)
    members = {row["name"] for row in await redis.xinfo_consumers(KEYS.stream("agg"), "agg")}
    assert members == {b"gone-pod.1", b"live-pod.1"}  # gone-pod.1 still holds two entries
    sample = autoscaler.metrics.registry.get_sample_value
    assert sample("triptych_autoscaler_desired_workers", {"stage": "agg"}) == 3
    assert sample("triptych_autoscaler_pending", {"stage": "agg"}) == 2
    assert sample("triptych_autoscaler_live_consumers", {"stage": "agg"}) == 1
    assert sample("triptych_autoscaler_consumers_deleted_total", {"stage": "agg"}) == 1
    assert sample("triptych_autoscaler_scale_events_total", {"stage": "agg", "direction": "up"}) is None


async def test_a_round_without_redis_changes_nothing():
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    autoscaler = Autoscaler(from_env(AutoscaleSettings, WATCH), RuntimeConfig(), client)
    try:
        assert await autoscaler.round(0.0) == []
    finally:
        await client.aclose()
    assert autoscaler.metrics.registry.get_sample_value("triptych_autoscaler_redis_errors_total") == 1
