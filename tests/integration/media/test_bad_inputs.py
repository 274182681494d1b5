"""The corpus of bad media references: each must fail with its documented status, nothing else.

Every case goes through `MediaLoader.load` end to end (validation, source, SSRF guard, download,
decode) against the local media server, data URLs and files the tests create.
"""

from __future__ import annotations

import base64
import gzip
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from queues.errors import ClientError
from queues.media.config import ModalityLimits
from queues.media.errors import STATUSES
from queues.messages import MediaRef
from queues.types import Modality
from tests.integration.media.server import MediaServer
from tests.unit.media.test_image import png_header_only
from workers.media import synth
from workers.media.loader import MediaLoader

PNG = synth.image_bytes("PNG")
JPEG = synth.image_bytes("JPEG")
MP4 = synth.video_bytes("mp4", frames=30, fps=10)
WAV = synth.audio_bytes("wav", seconds=3.0)


@dataclass
class Env:
    server: MediaServer
    root: Path
    closed_port: int


@dataclass
class Case:
    name: str
    status: int
    url: Callable[[Env], str]
    modality: Modality = "image"
    config: dict[str, Any] = field(default_factory=dict)
    ref: dict[str, Any] = field(default_factory=dict)


def data(media_type: str, payload: bytes) -> Callable[[Env], str]:
    return lambda env: f"data:{media_type};base64,{base64.b64encode(payload).decode()}"


def literal(url: str) -> Callable[[Env], str]:
    return lambda env: url


def served(path: str) -> Callable[[Env], str]:
    return lambda env: env.server.url(path)


def file_(relative: str) -> Callable[[Env], str]:
    return lambda env: "file://" + str(env.root / relative)


def big_gif() -> bytes:
    """A GIF whose logical screen and single frame claim 65535 x 65535 pixels."""
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
        + b",\x00\x00\x00\x00"
        + struct.pack("<HHB", 65535, 65535, 0)
        + b"\x02\x02D\x01\x00;"
    )


SLOW = ModalityLimits(max_bytes=4 << 20, connect_timeout_s=2.0, read_timeout_s=0.3, total_timeout_s=5.0)
DRIP = ModalityLimits(max_bytes=4 << 20, connect_timeout_s=2.0, read_timeout_s=1.0, total_timeout_s=0.6)
TINY = ModalityLimits(max_bytes=200, connect_timeout_s=2.0, read_timeout_s=1.0, total_timeout_s=2.0)
FILES = {"file_roots": ("ROOT",)}

CASES = [
    # data: URLs
    Case("data-bad-base64", 400, literal("data:image/png;base64,!!!!")),
    Case("data-not-base64", 400, literal("data:image/png,rawbytes")),
    Case("data-no-comma", 400, literal("data:image/png;base64")),
    Case("data-text-type", 415, data("text/plain", PNG)),
    Case("data-audio-type-as-image", 415, data("audio/wav", PNG)),
    Case("data-over-cap", 413, data("image/png", bytes(2000)), config={"image": TINY}),
    Case("data-zero-bytes", 422, literal("data:image/png;base64,")),
    Case("data-truncated-png", 422, data("image/png", PNG[: len(PNG) // 2])),
    Case("data-text-as-image", 415, data("application/octet-stream", b"just some text")),
    Case("data-enormous-png", 413, data("image/png", png_header_only(60_000, 60_000))),
    Case("data-enormous-gif", 413, data("image/gif", big_gif())),
    # schemes and URLs
    Case("scheme-ftp", 400, literal("ftp://example.com/a.png")),
    Case("scheme-javascript", 400, literal("javascript:alert(1)")),
    Case("scheme-gopher", 400, literal("gopher://example.com/")),
    Case("url-too-long", 400, literal("https://example.com/" + "x" * 9000)),
    Case("url-no-host", 400, literal("http:///a.png")),
    Case("video-num-frames-zero", 400, served("/ok.mp4"), modality="video", ref={"num_frames": 0}),
    # files
    Case("file-disabled", 400, file_("ok.png")),
    Case("file-traversal", 400, file_("../secret.png"), config=FILES),
    Case("file-symlink-escape", 400, file_("escape.png"), config=FILES),
    Case("file-missing", 400, file_("missing.png"), config=FILES),
    Case("file-corrupt-png", 422, file_("corrupt.png"), config=FILES),
    Case("file-zero-bytes", 422, file_("empty.png"), config=FILES),
    # addresses (SSRF)
    Case("private-10", 400, literal("http://10.0.0.1/a.png")),
    Case("metadata-ipv4", 400, literal("http://169.254.169.254/latest/meta-data/")),
    Case("metadata-alibaba", 400, literal("http://100.100.100.200/latest/meta-data/")),
    Case("unspecified", 400, literal("http://0.0.0.0/")),
    Case("ipv6-loopback", 400, literal("http://[::1]/")),
    Case("ipv4-mapped-loopback", 400, literal("http://[::ffff:127.0.0.1]/")),
    Case("decimal-loopback", 400, literal("http://2130706433/"), config={"allow_hosts": ()}),
    Case("loopback-not-allowlisted", 400, served("/ok.png"), config={"allow_hosts": ()}),
    Case(
        "localhost-name",
        400,
        lambda env: env.server.url("/ok.png", host="localhost"),
        config={"allow_hosts": ()},
    ),
    Case("redirect-to-metadata", 400, served("/to-metadata")),
    Case("redirect-to-private", 400, served("/to-private")),
    Case("redirect-to-file", 400, served("/to-file")),
    # upstream behaviour
    Case("redirect-loop", 400, served("/loop")),
    Case("too-many-redirects", 400, served("/chain/0"), config={"max_redirects": 2}),
    Case("http-404", 400, served("/missing.png")),
    Case("http-500", 400, served("/error.png")),
    Case("connection-refused", 400, lambda env: f"http://127.0.0.1:{env.closed_port}/a.png"),
    Case("slow-server", 400, served("/slow.png"), config={"image": SLOW}),
    Case("dripping-server", 400, served("/drip.png"), config={"image": DRIP}),
    Case("content-length-over-cap", 413, served("/ok.jpg"), config={"image": TINY}),
    Case("chunked-over-cap", 413, served("/chunked.jpg"), config={"image": TINY}),
    Case("gzip-bomb", 413, served("/gzip-bomb.png")),
    Case("html-as-image", 415, served("/page.html")),
    Case("empty-body", 422, served("/empty.png")),
    Case("truncated-jpeg", 422, served("/truncated.jpg")),
    # video and audio
    Case("truncated-mp4", 422, served("/truncated.mp4"), modality="video"),
    Case("png-as-video", 415, served("/ok.png"), modality="video"),
    Case("audio-only-mp4-as-video", 422, data("video/mp4", synth.audio_bytes("m4a")), modality="video"),
    Case("video-too-long", 413, served("/ok.mp4"), modality="video", config={"video_max_duration_s": 2.0}),
    Case(
        "corrupt-wav", 422, data("audio/wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)), modality="audio"
    ),
    Case("text-as-audio", 415, data("audio/wav", b"this is not audio"), modality="audio"),
    Case("audio-too-long", 413, served("/long.wav"), modality="audio", config={"audio_max_duration_s": 2.0}),
]


def test_corpus_is_large_and_covers_every_status() -> None:
    assert len(CASES) >= 30
    assert len({case.name for case in CASES}) == len(CASES)
    assert {case.status for case in CASES} == set(STATUSES)


def build_env(s: MediaServer, base: Path) -> Env:
    """Serve the corpus's routes on `s` and write its files under `base` (also used by the chaos
    suite, which sends the same corpus through the whole HTTP path)."""
    root = base / "root"
    root.mkdir()
    (root / "ok.png").write_bytes(PNG)
    (root / "corrupt.png").write_bytes(PNG[:40] + bytes(200))
    (root / "empty.png").write_bytes(b"")
    (base / "secret.png").write_bytes(PNG)
    (root / "escape.png").symlink_to(base / "secret.png")

    s.add("/ok.png", PNG, content_type="image/png")
    s.add("/ok.mp4", MP4, content_type="video/mp4")
    s.add("/long.wav", WAV, content_type="audio/wav")
    s.add("/ok.jpg", JPEG, content_type="image/jpeg")
    s.add("/chunked.jpg", JPEG, content_type="image/jpeg", chunked=True)
    s.add("/gzip-bomb.png", gzip.compress(bytes(8 << 20)), headers={"Content-Encoding": "gzip"})
    s.add("/page.html", b"<html><body>Not here</body></html>", content_type="text/html")
    s.add("/empty.png", b"", content_type="image/png")
    s.add("/truncated.jpg", JPEG[: len(JPEG) // 3], content_type="image/jpeg")
    s.add("/truncated.mp4", MP4[: len(MP4) // 2], content_type="video/mp4")
    s.add("/error.png", b"oops", status=500, content_type="text/plain")
    s.add("/slow.png", PNG, delay_s=1.5)
    s.add("/drip.png", PNG, drip_s=0.02)
    s.redirect("/loop", s.url("/loop"))
    for hop in range(4):
        s.redirect(f"/chain/{hop}", s.url(f"/chain/{hop + 1}"))
    s.add("/chain/4", PNG)
    s.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/iam/")
    s.redirect("/to-private", "http://192.168.1.1/admin")
    s.redirect("/to-file", "file:///etc/passwd")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    return Env(s, root, closed_port)


@pytest.fixture(scope="module")
def env(media_server: MediaServer, tmp_path_factory: pytest.TempPathFactory) -> Env:
    return build_env(media_server, tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_bad_input(case: Case, env: Env, make_loader: Callable[..., MediaLoader]) -> None:
    config = dict(case.config)
    if config.get("file_roots") == ("ROOT",):
        config["file_roots"] = (str(env.root),)
    loader = make_loader(**config)
    ref = MediaRef(modality=case.modality, url=case.url(env), **case.ref)
    with pytest.raises(ClientError) as caught:
        await loader.load(ref)
    assert caught.value.status == case.status, caught.value
    assert caught.value.message  # every refusal explains itself
