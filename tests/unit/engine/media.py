"""Deterministic synthetic media for engine tests, in the shapes the media loaders deliver."""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

from workers.media.types import LoadedAudio, LoadedImage, LoadedVideo


def _hash(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def image(seed: int, width: int = 56, height: int = 56) -> LoadedImage:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return LoadedImage(image=Image.fromarray(pixels, "RGB"), content_hash=_hash("image", seed, width, height))


def video(seed: int, frames: int = 4, width: int = 56, height: int = 56, fps: float = 2.0) -> LoadedVideo:
    pixels = np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    return LoadedVideo(
        frames=pixels,
        timestamps=[i / fps for i in range(frames)],
        fps=fps,
        duration=frames / fps,
        content_hash=_hash("video", seed, frames, width, height, fps),
    )


def audio(seed: int, seconds: float = 1.0, rate: int = 16000) -> LoadedAudio:
    samples = (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 0.1).astype(np.float32)
    return LoadedAudio(samples=samples, sampling_rate=rate, content_hash=_hash("audio", seed, seconds, rate))
