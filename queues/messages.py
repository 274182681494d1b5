"""Message types that cross a process boundary, as msgspec Structs.

Every job message carries the whole original request (prompt token ids, media references,
resolved sampling parameters including the seed, the deadline), so any stage can send a job
back to an earlier stage and a re-run repeats exactly the same tokens.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Modality = Literal["image", "video", "audio"]


class SamplingParams(msgspec.Struct, frozen=True, kw_only=True):
    """Fully resolved sampling parameters: the front door fills every field (client value, else the
    checkpoint's generation_config.json, else the OpenAI default) and always sets a seed."""

    max_tokens: int
    seed: int
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means off
    min_tokens: int = 0
    stop: list[str] = []
    stop_token_ids: list[int] = []  # in addition to the checkpoint's EOS ids
    ignore_eos: bool = False
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logprobs: bool = False
    top_logprobs: int = 0


class MediaRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where one media item of a request comes from and how to sample it."""

    modality: Modality
    url: str  # http(s)://, data: (base64) or file://
    detail: str | None = None  # image_url.detail: auto | low | high
    fps: float | None = None  # video: frames per second of video time to sample
    num_frames: int | None = None  # video: exact number of frames (wins over fps)
