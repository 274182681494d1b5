"""The autoscaler's decision: desired = clamp(ceil(backlog / target), min, max), up at once, down only
after the cool-down; and the backlog read from XINFO GROUPS, with `lag` computed when missing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ops.autoscale.decide import Backlog, Policy, Scaler, desired_workers
from ops.autoscale.observe import Consumer, backlog_of, consumers_of

POLICY = Policy(min_workers=1, max_workers=5, target_per_worker=4, cooldown_s=10.0)


def backlog(total: int) -> Backlog:
    return Backlog(lag=total, pending=0)


def test_desired_is_the_clamped_ceiling():
    assert [desired_workers(n, POLICY) for n in (0, 1, 4, 5, 8, 9, 20, 21, 1000)] == [
        1,
        1,
        1,
        2,
        2,
        3,
        5,
        5,
        5,
    ]
    assert desired_workers(0, Policy(min_workers=0, max_workers=3, target_per_worker=2)) == 0
    assert desired_workers(-3, POLICY) == 1  # a negative count (never expected) is no backlog


@given(
    total=st.integers(0, 10_000),
    low=st.integers(0, 8),
    extra=st.integers(0, 8),
    target=st.integers(1, 64),
)
def test_desired_properties(total: int, low: int, extra: int, target: int):
    policy = Policy(min_workers=low, max_workers=max(low + extra, 1), target_per_worker=target)
    n = desired_workers(total, policy)
    assert policy.min_workers <= n <= policy.max_workers
    assert desired_workers(total + 1, policy) >= n  # monotone
    if n < policy.max_workers:
        assert n * target >= total  # enough workers for the backlog unless capped
    if n > max(policy.min_workers, 1):
        assert (n - 1) * target < total  # and no more than needed


def test_lag_and_pending_both_count():
    scaler = Scaler("encode", POLICY)
    decision = scaler.decide(0.0, Backlog(lag=5, pending=4), running=1)
    assert (decision.wish, decision.target, decision.action) == (3, 3, "up")


def test_scales_up_at_once_and_down_only_after_the_cooldown():
    scaler = Scaler("encode", POLICY)
    assert scaler.decide(0.0, backlog(20), running=1).target == 5  # up at once
    held = [scaler.decide(t, backlog(0), running=5) for t in (1.0, 5.0, 9.9)]
    assert [(d.wish, d.target, d.action) for d in held] == [(1, 5, "hold")] * 3
    assert scaler.decide(10.5, backlog(0), running=5).target == 1  # the high wish left the window


def test_scale_down_goes_to_the_highest_wish_of_the_window():
    scaler = Scaler("encode", POLICY)
    scaler.decide(0.0, backlog(20), running=1)  # wish 5
    scaler.decide(6.0, backlog(12), running=5)  # wish 3
    decision = scaler.decide(11.0, backlog(0), running=5)
    assert (decision.wish, decision.target, decision.action) == (1, 3, "down")
    assert scaler.decide(17.0, backlog(0), running=3).target == 1


def test_new_burst_during_the_cooldown_restarts_it():
    scaler = Scaler("encode", POLICY)
    scaler.decide(0.0, backlog(20), running=1)
    scaler.decide(8.0, backlog(20), running=5)
    assert scaler.decide(12.0, backlog(0), running=5).target == 5
    assert scaler.decide(18.5, backlog(0), running=5).target == 1


def test_never_above_running_while_holding():
    scaler = Scaler("encode", POLICY)
    scaler.decide(0.0, backlog(20), running=1)  # wished 5, got only 2 (say, max lowered since)
    decision = scaler.decide(1.0, backlog(0), running=2)
    assert (decision.target, decision.action) == (2, "hold")


def test_zero_cooldown_scales_down_at_once():
    scaler = Scaler("encode", Policy(min_workers=1, max_workers=5, target_per_worker=4, cooldown_s=0.0))
    scaler.decide(0.0, backlog(20), running=1)
    assert scaler.decide(0.1, backlog(0), running=5).target == 1


def test_decision_is_logged_with_its_inputs():
    decision = Scaler("decode", POLICY).decide(0.0, Backlog(lag=7, pending=2, lag_reported=False), running=1)
    assert decision.describe() == (
        "stage=decode action=up lag=7 (computed) pending=2 running=1 wish=3 target=3"
    )


def test_backlog_uses_the_reported_lag():
    groups = [{"name": b"other", "pending": 9, "lag": 9}, {"name": b"encode", "pending": 3, "lag": 5}]
    assert backlog_of(8, groups, "encode") == Backlog(lag=5, pending=3, lag_reported=True)


def test_backlog_computes_a_null_or_missing_lag():
    null_lag = [{"name": b"encode", "pending": 3, "lag": None}]  # Redis 7 after deletions
    no_lag = [{"name": "encode", "pending": 3}]  # Redis 6.2
    for groups in (null_lag, no_lag):
        assert backlog_of(8, groups, "encode") == Backlog(lag=5, pending=3, lag_reported=False)


def test_backlog_without_group_or_stream():
    assert backlog_of(4, [], "encode") == Backlog(lag=4, pending=0, lag_reported=False)  # no worker yet
    missing = Exception("ERR no such key")
    assert backlog_of(missing, missing, "encode").total == 0


def test_consumers_from_xinfo_consumers():
    reply = [{"name": b"encode.1", "pending": 2, "idle": 15}, {"name": b"pod-x.1", "pending": 0, "idle": 9}]
    assert consumers_of(reply) == (Consumer("encode.1", 2, 15), Consumer("pod-x.1", 0, 9))
    assert consumers_of(Exception("NOGROUP")) == ()
