"""The one error tensor transfer raises, with a machine-readable reason.

The stage runtime turns a `TransferError` from `fetch` into a re-run from the stage that produced the
tensors; `reason` says why, for logs and metrics.
"""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "owner_gone",  # the producing process is dead or closed, or its metadata is gone
    "stale",  # the owner restarted: the reference names an older epoch than the published one
    "expired",  # the buffer was freed (expiry, discard, or an earlier reader's notification)
    "timeout",  # the read, or the wait for a receive buffer, ran past its deadline
    "size_mismatch",  # descriptors, tensor extents or received byte counts disagree
    "invalid",  # a malformed reference (unknown dtype, negative shape, unknown transport)
    "unreachable",  # this process cannot use the reference's transport (other host, no NIXL)
    "unavailable",  # a transport forced by configuration cannot start here
    "too_large",  # the tensors exceed the held-bytes cap and can never be published
    "failed",  # the transport reported an error not covered above
    "closed",  # this TensorTransfer is closed
]


class TransferError(Exception):
    """A tensor transfer failed; `reason` is one of `Reason`."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason: Reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[TransferError], tuple[Reason, str]]:
        return (TransferError, (self.reason, self.message))
