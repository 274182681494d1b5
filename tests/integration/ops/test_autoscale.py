"""The autoscaler against a real redis-server and real worker processes (tests/fake_stage.py):
a burst on one stage grows that stage only, idleness drains it back to the minimum without losing
a job in flight, dead workers come back under their name, dead consumers are forgotten."""

from __future__ import annotations

import asyncio
import os
import signal

import redis.asyncio as aioredis

from queues.heartbeat import Beat, live_consumers
from queues.keys import Keys
from queues.messages import Job
from queues.producer import Producer
from tests.helpers import make_job, wait_for
from tests.integration.ops.gated_stage import open_gate

KEYS = Keys()


async def live(redis: aioredis.Redis, stage: str) -> dict[str, Beat]:
    return await live_consumers(redis, KEYS, stage)


async def group_members(redis: aioredis.Redis, stage: str) -> set[str]:
    rows = await redis.xinfo_consumers(KEYS.stream(stage), stage)
    return {row["name"].decode() for row in rows}


async def runs(redis: aioredis.Redis, job: Job) -> list[str]:
    """The consumer of every execution of the job (tests/fake_stage.py records them)."""
    rows = await redis.lrange(f"test:seen:{job.request.id}", 0, -1)
    return [(row.decode() if isinstance(row, bytes) else row).split("|")[0] for row in rows]


async def executions(redis: aioredis.Redis, jobs: list[Job]) -> dict[str, list[str]]:
    return {job.request.id: await runs(redis, job) for job in jobs}


async def test_burst_grows_one_stage_then_drains_without_losing_jobs(redis, start_autoscaler):
    autoscaler = start_autoscaler()

    async def started() -> bool:
        return set(await live(redis, "encode")) == {"encode.1"} and set(await live(redis, "pd")) == {"pd.1"}

    await wait_for(started, within=60, what="one worker per stage")
    # front doors learn that these stages get workers on demand (admission waits instead of refusing)
    assert await redis.exists(KEYS.scaler("encode"), KEYS.scaler("pd")) == 2
    # encode.1 (2 slots) takes the first two `hold` jobs; the workers started for the burst take the
    # other two, and are still running them when the `flow` jobs are done and they are drained.
    held = [make_job("gate=hold", route=("encode",)) for _ in range(4)]
    flowing = [make_job("gate=flow", route=("encode",)) for _ in range(12)]
    jobs = held + flowing
    producer = Producer(redis, KEYS, backlog_limit=0)
    for job in jobs:
        await producer.enqueue(job)

    pd_seen: set[str] = set()

    async def watch_pd() -> None:
        pd_seen.update(await live(redis, "pd"), await group_members(redis, "pd"))

    async def grown() -> bool:  # 16 jobs / 4 per worker: the maximum, 4 workers, all slots busy
        await watch_pd()
        beats = await live(redis, "encode")
        return len(beats) == 4 and all(beat.busy == 2 for beat in beats.values())

    await wait_for(grown, within=90, what="encode to grow to 4 busy workers")
    await open_gate(redis, "flow")

    async def draining_busy() -> bool:  # back to one wanted worker, a drained one still at work
        await watch_pd()
        if await autoscaler.metric("triptych_autoscaler_workers", stage="encode", state="running") != 1:
            return False
        beats = await live(redis, "encode")
        return any(beat.busy for name, beat in beats.items() if name != "encode.1")

    await wait_for(draining_busy, within=60, what="a worker draining with a job in flight")
    await open_gate(redis, "hold")

    async def back_to_minimum() -> bool:
        await watch_pd()
        done = all(len(consumers) == 1 for consumers in (await executions(redis, jobs)).values())
        beats = await live(redis, "encode")
        draining = await autoscaler.metric("triptych_autoscaler_workers", stage="encode", state="draining")
        return (
            done
            and set(beats) == {"encode.1"}
            and not draining
            and not await redis.xlen(KEYS.stream("encode"))
        )

    await wait_for(back_to_minimum, within=60, what="every job done and encode back to 1 worker")

    ran = await executions(redis, jobs)
    assert all(len(consumers) == 1 for consumers in ran.values()), ran  # each job exactly once
    assert {ran[job.request.id][0] for job in held[2:]} <= {"encode.2", "encode.3", "encode.4"}
    assert await redis.xlen(KEYS.dead("encode")) == 0
    assert (await redis.xinfo_groups(KEYS.stream("encode")))[0]["pending"] == 0
    assert pd_seen == {"pd.1"}  # the other stage never moved
    events = "triptych_autoscaler_scale_events_total"
    assert await autoscaler.metric(events, stage="pd", direction="up") == 1  # its first worker
    assert await autoscaler.metric(events, stage="pd", direction="down") == 0
    assert await autoscaler.metric(events, stage="encode", direction="up") >= 2  # first worker, burst
    assert await autoscaler.metric(events, stage="encode", direction="down") >= 1
    assert await autoscaler.metric("triptych_autoscaler_worker_restarts_total", stage="encode") == 0


async def test_dead_worker_restarted_under_its_name_and_dead_consumers_forgotten(redis, start_autoscaler):
    autoscaler = start_autoscaler(MODE="agg")

    async def started() -> bool:
        return set(await live(redis, "agg")) == {"agg.1"}

    await wait_for(started, within=60, what="the agg worker")
    # A consumer left by a worker that is gone for good (another pod, an older run).
    await redis.xgroup_createconsumer(KEYS.stream("agg"), "agg", "old-pod.1")

    async def forgotten() -> bool:
        return await group_members(redis, "agg") == {"agg.1"}

    await wait_for(forgotten, what="the dead consumer to be deleted from the group")
    assert await autoscaler.metric("triptych_autoscaler_consumers_deleted_total", stage="agg") == 1

    first_pid = (await live(redis, "agg"))["agg.1"].pid
    os.kill(first_pid, signal.SIGKILL)

    async def restarted() -> bool:
        beat = (await live(redis, "agg")).get("agg.1")
        return beat is not None and beat.pid != first_pid

    await wait_for(restarted, within=60, what="agg.1 to be started again")
    assert await autoscaler.metric("triptych_autoscaler_worker_restarts_total", stage="agg") == 1

    pid = (await live(redis, "agg"))["agg.1"].pid
    autoscaler.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(autoscaler.proc.wait, 30) == 0
    assert not await live(redis, "agg")  # the worker drained and cleared its heartbeat
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"worker {pid} outlived the autoscaler")
