"""Every limit, timeout and allowlist of media ingestion, loadable from `MEDIA_*` environment variables.

| Variable | Default | Meaning |
|---|---|---|
| `MEDIA_SCHEMES` | `http,https,data` | URL schemes accepted besides `file` (subset of http, https, data) |
| `MEDIA_FILE_ROOTS` | *(empty: off)* | comma-separated absolute directories `file://` may read under |
| `MEDIA_ALLOW_HOSTS` | *(empty)* | hosts (`a.com`, `*.a.com`) and IPs/CIDRs exempt from the SSRF guard |
| `MEDIA_MAX_REDIRECTS` | `5` | redirects followed per fetch |
| `MEDIA_MAX_URL_LENGTH` | `8192` | longest http(s)/file URL, characters (data URLs are bounded by bytes) |
| `MEDIA_IMAGE_MAX_BYTES` | `20MiB` | largest image payload (download, data URL or file) |
| `MEDIA_IMAGE_CONNECT_TIMEOUT_S` | `5` | TCP + TLS connect timeout for images |
| `MEDIA_IMAGE_READ_TIMEOUT_S` | `10` | longest wait for the next bytes of an image download |
| `MEDIA_IMAGE_TOTAL_TIMEOUT_S` | `30` | deadline for a whole image download, redirects included |
| `MEDIA_VIDEO_MAX_BYTES` | `128MiB` | largest video payload |
| `MEDIA_VIDEO_CONNECT_TIMEOUT_S` | `5` | connect timeout for videos |
| `MEDIA_VIDEO_READ_TIMEOUT_S` | `60` | read timeout for videos |
| `MEDIA_VIDEO_TOTAL_TIMEOUT_S` | `120` | deadline for a whole video download |
| `MEDIA_AUDIO_MAX_BYTES` | `64MiB` | largest audio payload |
| `MEDIA_AUDIO_CONNECT_TIMEOUT_S` | `5` | connect timeout for audio |
| `MEDIA_AUDIO_READ_TIMEOUT_S` | `30` | read timeout for audio |
| `MEDIA_AUDIO_TOTAL_TIMEOUT_S` | `60` | deadline for a whole audio download |
| `MEDIA_MAX_PIXELS` | `50000000` | largest image / video frame (width x height) decoded at all (bomb guard) |
| `MEDIA_VIDEO_FPS` | `2.0` | frames sampled per second of video when neither request nor model says |
| `MEDIA_VIDEO_MAX_FRAMES` | `256` | most frames sampled from one video |
| `MEDIA_VIDEO_MAX_DURATION_S` | `600` | longest video accepted, seconds |
| `MEDIA_VIDEO_MAX_FRAME_PIXELS` | `921600` | frames larger than this (720p) are downscaled, aspect kept |
| `MEDIA_AUDIO_MAX_DURATION_S` | `600` | longest audio accepted, seconds |
| `MEDIA_CACHE_BYTES` | `256MiB` | budget of the decoded-media LRU (0 disables it) |
| `MEDIA_URL_CACHE_TTL_S` | `60` | how long a fetched URL is reused without asking the server again |
| `MEDIA_URL_CACHE_ENTRIES` | `10000` | URLs remembered (URL -> content hash, ETag, Last-Modified) |
| `MEDIA_ENCODER_CACHE_BYTES` | `0` | budget of the encoder-output cache (0: off) |
| `MEDIA_DECODE_THREADS` | `0` | decode thread pool size (0: min(4, CPU count)) |
| `MEDIA_HTTP_MAX_CONNECTIONS` | `64` | connection pool size of the shared HTTP client |
| `MEDIA_USER_AGENT` | `triptych-media/0.1` | User-Agent of media downloads |

Byte sizes accept a plain integer or a suffix: `K`, `M`, `G` (powers of 1000) or `KiB`, `MiB`, `GiB`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from workers.media.ssrf import HostPolicy
from workers.media.types import Modality

MiB = 1024 * 1024
_REMOTE_SCHEMES = frozenset({"http", "https", "data"})
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def parse_size(text: str) -> int:
    """Parse a byte size such as `1048576`, `20MiB`, `5M` or `64kib`."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a byte size: {text!r}")
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(match.group(1)) * _SIZE_FACTORS[unit]


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _env(name: str, parse: Callable[[str], Any]) -> dict[str, Any]:
    return {"env": name, "parse": parse}


@dataclass(frozen=True)
class ModalityLimits:
    """Download limits of one modality; the env names are `MEDIA_<MODALITY>_<FIELD>`."""

    max_bytes: int = field(metadata=_env("MAX_BYTES", parse_size))
    connect_timeout_s: float = field(metadata=_env("CONNECT_TIMEOUT_S", _parse_float))
    read_timeout_s: float = field(metadata=_env("READ_TIMEOUT_S", _parse_float))
    total_timeout_s: float = field(metadata=_env("TOTAL_TIMEOUT_S", _parse_float))

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if min(self.connect_timeout_s, self.read_timeout_s, self.total_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True)
class MediaConfig:
    """Media ingestion settings; see the module docstring for the environment variables."""

    schemes: tuple[str, ...] = field(
        default=("http", "https", "data"), metadata=_env("MEDIA_SCHEMES", _parse_list)
    )
    file_roots: tuple[str, ...] = field(default=(), metadata=_env("MEDIA_FILE_ROOTS", _parse_list))
    allow_hosts: tuple[str, ...] = field(default=(), metadata=_env("MEDIA_ALLOW_HOSTS", _parse_list))
    max_redirects: int = field(default=5, metadata=_env("MEDIA_MAX_REDIRECTS", int))
    max_url_length: int = field(default=8192, metadata=_env("MEDIA_MAX_URL_LENGTH", int))
    image: ModalityLimits = field(
        default=ModalityLimits(20 * MiB, 5.0, 10.0, 30.0), metadata={"env_prefix": "MEDIA_IMAGE_"}
    )
    video: ModalityLimits = field(
        default=ModalityLimits(128 * MiB, 5.0, 60.0, 120.0), metadata={"env_prefix": "MEDIA_VIDEO_"}
    )
    audio: ModalityLimits = field(
        default=ModalityLimits(64 * MiB, 5.0, 30.0, 60.0), metadata={"env_prefix": "MEDIA_AUDIO_"}
    )
    max_pixels: int = field(default=50_000_000, metadata=_env("MEDIA_MAX_PIXELS", int))
    video_fps: float = field(default=2.0, metadata=_env("MEDIA_VIDEO_FPS", _parse_float))
    video_max_frames: int = field(default=256, metadata=_env("MEDIA_VIDEO_MAX_FRAMES", int))
    video_max_duration_s: float = field(
        default=600.0, metadata=_env("MEDIA_VIDEO_MAX_DURATION_S", _parse_float)
    )
    video_max_frame_pixels: int = field(
        default=1280 * 720, metadata=_env("MEDIA_VIDEO_MAX_FRAME_PIXELS", int)
    )
    audio_max_duration_s: float = field(
        default=600.0, metadata=_env("MEDIA_AUDIO_MAX_DURATION_S", _parse_float)
    )
    cache_bytes: int = field(default=256 * MiB, metadata=_env("MEDIA_CACHE_BYTES", parse_size))
    url_cache_ttl_s: float = field(default=60.0, metadata=_env("MEDIA_URL_CACHE_TTL_S", _parse_float))
    url_cache_entries: int = field(default=10_000, metadata=_env("MEDIA_URL_CACHE_ENTRIES", int))
    encoder_cache_bytes: int = field(default=0, metadata=_env("MEDIA_ENCODER_CACHE_BYTES", parse_size))
    decode_threads: int = field(default=0, metadata=_env("MEDIA_DECODE_THREADS", int))
    http_max_connections: int = field(default=64, metadata=_env("MEDIA_HTTP_MAX_CONNECTIONS", int))
    user_agent: str = field(default="triptych-media/0.1", metadata=_env("MEDIA_USER_AGENT", str))

    def __post_init__(self) -> None:
        unknown = set(self.schemes) - _REMOTE_SCHEMES
        if unknown:
            raise ValueError(
                f"MEDIA_SCHEMES may list only {sorted(_REMOTE_SCHEMES)}"
                f" (file:// is enabled by MEDIA_FILE_ROOTS), not {sorted(unknown)}"
            )
        for root in self.file_roots:
            if not os.path.isabs(root):
                raise ValueError(f"MEDIA_FILE_ROOTS entries must be absolute paths, not {root!r}")
        HostPolicy.parse(self.allow_hosts)  # raises ValueError on a bad entry
        positive = {
            "max_redirects": self.max_redirects + 1,  # 0 redirects is allowed
            "max_url_length": self.max_url_length,
            "max_pixels": self.max_pixels,
            "video_fps": self.video_fps,
            "video_max_frames": self.video_max_frames,
            "video_max_duration_s": self.video_max_duration_s,
            "video_max_frame_pixels": self.video_max_frame_pixels,
            "audio_max_duration_s": self.audio_max_duration_s,
            "url_cache_entries": self.url_cache_entries,
            "http_max_connections": self.http_max_connections,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("cache_bytes", "url_cache_ttl_s", "encoder_cache_bytes", "decode_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def limits(self, modality: Modality) -> ModalityLimits:
        limits: ModalityLimits = getattr(self, modality)
        return limits

    @property
    def file_enabled(self) -> bool:
        return bool(self.file_roots)

    @property
    def thread_count(self) -> int:
        return self.decode_threads or min(4, os.cpu_count() or 1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> MediaConfig:
        """Build a config from `MEDIA_*` variables (unset ones keep their defaults), then apply overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if "env_prefix" in f.metadata:
                nested: dict[str, Any] = {}
                for g in fields(ModalityLimits):
                    _read(
                        env, f.metadata["env_prefix"] + g.metadata["env"], g.metadata["parse"], g.name, nested
                    )
                if nested:
                    values[f.name] = replace(f.default, **nested)  # type: ignore[type-var]
            else:
                _read(env, f.metadata["env"], f.metadata["parse"], f.name, values)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def env_names(cls) -> list[str]:
        """Every environment variable `from_env` reads."""
        names: list[str] = []
        for f in fields(cls):
            if "env_prefix" in f.metadata:
                names += [f.metadata["env_prefix"] + g.metadata["env"] for g in fields(ModalityLimits)]
            else:
                names.append(f.metadata["env"])
        return names


def _read(
    env: Mapping[str, str], name: str, parse: Callable[[str], Any], key: str, into: dict[str, Any]
) -> None:
    raw = env.get(name)
    # An empty list variable clears the list; an empty scalar variable means "keep the default".
    if raw is None or (raw.strip() == "" and parse is not _parse_list):
        return
    try:
        into[key] = parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r}: {exc}") from None
