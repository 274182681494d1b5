"""The system's small vocabulary: modalities, stages, modes and their routes, finish reasons.

Names only, no behaviour: every layer imports these, so they import nothing of ours.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Modality = Literal["image", "video", "audio"]
MODALITIES: Final[tuple[Modality, ...]] = get_args(Modality)

# A stage is a pool of workers reading one job stream: encode (media → embeddings), prefill
# (prompt → KV cache), decode (KV cache → tokens), pd (prefill + decode) and agg (all three).
Stage = Literal["encode", "prefill", "decode", "pd", "agg"]
STAGES: Final[tuple[Stage, ...]] = get_args(Stage)

Mode = Literal["agg", "e-pd", "e-p-d"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)

# The stages a request passes through in each mode: with media, and text-only (which skips encode).
ROUTES: Final[dict[Mode, tuple[tuple[Stage, ...], tuple[Stage, ...]]]] = {
    "agg": (("agg",), ("agg",)),
    "e-pd": (("encode", "pd"), ("pd",)),
    "e-p-d": (("encode", "prefill", "decode"), ("prefill", "decode")),
}

FinishReason = Literal["stop", "length"]

# How a job's turn at a stage ended (the `outcome` label of the worker metrics).
Outcome = Literal[
    "done", "handed_on", "retried", "rerun", "failed", "expired", "cancelled", "dead", "lost", "left"
]


def route(mode: Mode, has_media: bool) -> list[Stage]:
    with_media, text_only = ROUTES[mode]
    return list(with_media if has_media else text_only)


def stages(mode: Mode) -> list[Stage]:
    """Every stage a mode runs (the ones /ready checks and the autoscaler scales)."""
    return list(ROUTES[mode][0])
