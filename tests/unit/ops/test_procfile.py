"""The Procfile runner with real processes: parsing, ports and names, stop on the first exit, a
drain that waits for a slow process, and a kill for one that ignores SIGTERM."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ops.procfile import Runner, parse


def test_parse_skips_comments_and_refuses_malformed_lines() -> None:
    assert parse("# a comment\napp: python -m app\n\nagg:python -m workers.agg\n") == [
        ("app", "python -m app"),
        ("agg", "python -m workers.agg"),
    ]
    for bad in ("app python -m app", "two words: x", "app:", ""):
        with pytest.raises(ValueError):
            parse(bad)


def runner(tmp_path: Path, entries: list[tuple[str, str]], stop_after_s: float = 5.0) -> Runner:
    env = {key: value for key, value in os.environ.items() if key != "CONSUMER_NAME"}
    started = Runner(entries, env, 7000, tmp_path)
    started.stop_after_s = stop_after_s
    return started.start()


def test_each_process_gets_its_port_and_name(tmp_path: Path) -> None:
    record = """sh -c 'echo "$PORT $CONSUMER_NAME" > {}; sleep 30'"""
    entries = [(name, record.format(tmp_path / name)) for name in ("app", "agg")]
    running = runner(tmp_path, entries)
    try:
        deadline = time.monotonic() + 10
        while not all((tmp_path / n).exists() and (tmp_path / n).read_text() for n in ("app", "agg")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        running.stop("test over")
    assert (tmp_path / "app").read_text().split() == ["7000", "app.1"]
    assert (tmp_path / "agg").read_text().split() == ["7100", "agg.1"]


def test_one_exit_stops_the_others_after_their_drain(tmp_path: Path) -> None:
    drained = tmp_path / "drained"
    slow = f"sh -c \"trap 'sleep 0.5; touch {drained}; exit 0' TERM; while true; do sleep 0.05; done\""
    running = runner(tmp_path, [("worker", slow), ("crash", "sh -c 'sleep 0.3; exit 3'")])
    assert running.run_until(lambda: "") == 3
    assert drained.exists()  # it got SIGTERM and the time to finish
    assert not running.running()


def test_a_process_ignoring_sigterm_is_killed_after_the_stop_time(tmp_path: Path) -> None:
    stubborn = "sh -c \"trap '' TERM; while true; do sleep 0.05; done\""
    running = runner(tmp_path, [("stubborn", stubborn)], stop_after_s=0.5)
    time.sleep(0.2)
    began = time.monotonic()
    running.stop("test over")
    assert not running.running() and 0.4 < time.monotonic() - began < 5
