"""Image decoding: JPEG, PNG, WEBP, GIF (first frame) and BMP bytes to an RGB Pillow image.

EXIF orientation is applied, transparency is composited on white, 16-bit grayscale is scaled to
8 bits, and the pixel count is checked before any pixel is decoded (decompression-bomb guard).
Blocking: callers run it in a thread pool (Pillow releases the GIL while decoding).
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image, ImageOps

from queues.media.errors import too_large, undecodable, unsupported
from workers.media.sniff import IMAGE_CONTAINERS, sniff

_PIL_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")  # JPEG also yields MPO (multi-picture) files
Image.init()  # registers every plugin; `formats=` only finds registered ones (WEBP is not, by default)
# Formats whose loaded images keep no reference to the payload (PNG, GIF and WEBP keep one for
# their other frames), so they can be returned without a copy.
_DETACHED_AFTER_LOAD = frozenset({"JPEG", "BMP"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_DEEP_GRAY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
# What a malformed file makes Pillow raise while reading headers or pixels.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode `data` to an RGB image; ClientError 413/415/422 when it cannot be."""
    if not data:
        raise undecodable("empty_media", "the image is empty (0 bytes)")
    kind = sniff(data)
    if kind not in IMAGE_CONTAINERS:
        raise unsupported(
            "unsupported_media_type",
            "the image is not in a supported format (JPEG, PNG, WEBP, GIF or BMP)",
        )
    try:
        # Not closed on purpose: closing frees the pixels, and a BytesIO holds no OS resource.
        source = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
        width, height = source.size
        if width * height > max_pixels:
            raise too_large(
                "too_many_pixels",
                f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            )
        if width == 0 or height == 0:
            raise undecodable("undecodable_media", "the image has no pixels")
        source.load()
        _apply_exif_orientation(source)
        if source.mode == "RGB" and source.format in _DETACHED_AFTER_LOAD:
            return source  # the common case (a JPEG photo) needs no copy
        return to_rgb(source)
    except Image.DecompressionBombError:
        raise too_large("too_many_pixels", f"the image has more than {max_pixels} pixels") from None
    except _DECODE_ERRORS:
        raise undecodable("undecodable_media", f"the {kind.upper()} image is corrupt or truncated") from None


def _apply_exif_orientation(image: Image.Image) -> None:
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (*_DECODE_ERRORS, KeyError, TypeError, ZeroDivisionError):
        pass  # a broken EXIF block does not make the picture undecodable


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of `image`: alpha composited on white, 16-bit grayscale scaled to 8 bits.

    The copy also drops any reference the image holds to its payload."""
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode in _DEEP_GRAY_MODES:
        gray = np.asarray(image, dtype=np.uint32) // 257
        return Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")
