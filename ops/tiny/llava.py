"""Tiny LLaVA-1.5 in the llava-hf layout: CLIP vision tower + Llama language model, random weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from ops.tiny.common import INIT_RANGE, SEED, padded_vocab, save
from ops.tiny.templates import LLAVA_1_5
from ops.tiny.tokenizer import llama_tokenizer, token_ids

IMAGE_SIZE = 56  # 336 in the real model
PATCH = 14


def build(out: Path) -> None:
    tokenizer = llama_tokenizer(["<image>", "<pad>"], max_length=4096)
    tokenizer.pad_token = "<pad>"
    ids = token_ids(tokenizer, ["<image>", "<pad>"])
    image_id, pad_id = ids["<image>"], ids["<pad>"]
    extra: dict[str, Any] = {"pad_token_id": pad_id, "initializer_range": INIT_RANGE}
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=32, initializer_range=INIT_RANGE,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=padded_vocab(len(tokenizer)), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        initializer_range=INIT_RANGE,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad_id,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_id,
        image_seq_length=(IMAGE_SIZE // PATCH) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        **extra,
    )
    torch.manual_seed(SEED)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_1_5,
    )
    generation = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": pad_id,
    }
    save(model, processor, generation, out)
