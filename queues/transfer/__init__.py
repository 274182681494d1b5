"""Tensor transfer between worker processes: NIXL descriptors in messages, bytes worker to worker.

`TensorTransfer` (one per process) publishes tensors as a `TensorRef` that rides in a job message and
fetches other processes' refs; NIXL READs when available, same-host shared memory or Redis otherwise,
small payloads inline. Every failure surfaces as `TransferError`. Settings: `TransferConfig`
(environment variables listed in `queues.transfer.config`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from queues.transfer.config import TransferConfig, Transport
from queues.transfer.errors import Reason, TransferError
from queues.transfer.ref import Desc, TensorRef, TensorSpec

if TYPE_CHECKING:
    from queues.transfer.received import Received
    from queues.transfer.transfer import TensorTransfer

# Importing torch takes seconds: only processes that move tensors pay for it. Job messages carry a
# TensorRef, so everything that reads messages (the front door, the autoscaler) imports this package.
_LAZY = {"Received": "queues.transfer.received", "TensorTransfer": "queues.transfer.transfer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Desc",
    "Reason",
    "Received",
    "TensorRef",
    "TensorSpec",
    "TensorTransfer",
    "TransferConfig",
    "TransferError",
    "Transport",
]
