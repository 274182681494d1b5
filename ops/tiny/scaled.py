"""A random-weight Qwen2-VL of a chosen size, with the tiny model's tokenizer and processor: what the
benchmarks need when the tiny model is too small to show a cost (per-stage memory, GPU throughput)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
import transformers

from ops.tiny.common import SEED
from ops.tiny_model import build


def scaled_qwen2_vl(
    out: Path,
    *,
    text: dict[str, Any],
    mrope_section: list[int],
    vision: dict[str, Any],
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Build it into `out` once (`text` / `vision`: config fields to change; `mrope_section` sums to
    head_dim / 2) and return `out`."""
    if (out / "config.json").exists():
        return out
    tiny = build("qwen2-vl", out.with_name(out.name + ".tiny"))
    config = transformers.AutoConfig.from_pretrained(tiny)
    for key, value in text.items():
        setattr(config.text_config, key, value)
    config.text_config.layer_types = ["full_attention"] * config.text_config.num_hidden_layers
    config.text_config.rope_parameters = {
        **config.text_config.rope_parameters,
        "mrope_section": mrope_section,
    }
    for key, value in vision.items():
        setattr(config.vision_config, key, value)
    torch.manual_seed(SEED)
    with torch.device(device):
        model = getattr(transformers, config.architectures[0])(config).to(dtype)
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(tiny, scratch, ignore=shutil.ignore_patterns("*.safetensors*", "config.json"))
    model.save_pretrained(scratch)
    scratch.rename(out)
    return out
