"""Incremental detokenization on the tiny tokenizers: multi-byte characters are never split."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.models import tiny_model_dir
from workers.engine.detokenizer import REPLACEMENT, IncrementalDetokenizer

ALPHABET = "abc xyz,.!\n" + "éü東京猫🙂🐱👍" + "\u0301" + "ß🦊語"  # the last three are not in the tiny vocab


@pytest.fixture(scope="module", params=["qwen2-vl", "llava"])  # byte-level BPE; Metaspace + byte fallback
def tokenizer(request: pytest.FixtureRequest) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dir(request.param))


def stream(tokenizer: Any, ids: list[int]) -> list[str]:
    detokenizer = IncrementalDetokenizer(tokenizer)
    return [detokenizer.push(i) for i in ids] + [detokenizer.flush()]


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=40))
def test_deltas_rebuild_the_text_without_broken_characters(tokenizer: Any, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    deltas = stream(tokenizer, ids)
    assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True)
    assert not any(REPLACEMENT in delta for delta in deltas)


def test_an_emoji_spread_over_byte_tokens_arrives_whole(tokenizer: Any) -> None:
    ids = tokenizer("a🦊b", add_special_tokens=False)["input_ids"]
    assert len(ids) >= 5  # the fox takes several byte tokens
    deltas = stream(tokenizer, ids)
    assert "🦊" in deltas or "a🦊" in deltas or "🦊b" in deltas
    assert "".join(deltas) == "a🦊b"


def test_special_tokens_are_skipped() -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir("qwen2-vl"))
    ids = tokenizer("hi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert "".join(stream(tokenizer, ids)) == "hi"
