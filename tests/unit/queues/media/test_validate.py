"""The front door's synchronous validator, and file:// resolution under allowed roots."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import msgspec
import pytest

from queues.errors import ClientError
from queues.media.config import MediaConfig
from queues.media.files import FileSource
from queues.media.validate import scheme_of, validate_media_ref
from queues.messages import MediaRef
from queues.types import Modality
from workers.media import synth

PNG = synth.image_bytes("PNG")
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(PNG)
    (root / "empty.png").write_bytes(b"")
    (tmp_path / "secret.png").write_bytes(PNG)
    (root / "escape.png").symlink_to(tmp_path / "secret.png")
    (root / "inner.png").symlink_to(root / "sub" / "a.png")
    (root / "outside").symlink_to(tmp_path)
    return root


def ref(url: str, modality: Modality = "image", **extra: object) -> MediaRef:
    return MediaRef(modality=modality, url=url, **extra)  # type: ignore[arg-type]


def refused(reference: MediaRef, config: MediaConfig) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        validate_media_ref(reference, config)
    return caught.value.status, caught.value.code


def test_accepts_good_references(media_root: Path) -> None:
    config = MediaConfig(file_roots=(str(media_root),))
    for good in (
        ref("https://example.com/cat.png"),
        ref("http://93.184.216.34:8080/a.jpg?x=1"),
        ref(PNG_URL, detail="high"),
        ref((media_root / "sub" / "a.png").as_uri()),
        ref((media_root / "inner.png").as_uri()),  # a symlink that stays inside the root
        ref("https://example.com/v.mp4", "video", fps=1.5, num_frames=8),
    ):
        validate_media_ref(good, config)


@pytest.mark.parametrize(
    ("url", "modality", "extra", "expected"),
    [
        ("ftp://example.com/a.png", "image", {}, (400, "unsupported_scheme")),
        ("javascript:alert(1)", "image", {}, (400, "unsupported_scheme")),
        ("//example.com/a.png", "image", {}, (400, "unsupported_scheme")),
        ("example.com/a.png", "image", {}, (400, "unsupported_scheme")),
        ("http:///a.png", "image", {}, (400, "invalid_url")),
        ("http://exa mple.com:99999/", "image", {}, (400, "invalid_url")),
        ("https://example.com/" + "a" * 9000, "image", {}, (400, "invalid_url")),
        ("http://127.0.0.1/a.png", "image", {}, (400, "forbidden_address")),
        ("http://[::ffff:10.0.0.1]/a.png", "image", {}, (400, "forbidden_address")),
        ("http://localhost:8000/a.png", "image", {}, (400, "forbidden_address")),
        ("http://169.254.169.254/latest/meta-data/", "image", {}, (400, "forbidden_address")),
        ("file:///etc/passwd", "image", {}, (400, "unsupported_scheme")),
        ("data:image/png;base64,@@", "image", {}, (400, "invalid_base64")),
        (PNG_URL, "audio", {}, (415, "unsupported_media_type")),
        ("https://example.com/a.png", "image", {"detail": "ultra"}, (400, "bad_options")),
        ("https://example.com/v.mp4", "video", {"num_frames": 0}, (400, "bad_options")),
        ("https://example.com/v.mp4", "video", {"fps": -1.0}, (400, "bad_options")),
        ("https://example.com/v.mp4", "video", {"fps": float("inf")}, (400, "bad_options")),
    ],
)
def test_refusals(url: str, modality: Modality, extra: dict[str, object], expected: tuple[int, str]) -> None:
    assert refused(ref(url, modality, **extra), MediaConfig()) == expected


def test_data_url_over_the_cap() -> None:
    config = MediaConfig.from_env({"MEDIA_IMAGE_MAX_BYTES": "100"})
    assert refused(ref(PNG_URL), config) == (413, "media_too_large")


def test_schemes_can_be_narrowed() -> None:
    config = MediaConfig(schemes=("https",))
    validate_media_ref(ref("https://example.com/a.png"), config)
    assert refused(ref("http://example.com/a.png"), config)[1] == "unsupported_scheme"
    assert refused(ref(PNG_URL), config)[1] == "unsupported_scheme"


def test_allowlist_opens_literal_addresses() -> None:
    config = MediaConfig(allow_hosts=("10.0.0.0/8",))
    validate_media_ref(ref("http://10.2.3.4/a.png"), config)
    assert refused(ref("http://192.168.0.1/a.png"), config)[1] == "forbidden_address"


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("escape.png", (400, "file_not_allowed")),  # symlink out of the root
        ("outside/secret.png", (400, "file_not_allowed")),  # directory symlink out of the root
        ("sub/../../secret.png", (400, "file_not_allowed")),  # traversal
        ("missing.png", (400, "file_not_found")),
        ("sub", (400, "file_not_found")),  # a directory
        ("empty.png", (422, "empty_media")),
    ],
)
def test_file_refusals(media_root: Path, relative: str, expected: tuple[int, str]) -> None:
    config = MediaConfig(file_roots=(str(media_root),))
    url = "file://" + os.path.join(str(media_root), relative)
    assert refused(ref(url), config) == expected


def test_file_size_cap_and_host(media_root: Path) -> None:
    tiny = msgspec.structs.replace(MediaConfig().image, max_bytes=10)
    config = MediaConfig(file_roots=(str(media_root),), image=tiny)
    assert refused(ref((media_root / "sub" / "a.png").as_uri()), config) == (413, "media_too_large")
    assert (
        refused(
            ref("file://evil.com" + str(media_root / "sub" / "a.png")),
            MediaConfig(file_roots=(str(media_root),)),
        )[1]
        == "invalid_file_url"
    )


def test_file_read(media_root: Path) -> None:
    files = FileSource([str(media_root)])
    assert files.read((media_root / "sub" / "a.png").as_uri(), 1 << 20) == PNG
    percent = "file://" + str(media_root / "sub" / "a.png").replace("/a.png", "/%61.png")
    assert files.read(percent, 1 << 20) == PNG


def test_scheme_of() -> None:
    assert [scheme_of(u) for u in ("HTTPS://x", "data:,", "file:///a", "noscheme", "c:\\x", "a b:c")] == [
        "https",
        "data",
        "file",
        "",
        "c",
        "",
    ]
