"""The autoscaler's worker pool with stand-in processes (`sleep`): names, draining, restarts.

Time is passed in, so restart pauses and kill deadlines are checked without waiting for them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest
import redis.asyncio as aioredis

from ops.autoscale.launch import worker_device, worker_env
from ops.autoscale.loop import Autoscaler
from ops.autoscale.pool import StagePool
from ops.autoscale.settings import AutoscaleSettings
from queues.config import RuntimeConfig, from_env

SLEEP = ["sleep", "60"]
IGNORES_SIGTERM = ["sh", "-c", "trap '' TERM; exec sleep 60"]


def no_env(name: str, n: int) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture
def make_pool() -> Iterator[Callable[[list[str]], StagePool]]:
    pools: list[StagePool] = []

    def make(argv: list[str]) -> StagePool:
        pools.append(StagePool("encode", argv, no_env, kill_after_s=5.0))
        return pools[-1]

    yield make
    for pool in pools:
        pool.stop_all(0.0)
        pool.kill_all()


def until(condition: Callable[[], bool]) -> None:
    """Poll a condition that an exiting process will make true (bounded, never asserted on time)."""
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the process did not exit")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_names_are_the_lowest_free_numbers(make_pool):
    pool = make_pool(SLEEP)
    pool.scale_to(3, 0.0)
    assert set(pool.pids()) == {"encode.1", "encode.2", "encode.3"}
    pool.scale_to(1, 1.0)  # the highest numbers drain
    assert (pool.running, pool.draining) == (1, 2)
    pool.scale_to(2, 2.0, taken={"encode.4"})  # 2 and 3 are still draining, 4 is someone else's
    assert pool.names() == {"encode.1", "encode.2", "encode.3", "encode.5"}


def test_drained_workers_are_forgotten_once_exited(make_pool):
    pool = make_pool(SLEEP)
    pool.scale_to(2, 0.0)
    pool.scale_to(1, 1.0)  # SIGTERM ends `sleep`

    def drained() -> bool:
        pool.reap(2.0)
        return pool.draining == 0

    until(drained)
    assert pool.names() == {"encode.1"}
    pool.scale_to(2, 3.0)
    assert pool.names() == {"encode.1", "encode.2"}  # the name is free again


def kill_worker(pool: StagePool, name: str, now: float) -> int:
    """SIGKILL a worker, then reap at `now` until its death is seen; returns the restarts."""
    pid = pool.pids()[name]
    os.kill(pid, signal.SIGKILL)
    restarted = 0

    def seen() -> bool:
        nonlocal restarted
        restarted += pool.reap(now)
        return pool.pids().get(name) != pid

    until(seen)
    return restarted


def test_dead_worker_restarts_under_its_name_after_a_pause(make_pool):
    pool = make_pool(SLEEP)
    pool.scale_to(1, 0.0)
    assert kill_worker(pool, "encode.1", now=1.0) == 0  # died 1 s after its start: paused 1 s
    assert pool.running == 1 and "encode.1" not in pool.pids()
    assert pool.reap(1.5) == 0
    assert pool.reap(2.5) == 1
    assert "encode.1" in pool.pids()


def test_worker_dying_long_after_its_start_restarts_at_once(make_pool):
    pool = make_pool(SLEEP)
    pool.scale_to(1, 0.0)
    assert kill_worker(pool, "encode.1", now=100.0) == 1
    assert "encode.1" in pool.pids()


def test_a_draining_worker_that_hangs_is_killed(make_pool):
    pool = make_pool(IGNORES_SIGTERM)
    pool.scale_to(1, 0.0)
    pid = pool.pids()["encode.1"]
    pool.scale_to(0, 1.0)
    pool.reap(3.0)  # within kill_after_s: left to drain
    assert pool.draining == 1 and alive(pid)

    def killed() -> bool:
        pool.reap(7.0)
        return pool.draining == 0

    until(killed)
    assert not alive(pid)


def test_unstartable_command_is_retried_with_longer_pauses(make_pool):
    pool = make_pool(["/nonexistent/worker"])
    pool.scale_to(1, 0.0)
    assert pool.running == 1 and not pool.pids()  # wanted, not running
    assert pool.reap(0.5) == 0  # paused 1 s
    assert pool.reap(1.5) == 0  # tried again, failed again: paused 2 s
    assert pool.reap(3.0) == 0  # still paused
    pool.scale_to(0, 4.0)
    assert (pool.running, pool.draining) == (0, 0)


def test_a_worker_keeps_its_device_and_a_freed_name_passes_its_device_on():
    """Devices go round-robin by worker number (AUTOSCALE_DEVICES): a restarted worker gets its own
    again, and the next worker to take a drained worker's name takes that name's device."""
    devices = ["cuda:1", "cuda:2"]
    given: list[tuple[str, str]] = []

    def env_for(name: str, n: int) -> dict[str, str]:
        env = worker_env(
            name, None, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, device=worker_device(devices, n)
        )
        given.append((name, env["DEVICE"]))
        return env

    pool = StagePool("decode", SLEEP, env_for, kill_after_s=5.0)
    try:
        pool.scale_to(3, 0.0)
        assert given == [("decode.1", "cuda:1"), ("decode.2", "cuda:2"), ("decode.3", "cuda:1")]
        assert kill_worker(pool, "decode.2", now=100.0) == 1  # restarted at once, on its device
        assert given[-1] == ("decode.2", "cuda:2")
        pool.scale_to(1, 101.0)  # decode.2 and decode.3 drain; SIGTERM ends `sleep`

        def drained() -> bool:
            pool.reap(102.0)
            return pool.draining == 0

        until(drained)
        pool.scale_to(2, 103.0)
        assert given[-1] == ("decode.2", "cuda:2")
    finally:
        pool.stop_all(200.0)
        pool.kill_all()


def test_the_autoscalers_pools_give_each_stage_its_devices(monkeypatch):
    monkeypatch.setenv("DEVICE", "cuda:3")
    env = {"MODE": "e-p-d", "AUTOSCALE_DEVICES": "encode=cuda:0,decode=cuda:1+cuda:2"}
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # never used: no round runs
    autoscaler = Autoscaler(from_env(AutoscaleSettings, env), RuntimeConfig(), client)

    def device(stage: str, n: int) -> str:
        return autoscaler.pools[stage].env_for(f"{stage}.{n}", n)["DEVICE"]

    assert [device("encode", n) for n in (1, 2)] == ["cuda:0", "cuda:0"]
    assert [device("decode", n) for n in (1, 2, 3)] == ["cuda:1", "cuda:2", "cuda:1"]
    assert device("prefill", 1) == "cuda:3"  # not listed: the autoscaler's own DEVICE
