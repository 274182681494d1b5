"""TransferConfig: defaults, TRANSFER_* parsing, validation."""

from __future__ import annotations

import pytest

from queues.transfer.config import TransferConfig, parse_size


def test_defaults_without_environment() -> None:
    assert TransferConfig.from_env({}) == TransferConfig()


def test_progress_delay_is_automatic_per_device_unless_set() -> None:
    auto = TransferConfig.from_env({"TRANSFER_NIXL_PROGRESS_DELAY_US": "auto"})
    assert (auto.progress_delay_us("cpu"), auto.progress_delay_us("cuda")) == (1000, 0)
    assert TransferConfig(nixl_progress_delay_us=50).progress_delay_us("cuda") == 50


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


@pytest.mark.parametrize(
    ("text", "size"),
    [("65536", 65536), ("64KiB", 65536), ("64k", 65536), ("1.5 MiB", 3 << 19), ("1GB", 1 << 30), ("7b", 7)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


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
    ],
)
def test_bad_values_are_rejected_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        TransferConfig.from_env(env)
