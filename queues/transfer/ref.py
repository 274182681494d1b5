"""`TensorRef`: what a job message carries instead of tensor bytes.

A reference describes one transfer of one or more tensors (e.g. every KV layer of a job). The
tensors are packed back to back (each aligned) into one payload; `tensors` gives each one's dtype,
shape and offset in the payload. Where the payload is depends on `transport`:

- `nixl`: in the owner's registered send buffer; `descs` are NIXL memory descriptors
  (owner-virtual address, length, device id) of memory type `mem`, read with one NIXL READ;
  the owner's agent metadata is published once at `meta_key` (fetched once per owner and epoch).
- `shm`: in the owner's shared-memory send buffer on the same host; `descs` as for nixl, the reader
  maps the owner's file (named in the published metadata) and copies.
- `inline`: the bytes themselves, in `data`.
- `redis`: in the Redis key `blob_key`, which expires with the reference.

`slot` + `tag` let a reader prove the payload was still live after it copied it: the owner keeps
`tag` in its slot table while it holds the payload and clears it before freeing; the tag also
names the transfer in the reader's completion notification.
"""

from __future__ import annotations

import msgspec

from queues.transfer.config import Transport


class TensorSpec(msgspec.Struct, frozen=True, array_like=True):
    """One tensor inside a payload."""

    dtype: str  # torch dtype name without the "torch." prefix, e.g. "bfloat16"
    shape: list[int]
    offset: int  # byte offset in the payload


class Desc(msgspec.Struct, frozen=True, array_like=True):
    """One NIXL memory descriptor: owner-virtual address, length in bytes, device id."""

    addr: int
    nbytes: int
    device: int = 0


class TensorRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A descriptor of published tensors, small enough to ride inside a job message."""

    transport: Transport
    tensors: list[TensorSpec]
    nbytes: int  # payload size
    tag: int  # completion tag, unique within the owner's epoch
    expires_at: float  # unix seconds; the owner frees the payload then at the latest
    owner: str  # owner agent name
    epoch: int  # owner incarnation: a restarted owner publishes a new one
    meta_key: str = ""  # Redis key of the owner's published agent metadata (nixl, shm)
    mem: str = "DRAM"  # NIXL memory type of descs: DRAM or VRAM
    descs: list[Desc] = []
    slot: int = -1
    blob_key: str = ""  # redis transport
    data: bytes = b""  # inline transport
