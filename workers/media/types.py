"""Decoded media, as the media loaders hand it to the engine's encoder.

These are the only media shapes the engine accepts; every loader returns one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class LoadedImage:
    image: Image.Image  # RGB, EXIF orientation applied
    content_hash: str  # sha256 hex of the source bytes
    modality: Literal["image"] = "image"


@dataclass(frozen=True)
class LoadedVideo:
    frames: np.ndarray  # uint8, shape (T, H, W, 3), RGB
    timestamps: list[float]  # seconds, one per frame, increasing
    fps: float  # the sampling rate the frames were taken at (frames per second of video time)
    duration: float  # seconds of the whole source clip
    content_hash: str
    modality: Literal["video"] = "video"


@dataclass(frozen=True)
class LoadedAudio:
    samples: np.ndarray  # float32, mono, shape (N,)
    sampling_rate: int
    content_hash: str
    modality: Literal["audio"] = "audio"
    extra: dict[str, float] = field(default_factory=dict)


LoadedMedia = LoadedImage | LoadedVideo | LoadedAudio
