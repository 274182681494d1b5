"""Video decoding with PyAV: MP4, WebM, MKV and animated GIF to uniformly sampled RGB frames.

How frames are chosen: the packets are demuxed once (no decoding) to learn every frame's
presentation time and where the keyframes are. The number of frames is the request's count, else
`duration x fps`, capped by `max_frames` and by the frames the clip has; the frames taken are
`round(linspace(0, total - 1, n))` of the presentation order (what Qwen's video utilities do).

How they are decoded: forward from the first needed keyframe; whenever the next needed frame lies
behind a keyframe that is further ahead than `_MIN_SKIP` frames, the demuxer seeks to that keyframe
instead of decoding the gap. Only the frames kept are converted to RGB (and downscaled when larger
than `max_frame_pixels`). Blocking: callers run it in a thread pool.
"""

from __future__ import annotations

import bisect
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from queues.errors import ClientError
from queues.media.errors import describe, too_large, undecodable, unsupported
from workers.media.sniff import VIDEO_CONTAINERS, sniff
from workers.media.types import LoadedVideo

_DEMUXERS = {"mp4": "mp4", "matroska": "matroska", "gif": "gif"}
_ALPHA_FORMATS = frozenset({"bgra", "rgba", "argb", "abgr", "yuva420p", "yuva444p", "pal8"})
# Seeking flushes the decoder and re-reads from a keyframe; below this many skipped frames,
# decoding straight through is as fast.
_MIN_SKIP = 3


@dataclass(frozen=True)
class VideoOptions:
    """How to sample one video; part of the decoded-media cache key, so it must stay hashable."""

    num_frames: int | None = None  # exact count (wins over fps)
    fps: float = 2.0  # frames per second of video time, when num_frames is None
    max_frames: int = 256
    max_duration_s: float = 600.0
    max_pixels: int = 50_000_000
    max_frame_pixels: int = 1280 * 720
    seek: bool = True  # False decodes every frame up to the last one kept (for comparison)


@dataclass(frozen=True)
class FrameIndex:
    """Every frame's presentation timestamp (sorted) and the keyframes', in stream time base."""

    pts: list[int]
    keyframes: list[int]
    time_base: Fraction
    duration_s: float

    def keyframe_at_or_before(self, pts: int) -> int:
        position = bisect.bisect_right(self.keyframes, pts)
        return self.keyframes[max(position - 1, 0)]

    def frames_between(self, after: int, before: int) -> int:
        """How many frames lie strictly between two timestamps."""
        return max(0, bisect.bisect_left(self.pts, before) - bisect.bisect_right(self.pts, after))

    def seconds(self, pts: int) -> float:
        return float((pts - self.pts[0]) * self.time_base)


def sample_count(total: int, duration_s: float, options: VideoOptions) -> int:
    wanted = options.num_frames if options.num_frames is not None else round(duration_s * options.fps)
    return max(1, min(wanted, options.max_frames, total))


def sample_indices(total: int, count: int) -> list[int]:
    """`count` indices spread uniformly over `range(total)`, first and last included (count <= total)."""
    if count == 1:
        return [total // 2] if total > 2 else [0]
    return [round(i * (total - 1) / (count - 1)) for i in range(count)]


def decode_video(data: bytes, content_hash: str, options: VideoOptions) -> LoadedVideo:
    """Sample frames from a video payload; ClientError 413/415/422 when it cannot be done."""
    if not data:
        raise undecodable("empty_media", "the video is empty (0 bytes)")
    kind = sniff(data)
    if kind not in VIDEO_CONTAINERS:
        raise unsupported("unsupported_media_type", "the video is not MP4, WebM, MKV or an animated GIF")
    demuxer = _DEMUXERS[kind]
    try:
        index = _scan(data, demuxer, options)
        if not index.pts:
            raise undecodable("undecodable_media", "the video has no frames")
        count = sample_count(len(index.pts), index.duration_s, options)
        wanted = [index.pts[i] for i in sample_indices(len(index.pts), count)]
        frames = _decode_wanted(data, demuxer, index, wanted, options)
    except (av.FFmpegError, ValueError, IndexError, EOFError, MemoryError) as exc:
        raise undecodable(
            "undecodable_media", f"the video is corrupt or truncated ({describe(exc)})"
        ) from None
    if not frames:
        raise undecodable("undecodable_media", "no frame of the video could be decoded")
    picked: list[tuple[int, np.ndarray]] = []
    for pts in wanted:  # a frame missing at the end of a short clip repeats the one before it
        picked.append(frames.get(pts) or (picked[-1] if picked else frames[min(frames)]))
    arrays = [array for _, array in picked]
    timestamps = [index.seconds(pts) for pts, _ in picked]
    stacked = np.stack(arrays)
    stacked.flags.writeable = False
    duration = index.duration_s
    return LoadedVideo(
        frames=stacked,
        timestamps=timestamps,
        fps=len(arrays) / duration if duration > 0 else float(len(arrays)),
        duration=duration,
        content_hash=content_hash,
    )


def _open(data: bytes, demuxer: str) -> Any:
    return av.open(io.BytesIO(data), mode="r", format=demuxer)


def _video_stream(container: Any) -> Any:
    if not container.streams.video:
        raise undecodable("undecodable_media", "the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _scan(data: bytes, demuxer: str, options: VideoOptions) -> FrameIndex:
    with _open(data, demuxer) as container:
        stream = _video_stream(container)
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > options.max_pixels:
            raise too_large(
                "too_many_pixels",
                f"the video is {width}x{height}; the limit is {options.max_pixels} pixels per frame",
            )
        if container.duration is not None and container.duration / 1e6 > options.max_duration_s:
            raise _too_long(container.duration / 1e6, options.max_duration_s)
        time_base = stream.time_base or Fraction(1, 1000)
        start = stream.start_time
        pts: list[int] = []
        keyframes: list[int] = []
        last_duration = 0
        latest = None
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if (
                stamp is None
                or packet.size == 0
                or packet.is_discard
                or (start is not None and stamp < start)
            ):
                continue
            pts.append(stamp)
            if packet.is_keyframe:
                keyframes.append(stamp)
            if latest is None or stamp > latest:
                latest, last_duration = stamp, packet.duration or 0
    pts.sort()
    keyframes.sort()
    if not keyframes and pts:
        keyframes = [pts[0]]
    duration_s = 0.0
    if pts:
        if not last_duration and len(pts) > 1:
            last_duration = (pts[-1] - pts[0]) // (len(pts) - 1)
        duration_s = float((pts[-1] - pts[0] + last_duration) * time_base)
    if duration_s > options.max_duration_s:
        raise _too_long(duration_s, options.max_duration_s)
    return FrameIndex(pts, keyframes, time_base, duration_s)


def _decode_wanted(
    data: bytes, demuxer: str, index: FrameIndex, wanted: list[int], options: VideoOptions
) -> dict[int, tuple[int, np.ndarray]]:
    """Decode the frames at the `wanted` timestamps (sorted): pts -> (actual pts, RGB array)."""
    try:
        return _decode_pass(data, demuxer, index, wanted, options, allow_seek=options.seek)
    except _SeekOvershot:
        return _decode_pass(data, demuxer, index, wanted, options, allow_seek=False)


class _SeekOvershot(Exception):
    """A seek landed after the frame it was meant to reach (a file with a bad index)."""


def _decode_pass(
    data: bytes,
    demuxer: str,
    index: FrameIndex,
    wanted: list[int],
    options: VideoOptions,
    *,
    allow_seek: bool,
) -> dict[int, tuple[int, np.ndarray]]:
    found: dict[int, tuple[int, np.ndarray]] = {}
    with _open(data, demuxer) as container:
        stream = _video_stream(container)
        convert = _converter(stream, options.max_frame_pixels)
        position = index.pts[0] - 1  # nothing decoded yet
        i = 0
        frames: Iterator[Any] | None = None

        def should_seek(target: int) -> bool:
            keyframe = index.keyframe_at_or_before(target)
            return (
                allow_seek and keyframe > position and index.frames_between(position, keyframe) >= _MIN_SKIP
            )

        while i < len(wanted):
            sought = should_seek(wanted[i])
            if sought:
                container.seek(index.keyframe_at_or_before(wanted[i]), stream=stream, backward=True)
            if sought or frames is None:
                frames = container.decode(stream)
            for frame in frames:
                if frame.pts is None:
                    continue
                if sought and frame.pts > wanted[i]:
                    raise _SeekOvershot
                sought = False
                position = frame.pts
                array = None
                while i < len(wanted) and frame.pts >= wanted[i]:
                    array = convert(frame) if array is None else array
                    found[wanted[i]] = (frame.pts, array)
                    i += 1
                if i == len(wanted) or should_seek(wanted[i]):
                    break
            else:
                break  # the stream ended before every wanted frame appeared
    return found


def _converter(stream: Any, max_frame_pixels: int) -> Callable[[Any], np.ndarray]:
    width, height = stream.codec_context.width, stream.codec_context.height
    if width and height and width * height > max_frame_pixels:
        scale = math.sqrt(max_frame_pixels / (width * height))
        width, height = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)

    def convert(frame: Any) -> np.ndarray:
        size = {"width": width or frame.width, "height": height or frame.height, "interpolation": "AREA"}
        if frame.format.name in _ALPHA_FORMATS:
            rgba = frame.to_ndarray(format="rgba", **size).astype(np.uint16)
            alpha = rgba[..., 3:4]
            rgb = ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
        else:
            rgb = frame.to_ndarray(format="rgb24", **size)
        turns = round((frame.rotation or 0) / 90) % 4
        return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb

    return convert


def _too_long(duration_s: float, limit_s: float) -> ClientError:
    return too_large("media_too_long", f"the video is {duration_s:.1f} s long; the limit is {limit_s:g} s")
