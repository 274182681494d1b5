"""Engine limits and counters, shared by the transformers engine and the mock engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineLimits:
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
