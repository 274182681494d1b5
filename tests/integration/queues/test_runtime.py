"""The job runtime against a real redis-server and real worker processes (tests/fake_stage.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from queues.cancel import cancel_request
from queues.channel import Output, TokenStream
from queues.config import RuntimeConfig
from queues.errors import BacklogFull
from queues.keys import Keys
from queues.messages import ErrorEvent, Job, ProgressEvent, TokenEvent
from queues.producer import Producer
from queues.pubsub import Subscriber
from tests.helpers import make_job, wait_for

WORKER = ("-m", "tests.fake_stage")


async def seen(redis: aioredis.Redis, job: Job) -> list[list[str]]:
    """Every execution of the job: [consumer, stage, deliveries, attempt, reruns]."""
    rows = await redis.lrange(f"test:seen:{job.request.id}", 0, -1)
    return [(row.decode() if isinstance(row, bytes) else row).split("|") for row in rows]


async def run_to_end(
    job: Job, producer: Producer, subscriber: Subscriber, redis: aioredis.Redis, keys: Keys
) -> list[Output]:
    async with TokenStream(subscriber, redis, keys, job.request.id, silence_s=5.0, gap_s=1.0) as stream:
        entry_id = await producer.enqueue(job)
        stream.location = ProgressEvent(stage=job.stage, stream=keys.stream(job.stage), entry_id=entry_id)
        return [event async for event in stream.events()]


@contextlib.asynccontextmanager
async def started(
    job: Job, producer: Producer, subscriber: Subscriber, redis: aioredis.Redis, keys: Keys
) -> AsyncIterator[TokenStream]:
    """Enqueue `job` with its token stream open; enter once a worker has started running it."""
    async with TokenStream(subscriber, redis, keys, job.request.id, silence_s=10.0, gap_s=1.0) as stream:
        entry_id = await producer.enqueue(job)
        stream.location = ProgressEvent(stage=job.stage, stream=keys.stream(job.stage), entry_id=entry_id)

        async def running() -> bool:
            return len(await seen(redis, job)) == 1

        await wait_for(running, what="the job to start")
        yield stream


def final_token(events: list[Output]) -> TokenEvent:
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, TokenEvent) and event.finish_reason == "stop", event
    return event


async def test_hand_off_through_two_stages(redis, processes, producer, subscriber, keys):
    processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1"})
    processes.start(*WORKER, "decode", env={"CONSUMER_NAME": "b.1"})
    job = make_job("noop", route=("prefill", "decode"))
    final_token(await run_to_end(job, producer, subscriber, redis, keys))
    assert [row[:2] for row in await seen(redis, job)] == [["a.1", "prefill"], ["b.1", "decode"]]

    # acknowledged entries are deleted, so stream length means backlog (b settles just after its
    # final event reaches the client)
    async def settled() -> bool:
        return await redis.xlen(keys.stream("prefill")) == 0 and await redis.xlen(keys.stream("decode")) == 0

    await wait_for(settled, within=10, what="both entries to be acknowledged and deleted")


async def test_sigkill_mid_job_another_worker_completes_it_once(redis, processes, producer, subscriber, keys):
    first = processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1"})
    job = make_job("sleep=1.5")
    async with started(job, producer, subscriber, redis, keys) as stream:
        first.send_signal(signal.SIGKILL)
        first.wait()
        processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.2"})
        events = [event async for event in stream.events()]
    final_token(events)
    runs = await seen(redis, job)
    assert [row[0] for row in runs] == ["a.1", "a.2"]
    assert runs[1][2] == "2"  # the second delivery of the same entry


async def test_restarted_worker_reprocesses_its_own_pending(redis, processes, producer, subscriber, keys):
    # A lease far longer than the test: only the restarted worker's own re-read can finish the job.
    env = {"CONSUMER_NAME": "a.7", "QUEUE_LEASE_S": "600"}
    first = processes.start(*WORKER, "prefill", env=env)
    job = make_job("sleep=1.5")
    async with started(job, producer, subscriber, redis, keys) as stream:
        first.send_signal(signal.SIGKILL)
        first.wait()
        processes.start(*WORKER, "prefill", env=env)
        events = [event async for event in stream.events()]
    final_token(events)
    assert [(row[0], row[2]) for row in await seen(redis, job)] == [("a.7", "1"), ("a.7", "2")]


async def test_sigterm_lets_the_running_job_finish(redis, processes, producer, subscriber, keys):
    worker = processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1"})
    job = make_job("sleep=1.0")
    async with started(job, producer, subscriber, redis, keys) as stream:
        worker.send_signal(signal.SIGTERM)
        events = [event async for event in stream.events()]
    final_token(events)
    assert await asyncio.to_thread(worker.wait, 10) == 0
    assert len(await seen(redis, job)) == 1


async def test_sigterm_past_grace_leaves_job_pending(redis, processes, producer, subscriber, keys):
    worker = processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1", "QUEUE_GRACE_S": "0.2"})
    job = make_job("sleep=2.0")
    async with started(job, producer, subscriber, redis, keys) as stream:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 10) == 0
        assert await redis.xlen(keys.stream("prefill")) == 1  # not lost, not acknowledged
        processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.2"})
        events = [event async for event in stream.events()]
    final_token(events)
    assert [row[0] for row in await seen(redis, job)] == ["a.1", "a.2"]


async def test_failing_job_is_dead_lettered_while_others_flow(redis, processes, producer, subscriber, keys):
    processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1"})
    poison = make_job("fail")
    others = [make_job("noop") for _ in range(20)]
    results = await asyncio.gather(
        run_to_end(poison, producer, subscriber, redis, keys),
        *(run_to_end(job, producer, subscriber, redis, keys) for job in others),
    )
    for events in results[1:]:
        final_token(events)
    [error] = results[0]
    assert isinstance(error, ErrorEvent) and error.code == "dead_letter"
    assert "this job always fails" in error.message
    assert [row[3] for row in await seen(redis, poison)] == ["0", "1", "2"]  # attempts
    [(_, fields)] = await redis.xrange(keys.dead("prefill"))
    assert fields[b"rid"].decode() == poison.request.id
    assert fields[b"reason"] == b"failed 3 times"


async def test_crashing_job_dead_lettered_after_max_deliveries(redis, processes, producer, subscriber, keys):
    """A job that kills its worker every time: after max_attempts deliveries it goes to the dead
    letters, and a job queued behind it still completes."""
    poison, healthy = make_job("crash"), make_job("noop")

    async def supervise() -> None:  # restart the worker under the same name whenever it dies
        while True:
            proc = processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1", "TEST_CONCURRENCY": "1"})
            await asyncio.to_thread(proc.wait)

    supervisor = asyncio.create_task(supervise())
    try:
        crashed, completed = await asyncio.gather(
            run_to_end(poison, producer, subscriber, redis, keys),
            run_to_end(healthy, producer, subscriber, redis, keys),
        )
    finally:
        supervisor.cancel()
    final_token(completed)
    [error] = crashed
    assert isinstance(error, ErrorEvent) and error.code == "dead_letter"
    assert [row[2] for row in await seen(redis, poison)] == ["1", "2", "3"]
    assert await redis.xlen(keys.dead("prefill")) == 1


async def test_rerun_goes_back_to_the_first_stage(redis, processes, producer, subscriber, keys):
    processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1"})
    processes.start(*WORKER, "decode", env={"CONSUMER_NAME": "b.1"})
    job = make_job("rerun", route=("prefill", "decode"))
    final_token(await run_to_end(job, producer, subscriber, redis, keys))
    runs = [(row[1], row[4]) for row in await seen(redis, job)]
    assert runs == [("prefill", "0"), ("decode", "0"), ("prefill", "1"), ("decode", "1")]


async def test_fatal_error_reaches_the_client_without_retry(redis, processes, producer, subscriber, keys):
    processes.start(*WORKER, "prefill")
    job = make_job("fatal")
    [error] = await run_to_end(job, producer, subscriber, redis, keys)
    assert isinstance(error, ErrorEvent)
    assert (error.status, error.code, error.message) == (422, "bad_job", "bad input for this job")
    assert len(await seen(redis, job)) == 1


async def test_deadline_ends_a_running_job_with_504(redis, processes, producer, subscriber, keys):
    processes.start(*WORKER, "prefill")
    job = make_job("sleep=30", deadline_s=1.0)
    [error] = await run_to_end(job, producer, subscriber, redis, keys)
    assert isinstance(error, ErrorEvent) and error.status == 504 and error.code == "deadline_exceeded"
    assert await redis.xlen(keys.stream("prefill")) == 0


async def test_cancel_stops_a_running_job(redis, processes, producer, keys, config):
    processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": "a.1"})
    job = make_job("sleep=60")
    await producer.enqueue(job)

    async def started() -> bool:
        return len(await seen(redis, job)) == 1

    await wait_for(started, what="the job to start")
    await cancel_request(redis, keys, job.request.id, config.cancel_ttl_s)

    async def gone() -> bool:
        return await redis.xlen(keys.stream("prefill")) == 0

    await wait_for(gone, within=10, what="the cancelled job to be acknowledged")
    groups = await redis.xinfo_groups(keys.stream("prefill"))
    assert groups[0]["pending"] == 0


async def test_cancelled_request_is_not_handed_on(redis, processes, producer, keys, config):
    job = make_job("noop", route=("prefill", "decode"))
    await cancel_request(redis, keys, job.request.id, config.cancel_ttl_s)
    await producer.enqueue(job)  # the worker starts after the broadcast: only the marker can stop it
    processes.start(*WORKER, "prefill")

    async def gone() -> bool:
        return (
            await redis.xlen(keys.stream("prefill")) == 0 and await redis.exists(keys.stream("prefill")) == 1
        )

    await wait_for(gone, what="stage a to settle the job")
    assert await redis.xlen(keys.stream("decode")) == 0


async def test_thousand_jobs_over_four_consumers(redis, processes, producer, keys):
    for n in range(4):
        processes.start(*WORKER, "prefill", env={"CONSUMER_NAME": f"a.{n}", "TEST_CONCURRENCY": "32"})
    jobs = [make_job("noop") for _ in range(1000)]
    for chunk in range(0, len(jobs), 100):
        await asyncio.gather(*(producer.enqueue(job) for job in jobs[chunk : chunk + 100]))

    async def drained() -> bool:
        return await redis.xlen(keys.stream("prefill")) == 0

    await wait_for(drained, within=120, what="all jobs to be processed")
    pipe = redis.pipeline(transaction=False)
    for job in jobs:
        pipe.llen(f"test:seen:{job.request.id}")
    counts = await pipe.execute()
    assert counts == [1] * len(jobs)  # every job exactly once: no crash, so no duplicate
    consumers = {
        row["name"]: row["pending"] for row in await redis.xinfo_consumers(keys.stream("prefill"), "prefill")
    }
    assert set(consumers.values()) == {0}
    assert len(consumers) == 4


async def test_backlog_limit_refuses_clearly(redis, keys):
    limited = Producer(redis, keys, backlog_limit=3)
    for _ in range(3):
        await limited.enqueue(make_job())
    with pytest.raises(BacklogFull, match="at its limit of 3"):
        await limited.enqueue(make_job())
    assert await redis.xlen(keys.stream("prefill")) == 3


async def test_unknown_message_version_is_dead_lettered_with_reason(redis, processes, subscriber, keys):
    processes.start(*WORKER, "prefill")
    job = make_job()
    async with TokenStream(subscriber, redis, keys, job.request.id, silence_s=10.0, gap_s=1.0) as stream:
        await redis.xadd(keys.stream("prefill"), {"v": "99", "rid": job.request.id, "d": b"\x00"})
        [error] = [event async for event in stream.events()]
    assert isinstance(error, ErrorEvent) and error.code == "dead_letter"
    [(_, fields)] = await redis.xrange(keys.dead("prefill"))
    assert fields[b"reason"] == b"unsupported message version '99' (reads 1)"


def test_config_reads_environment() -> None:
    from queues.config import from_env

    config = from_env(RuntimeConfig, {"REDIS_URL": "redis://h:1/0", "QUEUE_MAX_ATTEMPTS": "5"})
    assert (config.redis_url, config.max_attempts) == ("redis://h:1/0", 5)
    with pytest.raises(ValueError, match="QUEUE_LEASE_S"):
        from_env(RuntimeConfig, {"QUEUE_LEASE_S": "soon"})
