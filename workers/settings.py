"""Settings of the stage workers, read from environment variables (see the README's table)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from queues.config import env_names, from_env

DEVICE_NAME = re.compile(r"cpu|cuda(:[0-9]+)?")  # what DEVICE (and AUTOSCALE_DEVICES) may name
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
DEFAULT_KV_TOKENS = 262_144  # MAX_KV_TOKENS=auto on CPU


def check_device_name(text: str, variable: str = "DEVICE") -> str:
    """`text` if it names a device the way DEVICE does (cpu, cuda, cuda:N), else ValueError."""
    if not DEVICE_NAME.fullmatch(text):
        raise ValueError(f"{variable}={text!r}: expected cpu, cuda or cuda:N (N a GPU index)")
    return text


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("")):
    model: str  # checkpoint directory (Hugging Face layout)
    engine: Literal["hf", "mock", "sglang"] = "hf"  # hf: transformers (the reference); mock: simulated
    # timings; sglang: sglang serves agg and pd (workers/engine/sglang, docs/SGLANG.md)
    device: str = "cpu"  # cpu, cuda (the current GPU), cuda:N; checked against the machine at start
    dtype: Dtype = "auto"  # auto: bfloat16 on a GPU that has it natively, else float16; CPU float32
    worker_concurrency: int = 0  # jobs one worker runs at once; 0: the stage's default
    max_batch_size: int = 64  # sequences per decode step
    # KV positions the decode batch may hold; auto: what fits in GPU_MEMORY_FRACTION of the GPU once
    # the model is loaded (workers/devices.py), DEFAULT_KV_TOKENS on CPU
    max_kv_tokens: Annotated[int, msgspec.Meta(ge=1)] | Literal["auto"] = "auto"
    # the share of the GPU's total memory one worker may use in all (weights, KV, activations)
    gpu_memory_fraction: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.9
    tensor_ttl_s: float = 120.0  # how long a published tensor waits for its reader
    # a streamed request's tokens leave at most this often (the first and the last at once): tokens
    # faster than that travel together, one message instead of several; 0: each as soon as possible
    stream_interval_ms: float = 5.0
    # torch CPU threads per worker process; 0: a quarter of the cores (several workers share a node,
    # and on 2 cores one thread each decodes ~3x faster than torch's default of one per core)
    torch_threads: int = 0
    # mock engine timings (seconds), for infrastructure benchmarks
    mock_prefill_token_s: float = 0.0
    mock_decode_step_s: float = 0.0
    mock_encode_item_s: float = 0.0

    def __post_init__(self) -> None:
        check_device_name(self.device)

    @classmethod
    def concurrency_from_env(cls, stage: str) -> int:
        return from_env(cls).concurrency(stage)

    def concurrency(self, stage: str) -> int:
        if self.worker_concurrency > 0:
            return self.worker_concurrency
        # decode-bearing stages hold a job for the whole generation: allow a full batch
        return {"encode": 16, "prefill": 8}.get(stage, self.max_batch_size)
