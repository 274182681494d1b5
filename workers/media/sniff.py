"""Container detection from the first bytes of a payload ("magic numbers").

The decoders open a payload only with the demuxer named here, never by FFmpeg's own probing: probing
would let a payload select any of FFmpeg's demuxers, some of which open further URLs (HLS, concat).
A payload that matches nothing is an unsupported type (415); one that matches but fails to decode is
undecodable (422).
"""

from __future__ import annotations

from typing import Literal

Container = Literal[
    "jpeg", "png", "webp", "gif", "bmp", "mp4", "matroska", "wav", "flac", "ogg", "mp3", "aac"
]

IMAGE_CONTAINERS: frozenset[Container] = frozenset({"jpeg", "png", "webp", "gif", "bmp"})
VIDEO_CONTAINERS: frozenset[Container] = frozenset({"mp4", "matroska", "gif"})
AUDIO_CONTAINERS: frozenset[Container] = frozenset({"wav", "flac", "ogg", "mp3", "aac", "mp4", "matroska"})


def sniff(data: bytes) -> Container | None:
    """The container `data` starts with, or None."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"RIFF", b"RIFX", b"RF64")) and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"ID3"):
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # MPEG audio frame sync: layer bits 00 are ADTS (AAC), anything else MPEG-1/2 layer I-III.
        return "aac" if head[1] & 0x06 == 0 else "mp3"
    return None
