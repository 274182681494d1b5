"""queues.config: sizes, from_env's rules, the small settings classes, and the README's tables
checked against every registered settings class (both ways)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec
import pytest

from queues.config import ConfigError, describe, env_names, from_env, parse_size
from queues.heartbeat import ConsumerSettings, explicit_name
from queues.logs import LogSettings
from queues.metrics import WorkerMetricsSettings

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("app", "queues", "workers", "ops")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("65536", 65536),
        ("7b", 7),
        ("7 B", 7),
        ("64K", 64 << 10),
        ("64k", 64 << 10),
        ("64Ki", 64 << 10),
        ("64KiB", 64 << 10),
        ("64kib", 64 << 10),
        ("64KB", 64_000),
        ("20M", 20 << 20),
        ("20MiB", 20 << 20),
        ("20MB", 20_000_000),
        ("1G", 1 << 30),
        ("1GiB", 1 << 30),
        ("1GB", 10**9),
        ("2T", 2 << 40),
        ("2TiB", 2 << 40),
        ("2TB", 2 * 10**12),
        ("1.5MiB", 3 << 19),
        (" 1.5 GB ", 1_500_000_000),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-5", "1.5", "64X", "64KBB", "64 K B", "iB", "5iB", "0x10"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a byte size"):
        parse_size(text)


class Inner(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    max_bytes: int
    timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")


class Sample(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("T_")):
    name: str
    cache_bytes: int = 0
    mode: Literal["fast", "slow"] = "fast"
    tags: tuple[str, ...] = ("a",)
    ratio: float = 1.0
    on: bool = True
    inner: Inner = Inner(max_bytes=100, timeout_s=5.0)


def test_from_env_reads_every_kind_of_field() -> None:
    env = {
        "T_NAME": " x ",
        "T_CACHE_BYTES": "2KiB",
        "T_MODE": "SLOW",
        "T_TAGS": "b, c,",
        "T_RATIO": "0.5",
        "T_ON": "false",
        "T_INNER_MAX_BYTES": "1K",
    }
    assert from_env(Sample, env) == Sample(
        name="x",
        cache_bytes=2048,
        mode="slow",
        tags=("b", "c"),
        ratio=0.5,
        on=False,
        inner=Inner(max_bytes=1024, timeout_s=5.0),  # the unset nested field keeps the outer default's
    )


def test_empty_means_unset_but_an_empty_list_is_empty() -> None:
    env = {"T_NAME": "x", "T_CACHE_BYTES": "", "T_MODE": " ", "T_TAGS": "", "T_INNER_TIMEOUT_S": ""}
    assert from_env(Sample, env) == Sample(name="x", tags=())


def test_keyword_values_win_over_the_environment() -> None:
    inner = Inner(max_bytes=1)
    assert from_env(Sample, {"T_NAME": "x", "T_RATIO": "2"}, ratio=3.0, inner=inner) == Sample(
        name="x", ratio=3.0, inner=inner
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "T_NAME is required"),
        ({"T_NAME": "x", "T_CACHE_BYTES": "big"}, "T_CACHE_BYTES='big': not a byte size"),
        ({"T_NAME": "x", "T_MODE": "medium"}, r"T_MODE='medium': .* \(one of: fast, slow\)"),
        ({"T_NAME": "x", "T_RATIO": "half"}, "T_RATIO='half': Expected `float`, got `str`"),
        ({"T_NAME": "x", "T_RATIO": "nan"}, "T_RATIO='nan': not a finite number"),
        ({"T_NAME": "x", "T_ON": "maybe"}, "T_ON='maybe'"),
        ({"T_NAME": "x", "T_INNER_MAX_BYTES": "1.5"}, "T_INNER_MAX_BYTES='1.5': not a byte size"),
        ({"T_NAME": "x", "T_INNER_TIMEOUT_S": "0"}, r"T_INNER_\*: timeout_s must be positive"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^bad configuration: {message}"):
        from_env(Sample, env)


def test_describe_lists_nested_variables_with_the_outer_defaults() -> None:
    assert describe(Sample)[-2:] == [("T_INNER_MAX_BYTES", "100"), ("T_INNER_TIMEOUT_S", "5.0")]
    assert describe(Sample)[0] == ("T_NAME", "(required)")


def test_log_settings() -> None:
    assert from_env(LogSettings, {}) == LogSettings(format="text", level="INFO")
    assert from_env(LogSettings, {"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug"}) == LogSettings(
        format="json", level="DEBUG"
    )
    with pytest.raises(ValueError, match="LOG_LEVEL='loud'"):
        from_env(LogSettings, {"LOG_LEVEL": "loud"})


@pytest.mark.parametrize(
    ("env", "port"),
    [
        ({}, None),
        ({"PORT": "5100"}, 5100),
        ({"PORT": "5100", "WORKER_METRICS_PORT": "9601"}, 9601),
        ({"PORT": "5100", "WORKER_METRICS_PORT": ""}, 5100),
    ],
)
def test_worker_metrics_port_falls_back_to_the_runners_port(env: dict[str, str], port: int | None) -> None:
    assert from_env(WorkerMetricsSettings, env).metrics_port == port


def test_consumer_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_env(ConsumerSettings, {"CONSUMER_NAME": "decode.2"}).consumer_name == "decode.2"
    monkeypatch.setenv("CONSUMER_NAME", "")
    assert explicit_name() is None
    monkeypatch.setenv("CONSUMER_NAME", "encode.1")
    assert explicit_name() == "encode.1"
