"""`load_engine`: a checkpoint directory (tiny or real, any supported family) and a stage → a
`TransformersEngine` with the modules that stage runs."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoProcessor

from queues.types import Stage
from workers.engine.engine import TransformersEngine
from workers.engine.limits import EngineLimits
from workers.engine.model_info import ModelInfo
from workers.engine.parts import dropped_by, load_parts


def load_engine(
    model_dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    limits: EngineLimits | None = None,
    stage: Stage = "agg",
    info: ModelInfo | None = None,
) -> TransformersEngine:
    """The engine of `stage`, holding only the modules it runs (`workers.engine.parts`); `info`: the
    checkpoint's, when the caller has read it already."""
    # read first: other models fail here, with the supported families
    info = info or ModelInfo.load(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    model_cls = getattr(transformers, config.architectures[0])
    family_cls = info.family_cls
    model = load_parts(model_cls, model_dir, dropped_by(stage, family_cls.tower, family_cls.language), dtype)
    target = torch.device(device)
    model = model.to(target).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    family = info.family_cls(model, processor, target, dtype, info.placeholder_ids)
    return TransformersEngine(info, family, limits or EngineLimits())
