"""Configuration from environment variables, and the job runtime's own settings.

Every setting of every process is a field of a settings class: a msgspec Struct whose encoded
field names are the environment variable names (set with `rename=`). `from_env(Settings)` reads
them; `ops.settings.SETTINGS` lists every class, and the document whose table lists its variables.

How a variable's text becomes a value, the same for every class:

- An empty variable counts as unset (the default holds), except a list, where it means empty.
- Lists are comma-separated (`API_KEYS=k1,k2`); spaces around items are dropped.
- Fixed choices (`MODE`, `LOG_FORMAT`, `TRANSFER_TRANSPORT` ...) are matched in any case.
- Numbers must be finite; booleans are `true`/`false` (or `1`/`0`).
- Byte sizes: every variable whose name ends in `_BYTES` takes a plain byte count or a number
  with a unit, read by `parse_size`: `K`, `M`, `G`, `T` and `KiB`, `MiB`, `GiB`, `TiB` are powers
  of 1024; `KB`, `MB`, `GB`, `TB` are powers of 1000 (`64K` = `64KiB` = 65536, `64KB` = 64000,
  `1.5MiB` = 1572864). Units are matched in any case.
- A field whose type is itself a settings struct is read from `<ITS VARIABLE>_<NESTED VARIABLE>`:
  MediaConfig's `image` limits come from `MEDIA_IMAGE_MAX_BYTES`, `MEDIA_IMAGE_READ_TIMEOUT_S` ...;
  nested fields not set keep the values of the outer field's default.

A bad value raises ConfigError (a ValueError) naming the variable and its text, e.g.
"bad configuration: QUEUE_LEASE_S='soon': Expected `float`, got `str`"; a process that cannot start
with its configuration says so in that one line, without a traceback.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)", re.IGNORECASE)
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}
_SEQUENCES = (
    msgspec.inspect.ListType,
    msgspec.inspect.SetType,
    msgspec.inspect.FrozenSetType,
    msgspec.inspect.VarTupleType,
)
_UNSET: Any = object()


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and says what is wrong."""


def parse_size(text: str) -> int:
    """`"65536"`, `"64K"`, `"64KiB"` -> 65536; `"64KB"` -> 64000; `"1.5GiB"`; see the module docstring."""
    match = _SIZE.fullmatch(text.strip())
    number, prefix, binary, byte = match.groups() if match else ("", "", "", "")
    if not number or (binary and not prefix) or ("." in number and not prefix):
        raise ValueError(
            "not a byte size: expected a byte count or a number with a unit,"
            " K/M/G/T or KiB/MiB/GiB/TiB (x1024) or KB/MB/GB/TB (x1000)"
        )
    if not prefix:
        return int(number)
    base = 1000 if byte and not binary else 1024
    return int(Decimal(number) * base ** _POWERS[prefix.lower()])


def env_names(prefix: str, **overrides: str) -> Callable[[str], str]:
    """A `rename=` function: field `lease_s` -> `PREFIX_LEASE_S`, unless overridden."""

    def rename(field: str) -> str:
        return overrides.get(field, prefix + field.upper())

    return rename


def from_env(cls: type[T], env: Mapping[str, str] | None = None, **values: Any) -> T:
    """Build `cls` from the environment; explicit keyword `values` (by field name) win."""
    return _build(cls, os.environ if env is None else env, "", values, None)


def describe(cls: type[msgspec.Struct]) -> list[tuple[str, str]]:
    """(variable, default) pairs of a settings class, nested structs included, for docs and `--help`."""
    return _describe(cls, "", None)


def _build(cls: type[T], env: Mapping[str, str], prefix: str, values: Mapping[str, Any], base: T | None) -> T:
    kwargs: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        name = prefix + field.encode_name
        if field.name in values:
            kwargs[field.name] = _convert(values[field.name], field.type, name)
        elif _is_struct(field.type):
            default = getattr(base, field.name) if base is not None else _default(field)
            kwargs[field.name] = _build(
                field.type, env, name + "_", {}, None if default is msgspec.NODEFAULT else default
            )
        elif (text := env.get(name)) is not None and (value := _parse(text, field, name)) is not _UNSET:
            kwargs[field.name] = value
        elif base is None and field.required:
            raise ConfigError(f"bad configuration: {name} is required")
    try:
        return cls(**kwargs) if base is None else msgspec.structs.replace(base, **kwargs)
    except (TypeError, ValueError) as exc:  # __post_init__'s checks
        context = f"{prefix}*: " if prefix else ""
        raise ConfigError(f"bad configuration: {context}{exc}") from None


def _parse(text: str, field: msgspec.structs.FieldInfo, name: str) -> Any:
    text = text.strip()
    info = _unwrap(msgspec.inspect.type_info(field.type))
    if isinstance(info, _SEQUENCES):
        choices = _choices(_unwrap(info.item_type))
        items = [_choose(part.strip(), choices) for part in text.split(",") if part.strip()]
        return _convert(items, field.type, name, text, choices)
    if not text:
        return _UNSET
    if field.name.endswith("_bytes"):
        try:
            size = parse_size(text)
        except ValueError as exc:
            raise ConfigError(f"bad configuration: {name}={text!r}: {exc}") from None
        return _convert(size, field.type, name, text)
    choices = _choices(info)
    return _convert(_choose(text, choices), field.type, name, text, choices and choices + _numbers(info))


def _convert(
    value: Any, type_: Any, name: str, text: str | None = None, choices: tuple[str, ...] = ()
) -> Any:
    shown = repr(value if text is None else text)
    try:
        result = msgspec.convert(value, type_, strict=False)
    except msgspec.ValidationError as exc:
        hint = f" (one of: {', '.join(choices)})" if choices else ""
        raise ConfigError(f"bad configuration: {name}={shown}: {exc}{hint}") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise ConfigError(f"bad configuration: {name}={shown}: not a finite number")
    return result


def _describe(cls: type[msgspec.Struct], prefix: str, base: msgspec.Struct | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for field in msgspec.structs.fields(cls):
        name = prefix + field.encode_name
        default = getattr(base, field.name) if base is not None else _default(field)
        if _is_struct(field.type):
            rows += _describe(field.type, name + "_", None if default is msgspec.NODEFAULT else default)
        else:
            rows.append((name, "(required)" if default is msgspec.NODEFAULT else str(default)))
    return rows


def _default(field: msgspec.structs.FieldInfo) -> Any:
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return field.default


def _is_struct(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, msgspec.Struct)


def _unwrap(info: msgspec.inspect.Type) -> msgspec.inspect.Type:
    while isinstance(info, msgspec.inspect.Metadata):
        info = info.type
    return info


def _choose(text: str, choices: tuple[str, ...]) -> str:
    return next((choice for choice in choices if choice.lower() == text.lower()), text)


def _numbers(info: msgspec.inspect.Type) -> tuple[str, ...]:
    """How a union of choices and numbers (`MAX_KV_TOKENS`: `auto` or an integer) names the numbers."""
    members = info.types if isinstance(info, msgspec.inspect.UnionType) else ()
    kinds = {type(_unwrap(m)) for m in members}
    if msgspec.inspect.FloatType in kinds:
        return ("a number",)
    return ("an integer",) if msgspec.inspect.IntType in kinds else ()


def _choices(info: msgspec.inspect.Type) -> tuple[str, ...]:
    """The string choices of a Literal (alone or in a union), matched in any case."""
    members = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    literals = [m for m in map(_unwrap, members) if isinstance(m, msgspec.inspect.LiteralType)]
    return tuple(value for literal in literals for value in literal.values if isinstance(value, str))


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
