"""Where a worker's model runs, checked against this machine before the model loads, and the KV
budget of `MAX_KV_TOKENS=auto` once it has.

- DEVICE (`check_device`): `cpu` always works; `cuda` needs a GPU this process can see, `cuda:N`
  needs N below the number it sees.
- DTYPE (`choose_dtype`): `auto` is bfloat16 on a GPU that computes in it natively (compute
  capability 8.0 and up), float16 on older GPUs, float32 on CPU. An explicit `bfloat16` is refused
  on a GPU where torch cannot run it at all (not even emulated). Every dtype is accepted on CPU:
  torch 2.x runs our model families in float16 and bfloat16 there (checked with every tiny family,
  prefill and decode, torch 2.14); they are slower than float32 on most CPUs.
- MAX_KV_TOKENS=auto (`kv_tokens_on_device`): on a GPU, what is left of GPU_MEMORY_FRACTION of it
  after the model loaded, in KV positions (`workers.engine.limits`); DEFAULT_KV_TOKENS on CPU.

Each refusal is a DeviceError, a ConfigError: the worker stops with its one line (workers/stage.py).
The CUDA paths are tested with torch's CUDA queries monkeypatched (tests/unit/workers/test_devices.py);
they have not run on a GPU yet.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from queues.config import ConfigError
from queues.types import Stage
from workers.engine.limits import MIN_KV_TOKENS, kv_bytes_per_token, kv_shape, kv_tokens_for_memory
from workers.settings import DEFAULT_KV_TOKENS, Dtype, WorkerSettings

log = logging.getLogger(__name__)

DECODING: frozenset[Stage] = frozenset({"decode", "pd", "agg"})  # the stages whose engine holds a KV batch
GIB = 1 << 30


class DeviceError(ConfigError):
    """DEVICE, DTYPE or MAX_KV_TOKENS asks for what this machine cannot do; the message says which."""


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype


def place(settings: WorkerSettings) -> Placement:
    """The checked device and dtype of a worker, logged; call before loading anything onto it."""
    device = check_device(settings.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # libraries that use "the current GPU" use this one
    placement = Placement(device, resolve_dtype(settings.dtype, device))
    log.info(
        "device %s, dtype %s (DEVICE=%s, DTYPE=%s)",
        placement.device,
        str(placement.dtype).removeprefix("torch."),
        settings.device,
        settings.dtype,
    )
    return placement


def check_device(name: str) -> torch.device:
    """The torch device DEVICE names (already validated as cpu, cuda or cuda:N), if this process
    can use it; else DeviceError."""
    device = torch.device(name)
    if device.type == "cpu":
        return device
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    shown = "" if visible is None else f", CUDA_VISIBLE_DEVICES={visible!r}"
    if not torch.cuda.is_available():
        raise DeviceError(
            f"DEVICE={name}: this process sees no CUDA GPU (torch.cuda.is_available() is false{shown});"
            " use DEVICE=cpu or run the worker where a GPU is visible"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(
            f"DEVICE={name}: this process sees {count} GPU{'s' if count > 1 else ''}"
            f" (cuda:0 to cuda:{count - 1}{shown})"
        )
    return device


def resolve_dtype(requested: Dtype, device: torch.device) -> torch.dtype:
    """DTYPE for `device`; on a GPU, asks torch about bfloat16 on the current device (`place` made
    it the worker's)."""
    if device.type != "cuda":
        return choose_dtype(requested, device.type, bf16_native=False, bf16_runs=False)
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    runs = native or torch.cuda.is_bf16_supported(including_emulation=True)
    return choose_dtype(requested, device.type, bf16_native=native, bf16_runs=runs)


def choose_dtype(requested: Dtype, device_type: str, *, bf16_native: bool, bf16_runs: bool) -> torch.dtype:
    """The dtype rules of the module docstring; `bf16_runs`: torch can run bfloat16 on this GPU,
    natively or emulated."""
    if device_type == "cpu":
        return torch.float32 if requested == "auto" else _dtype(requested)
    if requested == "auto":
        return torch.bfloat16 if bf16_native else torch.float16
    if requested == "bfloat16" and not bf16_runs:
        raise DeviceError(
            "DTYPE=bfloat16: this GPU cannot compute in bfloat16 (torch.cuda.is_bf16_supported() is"
            " false); use DTYPE=float16, or DTYPE=auto, which picks it"
        )
    if requested == "bfloat16" and not bf16_native:
        log.warning("DTYPE=bfloat16: this GPU has no native bfloat16; torch emulates it (slowly)")
    return _dtype(requested)


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name)
    assert isinstance(dtype, torch.dtype), name
    return dtype


# ---- MAX_KV_TOKENS ---------------------------------------------------------------------------


def fixed_kv_tokens(settings: WorkerSettings, device_type: str) -> int | None:
    """MAX_KV_TOKENS when it is known before the model loads (a number, or auto on CPU); None when
    it is measured on the GPU afterwards."""
    if settings.max_kv_tokens != "auto":
        return settings.max_kv_tokens
    return DEFAULT_KV_TOKENS if device_type != "cuda" else None


def kv_bytes_of(text_config: Any, dtype: torch.dtype) -> int:
    """Bytes per KV position of a model, from its text config (the shape the engine's batch cache
    takes, workers/engine/engine.py `batch_cache_for`)."""
    shape = kv_shape(text_config)
    return kv_bytes_per_token(shape.layers, shape.kv_heads, shape.head_dim, dtype.itemsize)


def kv_tokens_on_device(device: torch.device, fraction: float, bytes_per_token: int) -> int:
    """MAX_KV_TOKENS=auto on a GPU, measured now (call after the model is on it); DeviceError when
    fewer than MIN_KV_TOKENS fit."""
    free, total = torch.cuda.mem_get_info(device)
    used = torch.cuda.memory_reserved(device)
    tokens = kv_tokens_for_memory(
        free_bytes=free,
        total_bytes=total,
        used_bytes=used,
        fraction=fraction,
        bytes_per_token=bytes_per_token,
    )
    figures = (
        f"{device} has {total / GIB:.1f} GiB, {free / GIB:.1f} GiB free; this worker holds"
        f" {used / GIB:.1f} GiB and may use GPU_MEMORY_FRACTION={fraction:g} of it in all;"
        f" a KV position takes {bytes_per_token} bytes"
    )
    if tokens < MIN_KV_TOKENS:
        raise DeviceError(
            f"MAX_KV_TOKENS=auto: room for {tokens} KV positions, fewer than {MIN_KV_TOKENS} ({figures});"
            " raise GPU_MEMORY_FRACTION, free the GPU, or use a smaller model or dtype"
        )
    log.info("MAX_KV_TOKENS=auto: %d KV positions (%s)", tokens, figures)
    return tokens
