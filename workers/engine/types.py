"""Plain msgspec Structs that cross process boundaries: engine tensor descriptions and token outputs.

No torch and no queues import here: queues/messages.py embeds these in job messages. The tensors
themselves travel separately (an embedding per media item; the KV cache as a list of tensors, one
per layer, laid out as described on `DecodeState`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Modality = Literal["image", "video", "audio"]
FinishReason = Literal["stop", "length"]


class EncodedMeta(msgspec.Struct, frozen=True, kw_only=True):
    """One encoded media item: what its embedding tensor is and what prefill needs to place it."""

    modality: Modality
    num_tokens: int  # the item's placeholder expands to this many tokens (rows of the embedding)
    content_hash: str = ""
    dtype: str = "float32"  # torch dtype name of the embedding, e.g. "bfloat16"
    shape: list[int] = []  # [num_tokens, hidden_size]
    grid_thw: list[int] = []  # Qwen-VL: image_grid_thw / video_grid_thw row of this item, in patches
    second_per_grid_t: float = 0.0  # Qwen2.5-VL video: seconds per temporal grid step
    audio_feature_length: int = 0  # Qwen2-Audio: mel frames of the clip (before the encoder's 4x reduction)


class DecodeState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything besides the KV tensors that a decode worker needs to continue a sequence.

    KV layout: a list of `num_layers` contiguous tensors, tensor `i` of shape
    `(2, num_kv_heads, prompt_len, head_dim)` in `kv_dtype`: `[0]` the keys, `[1]` the values of
    layer `i`, for every prompt position (media tokens expanded), rotary embedding already applied.
    """

    prompt_len: int  # expanded prompt length: prompt tokens incl. media tokens, = KV length
    next_position: int  # text position of the token after the prompt (= prompt_len)
    rope_delta: int = 0  # Qwen M-RoPE: decode positions are next_position + k + rope_delta on all axes
    first_token: int
    first_logprob: float | None = None
    first_top_logprobs: list[tuple[int, float]] = []
    generator_state: bytes = b""  # torch.Generator state after sampling the first token (empty: greedy)
    generator_device: str = "cpu"
    penalty_prompt_ids: list[int] = []  # distinct expanded prompt ids, set when repetition_penalty != 1
    num_layers: int
    num_kv_heads: int
    head_dim: int
    kv_dtype: str  # torch dtype name, e.g. "float32"


class TokenOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One generated token as the client sees it."""

    index: int  # 0 for the first generated token (the one prefill sampled)
    token_id: int
    text: str  # the text delta this token releases (may be empty; never part of a stop string)
    logprob: float | None = None  # log-probability of token_id under the model, when asked
    top_logprobs: list[tuple[int, float]] | None = None  # (token id, logprob), most likely first
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0  # expanded prompt length, media tokens included
    completion_tokens: int = 0  # tokens generated so far, this one included
