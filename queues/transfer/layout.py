"""Packing several tensors into one contiguous payload and viewing them back out.

All tensors of one transfer go into one payload, each at an `ALIGN`-aligned offset, so a KV cache of
many layers moves as one transfer. Large copies run in a thread (torch releases the GIL) so the
event loop keeps serving; CUDA copies are synchronized before the payload is handed to a reader.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import warnings
from collections.abc import Callable, Sequence

import torch

from queues.transfer.errors import TransferError
from queues.transfer.ref import TensorSpec

ALIGN = 256
# Copies below this run inline on the event loop: a thread hop costs more than the copy.
THREAD_COPY_BYTES = 1 << 20


def align_up(value: int, align: int = ALIGN) -> int:
    return (value + align - 1) // align * align


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def dtype_of(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise TransferError("invalid", f"unknown dtype {name!r}")
    return dtype


def tensor_nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def plan(tensors: Sequence[torch.Tensor]) -> tuple[list[TensorSpec], int]:
    """Specs (dtype, shape, aligned offset) for `tensors` packed in order, and the payload size."""
    specs: list[TensorSpec] = []
    end = 0
    for tensor in tensors:
        offset = align_up(end)
        specs.append(TensorSpec(dtype_name(tensor.dtype), list(tensor.shape), offset))
        end = offset + tensor_nbytes(tensor)
    return specs, end


def check(specs: Sequence[TensorSpec], nbytes: int) -> None:
    """Raise unless every tensor lies inside a payload of `nbytes` bytes."""
    for spec in specs:
        if any(dim < 0 for dim in spec.shape) or spec.offset < 0:
            raise TransferError("invalid", f"negative shape or offset in {spec}")
        dtype = dtype_of(spec.dtype)
        size = math.prod(spec.shape) * dtype.itemsize
        if spec.offset % dtype.itemsize or spec.offset + size > nbytes:
            raise TransferError("size_mismatch", f"tensor {spec} does not fit a payload of {nbytes} bytes")


def views(buffer: torch.Tensor, specs: Sequence[TensorSpec]) -> list[torch.Tensor]:
    """Tensors viewing a packed uint8 `buffer` (no copy)."""
    check(specs, buffer.numel())
    out = []
    for spec in specs:
        dtype = dtype_of(spec.dtype)
        size = math.prod(spec.shape) * dtype.itemsize
        out.append(buffer[spec.offset : spec.offset + size].view(dtype).view(spec.shape))
    return out


async def pack(buffer: torch.Tensor, tensors: Sequence[torch.Tensor], specs: Sequence[TensorSpec]) -> None:
    """Copy `tensors` into the uint8 `buffer` at their planned offsets."""
    targets = views(buffer, specs)

    def run() -> None:
        for target, tensor in zip(targets, tensors, strict=True):
            target.copy_(tensor)

    await run_copy(run, buffer.numel(), buffer.device)


async def copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    """`dst.copy_(src)`, off the event loop when large, complete (CUDA-synchronized) on return."""
    await run_copy(lambda: dst.copy_(src), tensor_nbytes(dst), dst.device)


def digest(tensors: Sequence[torch.Tensor]) -> str:
    """SHA-256 over the tensors' bytes in order (dtype and shape not included): to check that a
    transfer delivered exactly what was published."""
    hasher = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        hasher.update(flat.view(torch.uint8).numpy().data if flat.numel() else b"")
    return hasher.hexdigest()


def frombuffer(data: bytes) -> torch.Tensor:
    """A uint8 tensor over read-only bytes, for reading only (torch warns on any read-only buffer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.frombuffer(data, dtype=torch.uint8)


async def run_copy(fn: Callable[[], object], nbytes: int, device: torch.device) -> None:
    def run() -> None:
        fn()
        if device.type == "cuda":
            # The copy ran on this thread's current (default) stream, after the producer's work on it.
            torch.cuda.current_stream(device).synchronize()

    if nbytes >= THREAD_COPY_BYTES or device.type == "cuda":
        await asyncio.to_thread(run)
    else:
        run()
