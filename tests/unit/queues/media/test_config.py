"""MediaConfig from environment variables, its validation, its documentation table; media errors."""

from __future__ import annotations

import pytest

from queues.config import describe
from queues.media import config as config_module
from queues.media.config import MediaConfig, ModalityLimits
from queues.media.errors import media_error


def test_defaults_without_environment() -> None:
    config = MediaConfig.from_env({})
    assert config == MediaConfig()
    assert config.schemes == ("http", "https", "data")
    assert not config.file_enabled
    assert config.limits("image").max_bytes == 20 * 1024 * 1024
    assert config.limits("video").read_timeout_s == 60.0


def test_every_variable_is_read() -> None:
    env = {
        "MEDIA_SCHEMES": "https, data",
        "MEDIA_FILE_ROOTS": "/srv/media,/tmp",
        "MEDIA_ALLOW_HOSTS": "10.0.0.0/8, minio.internal",
        "MEDIA_MAX_REDIRECTS": "0",
        "MEDIA_IMAGE_MAX_BYTES": "5MiB",
        "MEDIA_AUDIO_READ_TIMEOUT_S": "2.5",
        "MEDIA_VIDEO_TOTAL_TIMEOUT_S": "9",
        "MEDIA_VIDEO_FPS": "1",
        "MEDIA_CACHE_BYTES": "0",
        "MEDIA_USER_AGENT": "bot/1",
    }
    config = MediaConfig.from_env(env)
    assert config.schemes == ("https", "data")
    assert config.file_roots == ("/srv/media", "/tmp")
    assert config.allow_hosts == ("10.0.0.0/8", "minio.internal")
    assert config.max_redirects == 0
    assert config.image.max_bytes == 5 * 1024 * 1024
    assert config.image.read_timeout_s == 10.0  # untouched fields of a modality keep their defaults
    assert config.audio.read_timeout_s == 2.5
    assert config.video.total_timeout_s == 9.0
    assert config.video_fps == 1.0
    assert config.cache_bytes == 0
    assert config.user_agent == "bot/1"


def test_overrides_win_over_environment() -> None:
    assert MediaConfig.from_env({"MEDIA_MAX_PIXELS": "100"}, max_pixels=200).max_pixels == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEDIA_SCHEMES", "http,ftp"),
        ("MEDIA_SCHEMES", "file"),
        ("MEDIA_FILE_ROOTS", "relative/dir"),
        ("MEDIA_ALLOW_HOSTS", "bad host!"),
        ("MEDIA_MAX_REDIRECTS", "-1"),
        ("MEDIA_IMAGE_MAX_BYTES", "lots"),
        ("MEDIA_VIDEO_READ_TIMEOUT_S", "0"),
        ("MEDIA_VIDEO_FPS", "nan"),
        ("MEDIA_CACHE_BYTES", "-5"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        MediaConfig.from_env({name: value})


def test_error_message_names_the_variable() -> None:
    with pytest.raises(ValueError, match="MEDIA_IMAGE_MAX_BYTES"):
        MediaConfig.from_env({"MEDIA_IMAGE_MAX_BYTES": "lots"})


def test_nested_limits_of_each_modality_from_env() -> None:
    env = {
        "MEDIA_IMAGE_MAX_BYTES": "64K",
        "MEDIA_IMAGE_CONNECT_TIMEOUT_S": "1",
        "MEDIA_VIDEO_MAX_BYTES": "1GB",
        "MEDIA_VIDEO_READ_TIMEOUT_S": "",  # empty: the default
        "MEDIA_AUDIO_TOTAL_TIMEOUT_S": "7.5",
    }
    config = MediaConfig.from_env(env)
    assert config.image == ModalityLimits(
        max_bytes=65536, connect_timeout_s=1.0, read_timeout_s=10.0, total_timeout_s=30.0
    )
    assert config.limits("video") == ModalityLimits(
        max_bytes=10**9, connect_timeout_s=5.0, read_timeout_s=60.0, total_timeout_s=120.0
    )
    assert config.limits("audio").total_timeout_s == 7.5
    assert config.limits("audio").max_bytes == 64 * 1024 * 1024


def test_sizes_use_the_one_unit_convention() -> None:
    """`K`/`M`/`G` are powers of 1024 (they were 1000 for MEDIA_* before), `KB`/`MB`/`GB` of 1000."""
    config = MediaConfig.from_env({"MEDIA_CACHE_BYTES": "5M", "MEDIA_ENCODER_CACHE_BYTES": "5MB"})
    assert (config.cache_bytes, config.encoder_cache_bytes) == (5 << 20, 5_000_000)


def test_a_nested_limit_that_fails_validation_names_its_group() -> None:
    with pytest.raises(ValueError, match=r"MEDIA_VIDEO_\*: timeouts must be positive"):
        MediaConfig.from_env({"MEDIA_VIDEO_READ_TIMEOUT_S": "0"})


def test_an_override_of_a_whole_modality_wins() -> None:
    fast = ModalityLimits(max_bytes=100, connect_timeout_s=1.0, read_timeout_s=1.0, total_timeout_s=1.0)
    assert MediaConfig.from_env({"MEDIA_IMAGE_MAX_BYTES": "5"}, image=fast).image == fast


def test_docstring_table_lists_every_variable() -> None:
    doc = config_module.__doc__ or ""
    names = [name for name, _default in describe(MediaConfig)]
    assert len(names) == len(set(names)) == 30
    for name in names:
        assert f"| `{name}` |" in doc, name


def test_modality_limits_validation() -> None:
    with pytest.raises(ValueError):
        ModalityLimits(max_bytes=0, connect_timeout_s=1.0, read_timeout_s=1.0, total_timeout_s=1.0)


def test_media_errors_have_media_statuses() -> None:
    error = media_error(413, "too big", "media_too_large")
    assert (error.status, error.type, error.code, error.param) == (
        413,
        "invalid_request_error",
        "media_too_large",
        None,
    )
    with pytest.raises(ValueError, match="500"):
        media_error(500, "no", "internal")
