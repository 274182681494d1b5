"""Configuration from environment variables, and the job runtime's own settings.

A settings class is a msgspec Struct whose encoded field names are the environment variable
names (set with `rename=`), so `from_env(Settings)` is one `msgspec.convert` call: strings are
converted to the field types, comma-separated strings to lists, and a bad value raises an
error naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)


def env_names(prefix: str, **overrides: str) -> Callable[[str], str]:
    """A `rename=` function: field `lease_s` -> `PREFIX_LEASE_S`, unless overridden."""

    def rename(field: str) -> str:
        return overrides.get(field, prefix + field.upper())

    return rename


def from_env(cls: type[T], env: Mapping[str, str] | None = None, **values: Any) -> T:
    """Build `cls` from the environment; explicit keyword `values` (by field name) win."""
    env = os.environ if env is None else env
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    raw: dict[str, Any] = {}
    for field in info.fields:
        if field.name in values:
            raw[field.encode_name] = values[field.name]
        elif field.encode_name in env:
            text = env[field.encode_name]
            if isinstance(field.type, msgspec.inspect.ListType | msgspec.inspect.SetType):
                raw[field.encode_name] = [part.strip() for part in text.split(",") if part.strip()]
            else:
                raw[field.encode_name] = text
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad configuration: {exc}") from None


def describe(cls: type[msgspec.Struct]) -> list[tuple[str, str]]:
    """(variable, default) pairs of a settings class, for docs and `--help`."""
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = []
    for field in info.fields:
        default = field.default if field.default is not msgspec.NODEFAULT else "(required)"
        if field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        rows.append((field.encode_name, str(default)))
    return rows


class RuntimeConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename=env_names("QUEUE_", redis_url="REDIS_URL", key_prefix="KEY_PREFIX"),
):
    """Settings of the Redis Streams job runtime (producer, consumer groups, token channel)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "triptych"
    redis_timeout_s: float = 2.0  # socket connect/read timeout for every Redis call (blocking reads excepted)
    backlog_limit: int = 10_000  # enqueue refuses once a stage stream holds this many entries
    lease_s: float = 30.0  # a job idle this long in a dead consumer is reclaimed by another
    max_attempts: int = 3  # deliveries (crashes) or retryable failures before dead-lettering
    max_reruns: int = 2  # times a job may be sent back to an earlier stage
    block_ms: int = 1000  # XREADGROUP BLOCK; also bounds how fast a stopping worker notices
    grace_s: float = 30.0  # on SIGTERM, how long in-flight jobs may run before being left pending
    heartbeat_s: float = 2.0  # heartbeat key refresh; its TTL is three times this
    silence_s: float = 15.0  # a token channel silent this long is checked for a live job
    gap_s: float = 2.0  # how long an out-of-order event waits for the missing ones
    cancel_ttl_s: float = 600.0  # how long a cancellation marker lives
