"""Image decoding: formats, EXIF orientation, alpha on white, deep grayscale, pixel cap, bad payloads."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from queues.errors import ClientError
from workers.media import synth
from workers.media.image import decode_image
from workers.media.sniff import sniff

CAP = 10_000_000


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, ...]:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return value


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_every_format_decodes_to_rgb(fmt: synth.ImageFormat) -> None:
    image = decode_image(synth.image_bytes(fmt, 64, 48), CAP)
    assert image.mode == "RGB" and image.size == (64, 48)
    assert max(pixel(image, 2, 2)) < 40  # the dark top-left block
    assert pixel(image, 63, 47)[0] > 200  # the red gradient ends bright


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_transparency_is_composited_on_white(fmt: synth.ImageFormat) -> None:
    image = decode_image(synth.image_bytes(fmt, 64, 48, mode="RGBA"), CAP)
    assert image.mode == "RGB"
    assert pixel(image, 60, 40) == (255, 255, 255)  # transparent right half
    assert pixel(image, 2, 2) != (255, 255, 255)  # opaque left half keeps its colour


def test_la_and_palette_modes() -> None:
    for mode in ("L", "P", "LA", "CMYK"):
        fmt: synth.ImageFormat = "JPEG" if mode == "CMYK" else "PNG"
        image = decode_image(synth.image_bytes(fmt, 32, 16, mode=mode), CAP)
        assert image.mode == "RGB" and image.size == (32, 16)


@pytest.mark.parametrize(
    ("orientation", "size"), [(1, (64, 48)), (3, (64, 48)), (6, (48, 64)), (8, (48, 64))]
)
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int]) -> None:
    image = decode_image(synth.image_bytes("JPEG", 64, 48, exif_orientation=orientation), CAP)
    assert image.size == size
    # The dark block starts top-left; find which corner it ended up in.
    corners = {
        "top-left": pixel(image, 1, 1),
        "top-right": pixel(image, image.width - 2, 1),
        "bottom-left": pixel(image, 1, image.height - 2),
        "bottom-right": pixel(image, image.width - 2, image.height - 2),
    }
    darkest = min(corners, key=lambda c: sum(corners[c]))
    expected = {1: "top-left", 3: "bottom-right", 6: "top-right", 8: "bottom-left"}[orientation]
    assert darkest == expected


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    levels = (np.arange(64, dtype=np.uint16) * 1024).reshape(8, 8)
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, "PNG")
    image = decode_image(buffer.getvalue(), CAP)
    values = np.asarray(image)[..., 0].ravel()
    assert values[0] == 0 and values[-1] == 63 * 1024 // 257
    assert len(set(values.tolist())) == 64  # no clipping to 255


def test_gif_first_frame() -> None:
    animated = synth.video_bytes("gif", width=32, height=24, frames=5)
    image = decode_image(animated, CAP)
    assert abs(int(pixel(image, 16, 2)[0]) - synth.frame_level(0)) <= 3


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (wrong) body: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = zlib.compress(b"\x00" * 16)
    idat = b"IDAT" + body
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(body)) + idat + struct.pack(">I", zlib.crc32(idat))
        + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 422),
        (b"hello, I am text", 415),
        (b"<html><body>not an image</body></html>", 415),
        (synth.image_bytes("PNG")[:60], 422),
        (synth.image_bytes("JPEG")[:300], 422),
        (synth.image_bytes("PNG")[:40] + b"\x00" * 200, 422),
        (png_header_only(100_000, 100_000), 413),
        (png_header_only(5000, 3000), 413),  # 15 MP > 10 MP cap, before any pixel is read
        (png_header_only(0, 10), 422),
    ],
    ids=[
        "empty",
        "text",
        "html",
        "png-truncated",
        "jpeg-truncated",
        "png-corrupt",
        "bomb",
        "over-cap",
        "no-pixels",
    ],
)
def test_bad_images(data: bytes, status: int) -> None:
    with pytest.raises(ClientError) as caught:
        decode_image(data, CAP)
    assert caught.value.status == status


def test_sniff_recognises_each_container() -> None:
    assert [sniff(synth.image_bytes(f)) for f in ("JPEG", "PNG", "WEBP", "GIF", "BMP")] == [
        "jpeg",
        "png",
        "webp",
        "gif",
        "bmp",
    ]
    assert [sniff(synth.audio_bytes(f)) for f in ("wav", "flac", "ogg", "mp3", "m4a")] == [
        "wav",
        "flac",
        "ogg",
        "mp3",
        "mp4",
    ]
    assert sniff(synth.video_bytes("webm")) == "matroska"
    assert sniff(b"\xff\xf1\x50\x80") == "aac"
    assert sniff(b"RIFF\x00\x00\x00\x00AVI LIST") is None
