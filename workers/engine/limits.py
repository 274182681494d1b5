"""Engine limits and counters, shared by the transformers engine and the mock engine, and the
arithmetic of the KV budget (`MAX_KV_TOKENS=auto`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

MIN_KV_TOKENS = 1024  # a KV budget below this holds no real request: the worker refuses to start


@dataclass
class EngineLimits:
    """Read by the engine's schedulers at every step. Not frozen for one reason: the worker settles
    `max_kv_tokens` (MAX_KV_TOKENS=auto) once the model is on its GPU, which is after the engine,
    holding this object, was built, and before it serves (workers/context.py). Nothing else changes it."""

    max_batch_size: int = 64  # sequences per decode step
    max_kv_tokens: int = 262_144  # KV positions reserved by the decode batch (prompt + max new tokens each)
    encode_window_s: float = 0.002  # how long encode waits for more requests to batch with
    max_encode_items: int = 32  # media items per encoder batch


@dataclass
class EngineStats:
    """Counters for tests, benchmarks and metrics."""

    encode_batches: int = 0
    encode_items: int = 0
    prefills: int = 0
    decode_steps: int = 0
    decode_tokens: int = 0
    peak_batch: int = 0  # most sequences one decode step advanced
    rows_after_step: int = 0  # sequences left in the decode batch after the latest step


class KVShape(NamedTuple):
    layers: int
    kv_heads: int
    head_dim: int


def kv_shape(text_config: Any) -> KVShape:
    """The KV cache's shape per position, from a model's text config (grouped-query heads, an explicit
    head_dim where the config has one)."""
    heads = text_config.num_attention_heads
    return KVShape(
        layers=text_config.num_hidden_layers,
        kv_heads=getattr(text_config, "num_key_value_heads", None) or heads,
        head_dim=getattr(text_config, "head_dim", None) or text_config.hidden_size // heads,
    )


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int) -> int:
    """Bytes one position of the KV cache takes: a key and a value per layer and KV head."""
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def kv_tokens_for_memory(
    *, free_bytes: int, total_bytes: int, used_bytes: int, fraction: float, bytes_per_token: int
) -> int:
    """KV positions that fit in what the worker may still take of its GPU.

    The worker may use `fraction` of the device's `total_bytes` in all (GPU_MEMORY_FRACTION, as
    vLLM's gpu_memory_utilization); it already holds `used_bytes` (the model); and it cannot take
    more than is `free_bytes` on the device now (other processes hold the rest)."""
    budget = min(free_bytes, int(fraction * total_bytes) - used_bytes)
    return max(0, budget) // bytes_per_token
