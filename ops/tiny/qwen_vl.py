"""Tiny Qwen2-VL and Qwen2.5-VL: real HF config/model/processor classes, ~0.3 M random weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from ops.tiny.common import INIT_RANGE, SEED, padded_vocab, save
from ops.tiny.templates import QWEN2_VL
from ops.tiny.tokenizer import qwen_tokenizer, token_ids

SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip

TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
    "initializer_range": INIT_RANGE,
}
# Public-checkpoint sampling defaults (Qwen2-VL-7B-Instruct / Qwen2.5-VL-7B-Instruct).
GENERATION = {
    "qwen2-vl": {
        "do_sample": True,
        "temperature": 0.01,
        "top_p": 0.001,
        "top_k": 1,
        "repetition_penalty": 1.05,
    },
    "qwen2.5-vl": {
        "do_sample": True,
        "temperature": 0.1,
        "top_p": 0.001,
        "top_k": 1,
        "repetition_penalty": 1.05,
    },
}


def _vision(family: str) -> dict[str, Any]:
    common = {"depth": 2, "num_heads": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
              "in_channels": 3, "in_chans": 3, "initializer_range": INIT_RANGE}  # fmt: skip
    if family == "qwen2-vl":
        return {**common, "embed_dim": 32, "hidden_size": TEXT["hidden_size"], "mlp_ratio": 2}
    return {**common, "hidden_size": 32, "intermediate_size": 64, "out_hidden_size": TEXT["hidden_size"],
            "window_size": 112, "fullatt_block_indexes": [1], "tokens_per_second": 2}  # fmt: skip


def build(family: str, out: Path) -> None:
    """`family` is "qwen2-vl" or "qwen2.5-vl"; writes a checkpoint directory loadable by Auto* classes."""
    tokenizer = qwen_tokenizer(SPECIALS, eos="<|im_end|>", max_length=32768)
    ids = token_ids(tokenizer, SPECIALS)
    text = {**TEXT, "vocab_size": padded_vocab(len(tokenizer)), "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}  # fmt: skip
    classes: tuple[Any, Any, Any] = (
        (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor)
        if family == "qwen2-vl"
        else (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor)
    )
    config_cls, model_cls, processor_cls = classes
    config = config_cls(
        text_config=text,
        vision_config=_vision(family),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        initializer_range=INIT_RANGE,
    )
    torch.manual_seed(SEED)
    model = model_cls(config).eval()
    processor = processor_cls(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=448 * 448),
        video_processor=Qwen2VLVideoProcessor(
            min_pixels=56 * 56, max_pixels=28 * 28 * 64, cap_pixels_per_frame=True
        ),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL,
    )
    generation = {
        **GENERATION[family],
        "bos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
    }
    save(model, processor, generation, out)
