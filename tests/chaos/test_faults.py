"""Fault tests against the real processes: every accepted request completes with exactly its
reference tokens or ends with an explicit error; none hangs, none is lost, no token comes twice.

The mock engine (deterministic tokens, a simulated 20 ms decode step) keeps requests in flight long
enough to kill workers mid-request on 2 cores; tensors are forced through NIXL (no inline bytes) so
a dead owner really loses them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis.asyncio as aioredis

from queues.keys import Keys
from tests.chaos.cluster import Cluster, cluster
from tests.chaos.conftest import record
from tests.chaos.load import TEMPLATES, Tally, Template, classify, references, run_load, stream
from tests.models import tiny_model_dir

pytestmark = pytest.mark.timeout(600)

DEADLINE_S = 30
FAULT_ENV = {
    "ENGINE": "mock",
    "MOCK_DECODE_STEP_S": "0.02",
    "MOCK_ENCODE_ITEM_S": "0.01",
    "QUEUE_LEASE_S": "2",
    "QUEUE_HEARTBEAT_S": "0.5",
    "QUEUE_SILENCE_S": "4",
    "QUEUE_GRACE_S": "2",
    "QUEUE_BLOCK_MS": "200",
    "REQUEST_TIMEOUT_S": str(DEADLINE_S),
    "TRANSFER_INLINE_MAX_BYTES": "0",
    "TRANSFER_READ_TIMEOUT_S": "5",
}
LIMIT_S = DEADLINE_S + 15  # a client still waiting past its deadline (plus slack) is hung
PATIENT_DEADLINE_S = 120  # two decode restarts (model loads) on a loaded machine fit in it


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return tiny_model_dir("qwen2-vl")


@pytest.fixture(scope="module", params=["e-p-d", "e-pd", "agg"])
def system(request: pytest.FixtureRequest, model_dir: Path) -> Iterator[Cluster]:
    with cluster(request.param, model_dir, FAULT_ENV) as running:
        yield running


async def test_sigkill_each_stage_under_load(system: Cluster) -> None:
    refs = await references(system.url)
    for stage in system.stages:
        tally = Tally()
        load = asyncio.create_task(
            run_load(system.url, refs, clients=32, duration_s=4, limit_s=LIMIT_S, tally=tally)
        )
        await asyncio.sleep(1.5)
        await asyncio.to_thread(system.restart, f"{stage}.1")  # SIGKILL, then the same name again
        await load
        record(f"SIGKILL a {stage} worker under 32 streams ({system.mode})", tally)
        assert tally.bad() == 0, tally.details
        assert tally.outcomes["completed"] > 0, tally.details
        await system.wait_ready_async()


async def test_owner_of_tensors_dies_before_they_are_read(system: Cluster) -> None:
    """The producing worker dies after handing the job on; the reader's fetch fails cleanly and the
    job is re-run from the stage that produces the tensors."""
    if system.mode == "agg":
        pytest.skip("agg keeps every tensor in process")
    refs = await references(system.url)
    keys = Keys()
    pairs = (
        [("encode.1", "pd.1")]
        if system.mode == "e-pd"
        else [("encode.1", "prefill.1"), ("prefill.1", "decode.1")]
    )
    client_redis = aioredis.Redis.from_url(system.env["REDIS_URL"])
    try:
        for owner, reader in pairs:
            tally = Tally()
            reader_stage = reader.split(".")[0]
            system.signal(reader, signal.SIGSTOP)
            images = [t for t in TEMPLATES if t.with_image][:4]
            async with httpx.AsyncClient(timeout=LIMIT_S) as client:
                requests = [
                    asyncio.create_task(stream(client, system.url, t.body(), LIMIT_S)) for t in images
                ]
                deadline = time.monotonic() + 20
                while await client_redis.xlen(keys.stream(reader_stage)) < len(images):
                    assert time.monotonic() < deadline, "jobs never reached the stopped reader"
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(system.restart, owner)  # the tensors die with their owner
                system.signal(reader, signal.SIGCONT)
                for template, done in zip(images, await asyncio.gather(*requests), strict=True):
                    tally.add(*classify(*done, refs[template]))
            record(f"owner of the {reader_stage} stage's input tensors killed ({system.mode})", tally)
            assert tally.outcomes["completed"] == len(images), tally.details
            assert await client_redis.xlen(keys.dead(reader_stage)) == 0
            await system.wait_ready_async()
    finally:
        await client_redis.aclose()


async def _decoding(client: aioredis.Redis, keys: Keys, count: int, seen: set[bytes]) -> set[bytes]:
    """Wait until `count` decode entries not in `seen` are delivered to a decode worker; their ids."""
    deadline = time.monotonic() + 90  # a restart (model load) on a loaded machine included
    while True:
        pending = await client.xpending_range(keys.stream("decode"), keys.group("decode"), "-", "+", 100)
        fresh = {cast(bytes, entry["message_id"]) for entry in pending} - seen
        if len(fresh) >= count:
            return fresh
        assert time.monotonic() < deadline, f"{len(fresh)} of {count} jobs reached decode"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def patient(model_dir: Path) -> Iterator[Cluster]:
    """e-p-d with a deadline long enough for two worker restarts on a loaded machine."""
    with cluster("e-p-d", model_dir, {**FAULT_ENV, "REQUEST_TIMEOUT_S": str(PATIENT_DEADLINE_S)}) as running:
        yield running


async def test_decode_killed_twice_under_long_image_streams(patient: Cluster) -> None:
    """A SIGKILL of decode costs each of its jobs one re-run: an image job goes straight back to encode
    (its embeddings were freed once prefill read them), so a second kill that hits the re-run jobs
    on decode's restarted successor still leaves one of QUEUE_MAX_RERUNS=2, and nothing dead-letters."""
    system, limit_s, keys = patient, PATIENT_DEADLINE_S + 15, Keys()
    long = [Template(f"twice{i}", with_image=i % 2 == 0, seed=300 + i, max_tokens=200) for i in range(6)]
    client_redis = aioredis.Redis.from_url(system.env["REDIS_URL"])
    tally = Tally()
    try:
        async with httpx.AsyncClient(timeout=limit_s) as client:
            undisturbed = await asyncio.gather(*(stream(client, system.url, t.body(), limit_s) for t in long))
            assert all(status == "done" for status, _ in undisturbed), undisturbed
            requests = [asyncio.create_task(stream(client, system.url, t.body(), limit_s)) for t in long]
            seen: set[bytes] = set()
            for _ in range(2):
                seen |= await _decoding(client_redis, keys, len(long), seen)
                await asyncio.sleep(0.5)  # mid-decode
                await asyncio.to_thread(system.restart, "decode.1")
            for (status, ids), (_, reference) in zip(
                await asyncio.gather(*requests), undisturbed, strict=True
            ):
                tally.add(*classify(status, ids, reference))
        dead = {stage: await client_redis.xlen(keys.dead(stage)) for stage in system.stages}
    finally:
        await client_redis.aclose()
    record(
        "SIGKILL decode, then its successor once the re-run jobs reach it (long image streams, e-p-d)", tally
    )
    assert tally.outcomes["completed"] == len(long), tally.details
    assert dead == dict.fromkeys(system.stages, 0)


async def test_front_door_restart_under_load(system: Cluster) -> None:
    if system.mode != "e-p-d":
        pytest.skip("one mode is enough: the front door is the same in all")
    refs = await references(system.url)
    keys = Keys()
    long = Template("long", with_image=False, seed=7, max_tokens=1500)  # ~30 s of decode steps
    in_flight = Tally()
    async with httpx.AsyncClient(timeout=LIMIT_S) as client:
        requests = [asyncio.create_task(stream(client, system.url, long.body(), LIMIT_S)) for _ in range(8)]
        await asyncio.sleep(2.0)
        await asyncio.to_thread(system.restart, "app")
        for status, _ in await asyncio.gather(*requests):
            in_flight.add("error" if status.startswith("error") else "wrong", status)
    record("front door SIGKILLed: requests in flight", in_flight)
    assert in_flight.outcomes["error"] == 8, in_flight.details
    client_redis = aioredis.Redis.from_url(system.env["REDIS_URL"])
    try:  # their work is cancelled in the workers (it would otherwise decode for ~30 s)
        deadline = time.monotonic() + 15
        while await client_redis.xlen(keys.stream("decode")) > 0:
            assert time.monotonic() < deadline, "orphaned requests kept decoding"
            await asyncio.sleep(0.2)
    finally:
        await client_redis.aclose()
    await system.wait_ready_async()
    after = Tally()
    await run_load(system.url, refs, clients=8, duration_s=2, limit_s=LIMIT_S, tally=after)
    record("front door SIGKILLed: requests after its restart", after)
    assert after.outcomes["completed"] == after.requests > 0, after.details


async def test_redis_restarts_empty(system: Cluster) -> None:
    if system.mode != "e-p-d":
        pytest.skip("the recovery path is the same in every mode")
    refs = await references(system.url)
    in_flight = Tally()
    during = Tally()
    long = Template("redis", with_image=True, seed=9, max_tokens=200)  # ~4 s of decode steps
    async with httpx.AsyncClient(timeout=LIMIT_S) as client:
        status, reference = await stream(client, system.url, long.body(), LIMIT_S)
        assert status == "done"
        requests = [asyncio.create_task(stream(client, system.url, long.body(), LIMIT_S)) for _ in range(8)]
        await asyncio.sleep(1.5)
        system.stop_redis()
        stopped = time.monotonic()
        for template in TEMPLATES[:4]:  # while Redis is down: 503, quickly, nothing accepted
            body = {**template.body(), "stream": False}
            response = await client.post(system.url + "/v1/chat/completions", json=body, timeout=10)
            during.add("error" if response.status_code == 503 else "wrong", str(response.status_code))
        await asyncio.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
        system.start_redis()
        for status, ids in await asyncio.gather(*requests):
            in_flight.add(*classify(status, ids, reference))
    record("Redis down 10 s: requests sent meanwhile", during)
    record("Redis restarted empty: requests in flight", in_flight)
    assert during.outcomes["error"] == 4, during.details
    assert in_flight.bad() == 0, in_flight.details
    await system.wait_ready_async(within=60)  # groups recreated, front door resubscribed, no restart
    after = Tally()
    await run_load(system.url, refs, clients=8, duration_s=2, limit_s=LIMIT_S, tally=after)
    record("Redis restarted empty: requests afterwards", after)
    assert after.outcomes["completed"] == after.requests > 0, after.details


async def burst(url: str, n: int) -> Tally:
    tally = Tally()
    body = {**TEMPLATES[1].body(), "stream": False, "max_tokens": 8}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def one() -> None:
            try:
                response = await client.post(url + "/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                tally.add("lost", type(exc).__name__)
                return
            if response.status_code == 200:
                ok = response.json()["usage"]["completion_tokens"] == 8
                tally.add("completed" if ok else "wrong", response.text[:200])
            elif response.status_code == 429:
                tally.add("error", "429")
            else:
                tally.add("wrong", f"{response.status_code} {response.text[:200]}")

        await asyncio.gather(*(one() for _ in range(n)))
    return tally


@pytest.mark.parametrize("limit", [None, 100])
async def test_burst_of_1000(model_dir: Path, limit: int | None) -> None:
    env = {"ENGINE": "mock", "REQUEST_TIMEOUT_S": "120"}
    if limit is not None:
        env["QUEUE_BACKLOG_LIMIT"] = str(limit)
    with cluster("e-p-d", model_dir, env) as running:
        tally = await burst(running.url, 1000)
    label = f"burst of 1000 requests, backlog limit {limit or 'default (10000)'}"
    record(label, tally)
    assert tally.bad() == 0, tally.details
    if limit is None:
        assert tally.outcomes["completed"] == 1000
    else:
        assert (
            tally.outcomes["completed"] > 0 and tally.outcomes["completed"] + tally.outcomes["error"] == 1000
        )
