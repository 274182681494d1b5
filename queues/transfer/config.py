"""Tensor-transfer settings, loadable from `TRANSFER_*` environment variables.

| Variable                          | Default    | Meaning                                                 |
|-----------------------------------|------------|---------------------------------------------------------|
| `TRANSFER_TRANSPORT`              | `auto`     | `auto`, `nixl`, `shm`, `inline` or `redis`: how         |
|                                   |            | `publish` ships tensors. `auto`: inline up to the       |
|                                   |            | inline threshold, else NIXL, else (no NIXL) shared      |
|                                   |            | memory for a CPU device, else Redis                     |
| `TRANSFER_INLINE_MAX_BYTES`       | `64KiB`    | largest payload `auto` puts inline in the message       |
| `TRANSFER_HELD_MAX_BYTES`         | `1GiB`     | send buffer size = cap on bytes held for readers;       |
|                                   |            | `publish` waits at the cap; one larger payload fails    |
|                                   |            | with `too_large`                                        |
| `TRANSFER_HELD_MAX_COUNT`         | `1024`     | cap on transfers held at once (`publish` waits)         |
| `TRANSFER_TTL_S`                  | `60`       | default lifetime of an unread published transfer        |
| `TRANSFER_READ_TIMEOUT_S`         | `30`       | default `fetch` timeout (includes waiting for a buffer) |
| `TRANSFER_POOL_BYTES`             | `1GiB`     | registered receive pool; a larger payload gets a        |
|                                   |            | buffer of its own                                       |
| `TRANSFER_DEVICE`                 | `auto`     | `cpu`, `cuda` or `cuda:N` buffers; `auto`: `cuda` when  |
|                                   |            | a GPU is visible (VRAM is registered with NIXL)         |
| `TRANSFER_NIXL_BACKENDS`          | `UCX`      | comma-separated NIXL backends                           |
| `TRANSFER_NIXL_THREADS`           | `2`        | threads that post large NIXL reads off the event loop   |
| `TRANSFER_NIXL_PROGRESS_DELAY_US` | `auto`     | idle wait of NIXL's progress thread, microseconds; 0    |
|                                   |            | keeps NIXL's default, which spins a whole core even     |
|                                   |            | when idle. `auto`: 1000 on a CPU device, 0 on CUDA      |
|                                   |            | (an armed UCX worker can crash in cuda_copy: nixl#2102) |
| `TRANSFER_META_TTL_S`             | `30`       | TTL of the published agent metadata (owner refreshes)   |
| `TRANSFER_POLL_S`                 | `0.002`    | owner's poll period for reader notifications while it   |
|                                   |            | holds transfers                                         |
| `TRANSFER_SHM_DIR`                | `/dev/shm` | directory of shared-memory send buffers                 |

Sizes take a unit: `64KiB`, `1G` (x1024), `1GB` (x1000); see queues/config.py. Shared memory only
reaches readers on the same host: a multi-host deployment without NIXL sets
`TRANSFER_TRANSPORT=redis`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, get_args

import msgspec

from queues.config import env_names, from_env

Transport = Literal["nixl", "shm", "inline", "redis"]
TransportChoice = Literal["auto", "nixl", "shm", "inline", "redis"]


class TransferConfig(msgspec.Struct, frozen=True, kw_only=True, rename=env_names("TRANSFER_")):
    """Settings of one process's TensorTransfer. See the module docstring for the variables."""

    transport: TransportChoice = "auto"
    inline_max_bytes: int = 64 << 10
    held_max_bytes: int = 1 << 30
    held_max_count: int = 1024
    ttl_s: float = 60.0
    read_timeout_s: float = 30.0
    pool_bytes: int = 1 << 30
    device: str = "auto"
    nixl_backends: tuple[str, ...] = ("UCX",)
    nixl_threads: int = 2
    nixl_progress_delay_us: int | Literal["auto"] = "auto"
    meta_ttl_s: float = 30.0
    poll_s: float = 0.002
    shm_dir: str = "/dev/shm"

    def __post_init__(self) -> None:
        if self.transport not in get_args(TransportChoice):
            raise ValueError(f"transport must be one of {get_args(TransportChoice)}, not {self.transport!r}")
        if self.inline_max_bytes < 0:
            raise ValueError("inline_max_bytes must be >= 0")
        if self.nixl_progress_delay_us != "auto" and self.nixl_progress_delay_us < 0:
            raise ValueError("nixl_progress_delay_us must be >= 0 (or auto)")
        for name in ("held_max_bytes", "pool_bytes"):
            if getattr(self, name) < 4096:
                raise ValueError(f"{name} must be at least 4 KiB")
        for name in ("held_max_count", "nixl_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("ttl_s", "read_timeout_s", "meta_ttl_s", "poll_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.device != "auto" and not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        if not self.nixl_backends:
            raise ValueError("nixl_backends must name at least one backend")

    def progress_delay_us(self, device_type: str) -> int:
        if self.nixl_progress_delay_us != "auto":
            return self.nixl_progress_delay_us
        return 1000 if device_type == "cpu" else 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TransferConfig:
        """Read `TRANSFER_<FIELD>` for every field; unset variables keep their defaults."""
        return from_env(cls, environ)
