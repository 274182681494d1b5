"""Helpers shared by the family builders: seeding, vocabulary padding, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import GenerationConfig, PreTrainedModel

SEED = 1234
# A large init range makes the tiny random model's output depend on its input: with HF's default of
# 0.02 greedy output is nearly constant, whatever the image.
INIT_RANGE = 0.5


def padded_vocab(tokenizer_size: int, multiple: int = 64) -> int:
    """Real checkpoints pad the embedding table; ids past the tokenizer decode to an empty string."""
    return -(-tokenizer_size // multiple) * multiple


def save(model: PreTrainedModel, processor: Any, generation: dict[str, Any], out: Path) -> None:
    """Write weights, config, generation_config.json and the processor (tokenizer, template, media)."""
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(**generation)
    model.save_pretrained(out)
    processor.save_pretrained(out)
