"""Tiny Qwen2-Audio: Whisper-style audio encoder + Qwen2 language model, random weights.

The feature extractor pads/truncates clips to 2 s (the real model: 30 s), so the encoder has 100
positions instead of 1500; everything else is the real pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    Qwen2AudioConfig,
    Qwen2AudioEncoderConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2Config,
    WhisperFeatureExtractor,
)

from ops.tiny.common import INIT_RANGE, SEED, padded_vocab, save
from ops.tiny.templates import QWEN2_AUDIO
from ops.tiny.tokenizer import qwen_tokenizer, token_ids

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
CHUNK_SECONDS = 2
SAMPLING_RATE = 16000
HOP = 160
TOP_LEVEL: dict[str, Any] = {"initializer_range": INIT_RANGE}


def build(out: Path) -> None:
    tokenizer = qwen_tokenizer(SPECIALS, eos="<|im_end|>", max_length=32768)
    ids = token_ids(tokenizer, SPECIALS)
    mel_frames = CHUNK_SECONDS * SAMPLING_RATE // HOP
    audio = Qwen2AudioEncoderConfig(
        num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
        max_source_positions=mel_frames // 2, initializer_range=INIT_RANGE,
    )  # fmt: skip
    text = Qwen2Config(
        vocab_size=padded_vocab(len(tokenizer)), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
        initializer_range=INIT_RANGE,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )  # fmt: skip
    config = Qwen2AudioConfig(
        audio_config=audio,
        text_config=text,
        audio_token_index=ids["<|AUDIO|>"],
        **TOP_LEVEL,
    )
    torch.manual_seed(SEED)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=SAMPLING_RATE, hop_length=HOP, chunk_length=CHUNK_SECONDS, n_fft=400
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=extractor, tokenizer=tokenizer, chat_template=QWEN2_AUDIO
    )
    # Qwen2-Audio-7B-Instruct's sampling defaults.
    generation = {
        "do_sample": True, "top_k": 0, "top_p": 0.5, "bos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|endoftext|>"], ids["<|im_end|>"]],
    }  # fmt: skip
    save(model, processor, generation, out)
