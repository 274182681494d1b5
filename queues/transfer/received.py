"""`Received`: the tensors of one fetched reference, on loan from the reader's buffer pool."""

from __future__ import annotations

import logging
from types import TracebackType

import torch

from queues.transfer.arena import Lease
from queues.transfer.ref import TensorRef

log = logging.getLogger(__name__)


class Received:
    """`tensors` view a pooled buffer until `release()` (idempotent) returns it; also a context
    manager. Copy (or consume) the tensors before releasing."""

    def __init__(self, ref: TensorRef, tensors: list[torch.Tensor], lease: Lease) -> None:
        self.ref = ref
        self.tensors = tensors
        self._lease: Lease | None = lease

    @property
    def released(self) -> bool:
        return self._lease is None

    def release(self) -> None:
        lease, self._lease = self._lease, None
        self.tensors = []
        if lease is not None:
            lease.release()

    def __enter__(self) -> Received:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        if self._lease is not None:
            # Not released: the buffer stays out of the pool (its tensors may still be in use).
            log.warning("Received for transfer %d collected without release()", self.ref.tag)
