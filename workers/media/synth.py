"""Synthetic media encoded in memory: images, video clips and audio of known content.

Used by the tests and the benchmark (no media files are checked in), and usable as a warm-up
payload for a worker. Video frame `i` carries a gray band of level `frame_level(i)` in its top
quarter, so a test can tell which frame it got back after lossy compression.
"""

from __future__ import annotations

import io
from typing import Literal

import av
import numpy as np
import soundfile as sf
from PIL import Image

ImageFormat = Literal["JPEG", "PNG", "WEBP", "GIF", "BMP"]
VideoContainer = Literal["mp4", "webm", "mkv", "gif"]
AudioFormat = Literal["wav", "flac", "ogg", "mp3", "m4a"]

_VIDEO = {  # container -> (PyAV format, codec, pixel format)
    "mp4": ("mp4", "libx264", "yuv420p"),
    "webm": ("webm", "libvpx-vp9", "yuv420p"),
    "mkv": ("matroska", "libx264", "yuv420p"),
}
_SOUNDFILE = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", None),
}


def pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An RGB test picture: gradients plus a dark top-left block (so rotations are visible), uint8 HxWx3."""
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack(
        [(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), np.full_like(x, (seed * 37) % 256)],
        axis=-1,
    ).astype(np.uint8)
    picture[: max(height // 4, 1), : max(width // 4, 1)] = 0
    return picture


def image_bytes(
    fmt: ImageFormat = "PNG",
    width: int = 64,
    height: int = 48,
    *,
    mode: str = "RGB",
    exif_orientation: int | None = None,
    seed: int = 0,
    quality: int = 90,
) -> bytes:
    """Encode `pattern(width, height)` in `fmt`; `mode="RGBA"` makes the right half transparent."""
    image = Image.fromarray(pattern(width, height, seed))
    if mode == "RGBA":
        alpha = np.full((height, width), 255, np.uint8)
        alpha[:, width // 2 :] = 0
        image.putalpha(Image.fromarray(alpha))
    elif mode != "RGB":
        image = image.convert(mode)
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        options["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def frame_level(index: int) -> int:
    """The gray level of frame `index`'s marker band (distinct for the first 40 frames, 6 levels apart)."""
    return 8 + (index % 40) * 6


def video_frame(index: int, width: int, height: int) -> np.ndarray:
    frame = pattern(width, height)
    shift = (index * 4) % max(width, 1)
    frame = np.roll(frame, shift, axis=1)  # motion, so the encoder has real work
    frame[: max(height // 4, 2)] = frame_level(index)
    return frame


def video_bytes(
    container: VideoContainer = "mp4",
    *,
    width: int = 64,
    height: int = 48,
    fps: int = 10,
    frames: int = 20,
    gop: int = 10,
    crf: int = 10,
) -> bytes:
    """Encode `frames` frames of `video_frame` at `fps`, a keyframe every `gop` frames."""
    if container == "gif":
        return _animated_gif(width, height, fps, frames)
    fmt, codec, pix_fmt = _VIDEO[container]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.gop_size = gop
        if codec == "libx264":
            stream.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
            }
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(crf + 10), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        for index in range(frames):
            picture = av.VideoFrame.from_ndarray(video_frame(index, width, height), format="rgb24")
            for packet in stream.encode(picture.reformat(format=pix_fmt)):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def _animated_gif(width: int, height: int, fps: int, frames: int) -> bytes:
    pictures = [Image.fromarray(video_frame(index, width, height)) for index in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer, "GIF", save_all=True, append_images=pictures[1:], duration=round(1000 / fps), loop=0
    )
    return buffer.getvalue()


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A sine tone, float32 (N, channels); channel `c` has frequency `freq * (c + 1)`."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)], axis=1).astype(
        np.float32
    )


def audio_bytes(
    fmt: AudioFormat = "wav",
    *,
    seconds: float = 1.0,
    rate: int = 16000,
    channels: int = 1,
    freq: float = 440.0,
) -> bytes:
    """Encode `tone(...)` as `fmt` (soundfile for wav/flac/ogg/mp3, PyAV AAC for m4a)."""
    samples = tone(seconds, rate, channels, freq)
    buffer = io.BytesIO()
    if fmt == "m4a":
        _encode_aac(buffer, samples, rate)
    else:
        container, subtype = _SOUNDFILE[fmt]
        sf.write(buffer, samples, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def _encode_aac(buffer: io.BytesIO, samples: np.ndarray, rate: int) -> None:
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    with av.open(buffer, "w", format="ipod") as out:
        stream = out.add_stream("aac", rate=rate, layout=layout)
        planar = np.ascontiguousarray(samples.T)
        step = 1024
        for start in range(0, planar.shape[1], step):
            frame = av.AudioFrame.from_ndarray(planar[:, start : start + step], format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
