"""Tiny BPE tokenizers trained offline with `tokenizers`, wrapped in the family's real HF tokenizer class.

The training runs on the backend pipeline of the real class (its normalizer and pre-tokenizer), so
the saved tokenizer behaves like the public checkpoint's, only with a few hundred merges.
"""

from __future__ import annotations

import json
from typing import Any

from tokenizers import pre_tokenizers, trainers
from transformers import LlamaTokenizer, Qwen2Tokenizer

from ops.tiny.corpus import corpus

QWEN_VOCAB = 400  # learned tokens before the special ones
LLAMA_VOCAB = 640  # includes <unk> <s> </s> and the 256 byte-fallback tokens
LLAMA_BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]
NO_UNK: dict[str, Any] = {"unk_token": None}  # as in Qwen's tokenizer_config.json


def _train(backend: Any, trainer: trainers.BpeTrainer) -> tuple[dict[str, int], Any]:
    """Train `backend` (a `tokenizers.Tokenizer`) in place; returns its vocab and merges."""
    backend.train_from_iterator(corpus(), trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return dict(model["vocab"]), merges


def token_ids(tokenizer: Any, tokens: list[str]) -> dict[str, int]:
    return {token: int(tokenizer.convert_tokens_to_ids(token)) for token in tokens}


def qwen_tokenizer(specials: list[str], eos: str, max_length: int) -> Qwen2Tokenizer:
    """Byte-level BPE in Qwen2's pipeline; `specials` get consecutive ids right after the learned vocab."""
    trainer = trainers.BpeTrainer(
        vocab_size=QWEN_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    vocab, merges = _train(Qwen2Tokenizer().backend_tokenizer, trainer)
    vocab.update({token: len(vocab) + i for i, token in enumerate(specials)})  # ids in the given order
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        eos_token=eos,
        pad_token=specials[0],
        extra_special_tokens=specials[1:],
        model_max_length=max_length,
        errors="replace",
        **NO_UNK,
    )


def llama_tokenizer(extra: list[str], max_length: int) -> LlamaTokenizer:
    """Metaspace BPE with byte fallback in Llama's pipeline (adds <s> in front, like LLaVA-1.5)."""
    trainer = trainers.BpeTrainer(
        vocab_size=LLAMA_VOCAB,
        special_tokens=["<unk>", "<s>", "</s>", *LLAMA_BYTE_TOKENS],
        show_progress=False,
    )
    vocab, merges = _train(LlamaTokenizer().backend_tokenizer, trainer)
    vocab.update({token: len(vocab) + i for i, token in enumerate(extra)})
    return LlamaTokenizer(
        vocab=vocab,
        merges=merges,
        extra_special_tokens=extra,
        add_bos_token=True,
        model_max_length=max_length,
        padding_side="left",
    )
