"""The autoscaler's settings from the environment, its documentation table, and how workers start."""

from __future__ import annotations

import sys

import pytest

import ops.autoscale
from ops.autoscale.decide import Policy
from ops.autoscale.launch import metrics_port, worker_argv, worker_device, worker_env
from ops.autoscale.settings import AutoscaleSettings
from queues.config import describe, from_env


def test_defaults_scale_the_modes_stages():
    settings = from_env(AutoscaleSettings, {})
    assert settings.scaled_stages() == ["encode", "prefill", "decode"]
    assert settings.policy("decode") == Policy(
        min_workers=1, max_workers=4, target_per_worker=8, cooldown_s=60.0
    )
    assert from_env(AutoscaleSettings, {"MODE": "e-pd"}).scaled_stages() == ["encode", "pd"]
    assert from_env(AutoscaleSettings, {"MODE": "agg"}).scaled_stages() == ["agg"]


def test_every_variable_is_read():
    env = {
        "MODE": "e-pd",
        "AUTOSCALE_STAGES": "encode, pd",
        "AUTOSCALE_MIN_WORKERS": "2",
        "AUTOSCALE_MAX_WORKERS": "6",
        "AUTOSCALE_TARGET_PER_WORKER": "3",
        "AUTOSCALE_LIMITS": "pd=0:2:64",
        "AUTOSCALE_DEVICES": "pd=cuda:1+cuda:2",
        "AUTOSCALE_COOLDOWN_S": "5",
        "AUTOSCALE_INTERVAL_S": "0.5",
        "AUTOSCALE_COMMAND": "python -m tests.fake_stage {stage}",
        "AUTOSCALE_SPAWN": "false",
        "AUTOSCALE_FORGET_AFTER_LEASES": "3",
        "AUTOSCALE_METRICS_HOST": "0.0.0.0",
        "AUTOSCALE_METRICS_PORT": "0",
        "AUTOSCALE_WORKER_METRICS_PORT": "9500",
    }
    settings = from_env(AutoscaleSettings, env)
    assert settings.scaled_stages() == ["encode", "pd"]
    assert settings.policy("encode") == Policy(2, 6, 3, 5.0)
    assert settings.policy("pd") == Policy(0, 2, 64, 5.0)
    assert (settings.interval_s, settings.spawn, settings.forget_after_leases) == (0.5, False, 3.0)
    assert (settings.metrics_host, settings.metrics_port, settings.worker_metrics_port) == (
        "0.0.0.0",
        0,
        9500,
    )
    assert settings.command == env["AUTOSCALE_COMMAND"]
    assert (settings.devices_of("pd"), settings.devices_of("encode")) == (["cuda:1", "cuda:2"], [])


def test_limits_without_target_keep_the_global_one():
    settings = from_env(AutoscaleSettings, {"AUTOSCALE_LIMITS": "encode=1:8,decode=2:3"})
    assert settings.policy("encode") == Policy(1, 8, 8, 60.0)
    assert settings.policy("decode") == Policy(2, 3, 8, 60.0)
    assert settings.policy("prefill") == Policy(1, 4, 8, 60.0)


@pytest.mark.parametrize(
    "env",
    [
        {"AUTOSCALE_MIN_WORKERS": "5", "AUTOSCALE_MAX_WORKERS": "2"},
        {"AUTOSCALE_MAX_WORKERS": "0"},
        {"AUTOSCALE_TARGET_PER_WORKER": "0"},
        {"AUTOSCALE_INTERVAL_S": "0"},
        {"AUTOSCALE_LIMITS": "decode=3:1"},
        {"AUTOSCALE_LIMITS": "decode=1:2:0"},
        {"AUTOSCALE_LIMITS": "decode=many"},
        {"AUTOSCALE_DEVICES": "decode=gpu"},
        {"AUTOSCALE_DEVICES": "decode=cuda:0+"},
        {"AUTOSCALE_DEVICES": "decoder=cuda:0"},
        {"AUTOSCALE_DEVICES": "cuda:0"},
        {"AUTOSCALE_DEVICES": "decode=cuda:0,decode=cuda:1"},
        {"MODE": "everything"},
    ],
)
def test_bad_settings_fail_at_start(env):
    with pytest.raises(ValueError, match=r"AUTOSCALE|MODE"):
        from_env(AutoscaleSettings, env)


def test_docstring_table_lists_every_variable():
    doc = ops.autoscale.__doc__ or ""
    for variable, _default in describe(AutoscaleSettings):
        assert f"| `{variable}` |" in doc, variable


def test_worker_command_uses_this_interpreter():
    assert worker_argv("python -m workers.{stage}", "decode") == [sys.executable, "-m", "workers.decode"]
    assert worker_argv("python3 -m x --stage={stage}", "pd") == [sys.executable, "-m", "x", "--stage=pd"]
    assert worker_argv("/opt/run '{stage} worker'", "agg") == ["/opt/run", "agg worker"]
    with pytest.raises(ValueError):
        worker_argv("  ", "agg")


def test_worker_environment():
    base = {"PORT": "5100", "CONSUMER_NAME": "autoscale.1", "REDIS_URL": "redis://r:1/0"}
    env = worker_env("encode.3", None, base)
    assert env == {"REDIS_URL": "redis://r:1/0", "CONSUMER_NAME": "encode.3"}
    assert worker_env("decode.2", 9601, base)["WORKER_METRICS_PORT"] == "9601"
    assert [metrics_port(9500, i, n) for i, n in ((0, 1), (0, 2), (2, 1))] == [9500, 9501, 9700]
    assert metrics_port(0, 1, 1) is None


def test_device_lists_by_stage():
    env = {"AUTOSCALE_DEVICES": "encode=cuda:0, decode=cuda:1+cuda:2 , agg=cpu"}
    settings = from_env(AutoscaleSettings, env)
    assert settings.device_lists() == {"encode": ["cuda:0"], "decode": ["cuda:1", "cuda:2"], "agg": ["cpu"]}
    assert settings.devices_of("prefill") == []  # not named: its workers keep the inherited DEVICE
    with pytest.raises(ValueError, match=r"AUTOSCALE_DEVICES entry 'decode=gpu': device='gpu': expected cpu"):
        from_env(AutoscaleSettings, {"AUTOSCALE_DEVICES": "decode=gpu"})


def test_a_workers_device_follows_its_number():
    devices = ["cuda:1", "cuda:2"]
    assert [worker_device(devices, n) for n in range(1, 6)] == [*devices, *devices, "cuda:1"]
    assert worker_device([], 3) is None
    base = {"DEVICE": "cuda:0", "REDIS_URL": "redis://r:1/0"}
    assert worker_env("decode.2", None, base, device="cuda:2")["DEVICE"] == "cuda:2"
    assert worker_env("prefill.1", None, base)["DEVICE"] == "cuda:0"  # no list: inherited
