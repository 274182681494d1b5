"""Video sampling: containers, counts, fps, caps, timestamps, seek vs. straight decode, bad payloads."""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from queues.errors import ClientError
from workers.media import synth
from workers.media import video as video_module
from workers.media.video import VideoOptions, decode_video, sample_count, sample_indices

FPS = 10
FRAMES = 30  # 3 s at 10 fps, a keyframe every 10 frames


@functools.cache
def clip(container: synth.VideoContainer, frames: int = FRAMES, gop: int = 10) -> bytes:
    return synth.video_bytes(container, fps=FPS, frames=frames, gop=gop)


def frame_numbers(frames: np.ndarray) -> list[int]:
    """Which source frame each output frame is, read from its marker band."""
    levels = frames[:, :8].reshape(len(frames), -1).mean(axis=1)
    return [round((float(level) - synth.frame_level(0)) / 6) for level in levels]


@pytest.mark.parametrize("container", ["mp4", "webm", "mkv", "gif"])
def test_sample_by_count_is_uniform_with_timestamps(container: synth.VideoContainer) -> None:
    video = decode_video(clip(container), "hash", VideoOptions(num_frames=4))
    assert video.frames.shape == (4, 48, 64, 3) and video.frames.dtype == np.uint8
    assert frame_numbers(video.frames) == [0, 10, 19, 29]
    assert video.timestamps == pytest.approx([0.0, 1.0, 1.9, 2.9], abs=0.011)
    assert video.duration == pytest.approx(3.0, abs=0.011)
    assert video.fps == pytest.approx(4 / 3.0, rel=0.01)
    assert video.content_hash == "hash"
    assert not video.frames.flags.writeable


def test_sample_by_fps() -> None:
    video = decode_video(clip("mp4"), "h", VideoOptions(fps=2.0))
    assert len(video.frames) == 6  # 3 s x 2 fps
    assert all(b > a for a, b in zip(video.timestamps, video.timestamps[1:], strict=False))


def test_count_is_capped_by_max_frames_and_by_the_clip() -> None:
    assert len(decode_video(clip("mp4"), "h", VideoOptions(num_frames=20, max_frames=5)).frames) == 5
    every = decode_video(clip("mp4"), "h", VideoOptions(num_frames=500))
    assert frame_numbers(every.frames) == list(range(FRAMES))


@pytest.mark.parametrize("container", ["mp4", "webm", "mkv"])
@pytest.mark.parametrize("count", [1, 3, 8, 17])
def test_seeking_returns_exactly_the_frames_of_a_straight_decode(
    container: synth.VideoContainer, count: int
) -> None:
    data = clip(container, frames=60, gop=12)
    sought = decode_video(data, "h", VideoOptions(num_frames=count))
    straight = decode_video(data, "h", VideoOptions(num_frames=count, seek=False))
    assert np.array_equal(sought.frames, straight.frames)
    assert sought.timestamps == straight.timestamps


def test_large_frames_are_downscaled_keeping_aspect() -> None:
    data = synth.video_bytes("mp4", width=320, height=240, frames=4, fps=FPS)
    video = decode_video(data, "h", VideoOptions(num_frames=2, max_frame_pixels=160 * 120))
    assert video.frames.shape == (2, 120, 160, 3)


def test_sampling_helpers() -> None:
    assert sample_indices(10, 1) == [5]
    assert sample_indices(1, 1) == [0]
    assert sample_indices(10, 10) == list(range(10))
    assert sample_indices(300, 4) == [0, 100, 199, 299]
    options = VideoOptions(fps=2.0, max_frames=16)
    assert sample_count(total=300, duration_s=10.0, options=options) == 16
    assert sample_count(total=300, duration_s=3.0, options=options) == 6
    assert sample_count(total=3, duration_s=3.0, options=options) == 3
    assert sample_count(total=300, duration_s=0.1, options=options) == 1


@pytest.mark.parametrize(
    ("data", "options", "status"),
    [
        (b"", VideoOptions(), 422),
        (b"not a video at all", VideoOptions(), 415),
        (synth.image_bytes("PNG"), VideoOptions(), 415),
        (synth.audio_bytes("wav"), VideoOptions(), 415),
        (synth.audio_bytes("m4a"), VideoOptions(), 422),  # an MP4 without a video stream
        (synth.video_bytes("mp4", frames=10)[:-400], VideoOptions(), 422),  # truncated: index lost
        (synth.video_bytes("mp4", frames=10)[:32] + bytes(2000), VideoOptions(), 422),
        (synth.video_bytes("webm", frames=10)[:20], VideoOptions(), 422),
        (synth.video_bytes("mp4", frames=30, fps=10), VideoOptions(max_duration_s=2.0), 413),
        (synth.video_bytes("mp4", width=64, height=48, frames=2), VideoOptions(max_pixels=1000), 413),
    ],
    ids=[
        "empty",
        "text",
        "png",
        "wav",
        "m4a-no-video",
        "mp4-truncated",
        "mp4-zeroed",
        "webm-header",
        "too-long",
        "too-big",
    ],
)
def test_bad_videos(data: bytes, options: VideoOptions, status: int) -> None:
    with pytest.raises(ClientError) as caught:
        decode_video(data, "h", options)
    assert caught.value.status == status


REAL_OPEN = video_module._open


class CountingContainer:
    """Wraps a PyAV input container, counting seeks and decoded frames."""

    def __init__(self, inner: Any, counts: dict[str, int]) -> None:
        self._inner = inner
        self._counts = counts

    def __enter__(self) -> CountingContainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def seek(self, *args: Any, **kwargs: Any) -> None:
        self._counts["seeks"] += 1
        self._inner.seek(*args, **kwargs)

    def decode(self, *args: Any) -> Iterator[Any]:
        for frame in self._inner.decode(*args):
            self._counts["frames"] += 1
            yield frame


def decode_counting(monkeypatch: pytest.MonkeyPatch, data: bytes, options: VideoOptions) -> dict[str, int]:
    counts = {"seeks": 0, "frames": 0}
    monkeypatch.setattr(video_module, "_open", lambda d, f: CountingContainer(REAL_OPEN(d, f), counts))
    decode_video(data, "h", options)
    return counts


def test_sparse_sampling_seeks_past_unneeded_groups_of_pictures(monkeypatch: pytest.MonkeyPatch) -> None:
    data = clip("mp4", frames=120, gop=12)  # 10 keyframes
    sought = decode_counting(monkeypatch, data, VideoOptions(num_frames=3))
    straight = decode_counting(monkeypatch, data, VideoOptions(num_frames=3, seek=False))
    assert straight["seeks"] == 0 and straight["frames"] >= 119  # decodes up to the last frame
    assert sought["seeks"] >= 2
    assert sought["frames"] < straight["frames"] // 2


def test_dense_sampling_does_not_seek(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = decode_counting(monkeypatch, clip("mp4", frames=60, gop=12), VideoOptions(num_frames=30))
    assert counts["seeks"] == 0


class OvershootingContainer(CountingContainer):
    """Seeks one group of pictures too far, like a file whose index is wrong."""

    def seek(self, offset: int, **kwargs: Any) -> None:
        super().seek(offset + 12 * 1024, **kwargs)


def test_a_seek_that_overshoots_falls_back_to_a_straight_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    data = clip("mp4", frames=120, gop=12)
    expected = decode_video(data, "h", VideoOptions(num_frames=3, seek=False))
    counts = {"seeks": 0, "frames": 0}
    monkeypatch.setattr(video_module, "_open", lambda d, f: OvershootingContainer(REAL_OPEN(d, f), counts))
    got = decode_video(data, "h", VideoOptions(num_frames=3))
    assert counts["seeks"] >= 1
    assert np.array_equal(got.frames, expected.frames) and got.timestamps == expected.timestamps


def with_display_matrix(mp4: bytes, a: int, b: int, c: int, d: int) -> bytes:
    """Patch the track header's transformation matrix (what phones write for portrait video)."""
    patched = bytearray(mp4)
    matrix = patched.find(b"tkhd") + 4 + 40  # version/flags, times, ids, duration, layer, volume
    patched[matrix : matrix + 36] = struct.pack(
        ">9i", a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30
    )
    return bytes(patched)


@pytest.mark.parametrize(
    ("matrix", "band_side"),
    [((1, 0, 0, 1), "top"), ((0, 1, -1, 0), "right"), ((-1, 0, 0, -1), "bottom"), ((0, -1, 1, 0), "left")],
    ids=["none", "90-clockwise", "180", "90-counterclockwise"],
)
def test_display_rotation_is_applied_like_ffmpeg_autorotate(
    matrix: tuple[int, int, int, int], band_side: str
) -> None:
    data = with_display_matrix(synth.video_bytes("mp4", frames=2, fps=FPS), *matrix)
    frame = decode_video(data, "h", VideoOptions(num_frames=1)).frames[0].astype(int)
    assert frame.shape[:2] == ((48, 64) if band_side in ("top", "bottom") else (64, 48))
    edges = {
        "top": frame[:4].mean(),
        "bottom": frame[-4:].mean(),
        "left": frame[:, :4].mean(),
        "right": frame[:, -4:].mean(),
    }
    assert min(edges, key=lambda side: edges[side]) == band_side  # the dark marker band of frame 0
