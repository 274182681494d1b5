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

Byte sizes take a unit: `20MiB`, `64K` (x1024), `64KB` (x1000); see queues/config.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from queues.config import env_names, from_env
from queues.media.ssrf import HostPolicy
from queues.types import Modality

MiB = 1024 * 1024
_REMOTE_SCHEMES = frozenset({"http", "https", "data"})


class ModalityLimits(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    """Download limits of one modality; the env names are `MEDIA_<MODALITY>_<FIELD>`."""

    max_bytes: int
    connect_timeout_s: float
    read_timeout_s: float
    total_timeout_s: float

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if min(self.connect_timeout_s, self.read_timeout_s, self.total_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")


class MediaConfig(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("MEDIA_")):
    """Media ingestion settings; see the module docstring for the environment variables."""

    schemes: tuple[str, ...] = ("http", "https", "data")
    file_roots: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    max_redirects: int = 5
    max_url_length: int = 8192
    image: ModalityLimits = ModalityLimits(
        max_bytes=20 * MiB, connect_timeout_s=5.0, read_timeout_s=10.0, total_timeout_s=30.0
    )
    video: ModalityLimits = ModalityLimits(
        max_bytes=128 * MiB, connect_timeout_s=5.0, read_timeout_s=60.0, total_timeout_s=120.0
    )
    audio: ModalityLimits = ModalityLimits(
        max_bytes=64 * MiB, connect_timeout_s=5.0, read_timeout_s=30.0, total_timeout_s=60.0
    )
    max_pixels: int = 50_000_000
    video_fps: float = 2.0
    video_max_frames: int = 256
    video_max_duration_s: float = 600.0
    video_max_frame_pixels: int = 1280 * 720
    audio_max_duration_s: float = 600.0
    cache_bytes: int = 256 * MiB
    url_cache_ttl_s: float = 60.0
    url_cache_entries: int = 10_000
    encoder_cache_bytes: int = 0
    decode_threads: int = 0
    http_max_connections: int = 64
    user_agent: str = "triptych-media/0.1"

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
        return from_env(cls, environ, **overrides)
