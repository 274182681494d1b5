"""TransferConfig: defaults, TRANSFER_* parsing, validation."""

from __future__ import annotations

import pytest

from queues.transfer.config import TransferConfig


def test_defaults_without_environment() -> None:
    assert TransferConfig.from_env({}) == TransferConfig()


@pytest.mark.parametrize("text", ["auto", "AUTO", " auto "])
def test_progress_delay_is_automatic_per_device_unless_set(text: str) -> None:
    auto = TransferConfig.from_env({"TRANSFER_NIXL_PROGRESS_DELAY_US": text})
    assert auto.nixl_progress_delay_us == "auto"
    assert (auto.progress_delay_us("cpu"), auto.progress_delay_us("cuda")) == (1000, 0)
    assert TransferConfig.from_env({}).progress_delay_us("cpu") == 1000
    assert TransferConfig(nixl_progress_delay_us=50).progress_delay_us("cuda") == 50
    set_ = TransferConfig.from_env({"TRANSFER_NIXL_PROGRESS_DELAY_US": "250"})
    assert set_.progress_delay_us("cpu") == set_.progress_delay_us("cuda") == 250


def test_every_variable_is_read() -> None:
    env = {
        "TRANSFER_TRANSPORT": "SHM",
        "TRANSFER_INLINE_MAX_BYTES": "4KiB",
        "TRANSFER_HELD_MAX_BYTES": "2G",
        "TRANSFER_HELD_MAX_COUNT": "16",
        "TRANSFER_TTL_S": "1.5",
        "TRANSFER_READ_TIMEOUT_S": "7",
        "TRANSFER_POOL_BYTES": "512MiB",
        "TRANSFER_DEVICE": "cpu",
        "TRANSFER_NIXL_BACKENDS": "UCX, GDS",
        "TRANSFER_NIXL_THREADS": "3",
        "TRANSFER_NIXL_PROGRESS_DELAY_US": "0",
        "TRANSFER_META_TTL_S": "9",
        "TRANSFER_POLL_S": "0.01",
        "TRANSFER_SHM_DIR": "/tmp/Some/Dir",
    }
    assert TransferConfig.from_env(env) == TransferConfig(
        transport="shm",
        inline_max_bytes=4096,
        held_max_bytes=2 << 30,
        held_max_count=16,
        ttl_s=1.5,
        read_timeout_s=7.0,
        pool_bytes=512 << 20,
        device="cpu",
        nixl_backends=("UCX", "GDS"),
        nixl_threads=3,
        nixl_progress_delay_us=0,
        meta_ttl_s=9.0,
        poll_s=0.01,
        shm_dir="/tmp/Some/Dir",
    )


def test_sizes_use_the_one_unit_convention() -> None:
    env = {
        "TRANSFER_INLINE_MAX_BYTES": "64K",
        "TRANSFER_HELD_MAX_BYTES": "1GB",
        "TRANSFER_POOL_BYTES": "1.5 MiB",
    }
    config = TransferConfig.from_env(env)
    assert (config.inline_max_bytes, config.held_max_bytes, config.pool_bytes) == (65536, 10**9, 3 << 19)


def test_empty_variables_keep_the_defaults() -> None:
    env = {"TRANSFER_TTL_S": "", "TRANSFER_DEVICE": " ", "TRANSFER_INLINE_MAX_BYTES": ""}
    assert TransferConfig.from_env(env) == TransferConfig()


@pytest.mark.parametrize(
    "env",
    [
        {"TRANSFER_TRANSPORT": "carrier-pigeon"},
        {"TRANSFER_HELD_MAX_BYTES": "lots"},
        {"TRANSFER_HELD_MAX_COUNT": "0"},
        {"TRANSFER_POOL_BYTES": "1K"},
        {"TRANSFER_TTL_S": "0"},
        {"TRANSFER_DEVICE": "tpu"},
        {"TRANSFER_NIXL_BACKENDS": " , "},
        {"TRANSFER_NIXL_PROGRESS_DELAY_US": "-1"},
    ],
)
def test_bad_values_are_rejected(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="bad configuration"):
        TransferConfig.from_env(env)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("TRANSFER_HELD_MAX_BYTES", "lots", "not a byte size"),
        ("TRANSFER_POOL_BYTES", "-1M", "not a byte size"),
        ("TRANSFER_TRANSPORT", "carrier-pigeon", "one of: auto, inline, nixl, redis, shm"),
        ("TRANSFER_NIXL_PROGRESS_DELAY_US", "soon", "one of: auto"),
        ("TRANSFER_NIXL_THREADS", "two", "Expected `int`"),
        ("TRANSFER_TTL_S", "inf", "not a finite number"),
    ],
)
def test_a_value_that_does_not_parse_names_its_variable(name: str, value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"{name}={value!r}: .*{reason}"):
        TransferConfig.from_env({name: value})
