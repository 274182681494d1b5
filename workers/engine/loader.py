"""`load_engine`: a checkpoint directory (tiny or real, any supported family) → a `TransformersEngine`."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoProcessor

from workers.engine.engine import TransformersEngine
from workers.engine.limits import EngineLimits
from workers.engine.model_info import ModelInfo


def load_engine(
    model_dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    limits: EngineLimits | None = None,
) -> TransformersEngine:
    info = ModelInfo.load(model_dir)  # fails first, with the supported families, for other models
    config = AutoConfig.from_pretrained(model_dir)
    model_cls = getattr(transformers, config.architectures[0])
    model = model_cls.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    target = torch.device(device)
    model = model.to(target).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    family = info.family_cls(model, processor, target, dtype, info.placeholder_ids)
    return TransformersEngine(info, family, limits or EngineLimits())
