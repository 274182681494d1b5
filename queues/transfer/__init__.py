"""Tensor transfer between worker processes: NIXL descriptors in messages, bytes worker to worker.

`TensorTransfer` (one per process) publishes tensors as a `TensorRef` that rides in a job message and
fetches other processes' refs; NIXL READs when available, same-host shared memory or Redis otherwise,
small payloads inline. Every failure surfaces as `TransferError`. Settings: `TransferConfig`
(environment variables listed in `queues.transfer.config`).
"""

from queues.transfer.config import TransferConfig, Transport
from queues.transfer.errors import Reason, TransferError
from queues.transfer.received import Received
from queues.transfer.ref import Desc, TensorRef, TensorSpec
from queues.transfer.transfer import TensorTransfer

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
