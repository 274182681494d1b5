"""Piecewise tokenization with remembered pieces gives exactly the tokenizer's ids, or is not used."""

from __future__ import annotations

import pytest

from queues.checkpoint import Checkpoint
from queues.checkpoint.segments import SegmentEncoder
from tests.models import tiny_model_dir

TEXTS = [
    "",
    "plain text, no added tokens at all",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
    "<|im_start|><|im_end|><|im_start|>",
    "  leading spaces<|im_end|>trailing  \n\n\t",
    "<|vision_start|><|image_pad|><|vision_end|>What is it? 你好, Hé!<|im_end|>",
    "half a token <|im_start and <|im_end|x and |im_end|> stay text",
    "<|im_start|>user\nRequest 17: tell me a story.<|im_end|>\n<|im_start|>assistant\n",
    "numbers 12345 678, emoji \U0001f600 and combining e\u0301 (NFC)",
]


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2-audio"])
def test_ids_equal_the_tokenizer_cold_warm_and_evicting(family: str) -> None:
    backend = Checkpoint.load(tiny_model_dir(family)).tokenizer
    encoder = SegmentEncoder.for_tokenizer(backend)
    small = SegmentEncoder.for_tokenizer(backend, capacity=2)
    assert encoder is not None and small is not None
    for _ in range(2):  # the second round comes from the remembered pieces
        for text in TEXTS:
            expected = backend.encode(text).ids
            assert encoder.encode(text) == expected, text
            assert small.encode(text) == expected, text


def test_not_used_where_pieces_depend_on_their_place() -> None:
    # LLaVA's Llama tokenizer adds BOS and prefixes only the first piece with a space marker
    assert SegmentEncoder.for_tokenizer(Checkpoint.load(tiny_model_dir("llava")).tokenizer) is None
