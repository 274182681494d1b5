"""Typed errors of the job runtime: how a handler says what went wrong and what should happen next."""

from __future__ import annotations

from queues.types import Stage


class JobError(Exception):
    """Base of the errors a stage handler raises on purpose."""


class RetryableError(JobError):
    """A transient failure: the job is retried at the same stage until its attempts run out.

    Any exception that is not a JobError is treated the same way.
    """


class FatalError(JobError):
    """The job cannot succeed (bad media, prompt too long, ...): the client gets this error, no retry."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param


class Rerun(JobError):
    """An input produced by an earlier stage is gone (its owner died, its tensor expired): run the job
    again from `stage`, which produces that input anew."""

    def __init__(self, stage: Stage, reason: str) -> None:
        super().__init__(f"re-run from {stage}: {reason}")
        self.stage = stage
        self.reason = reason


class BacklogFull(Exception):
    """Enqueue refused: the stream already holds `limit` entries. The front door answers 429."""

    def __init__(self, stream: str, limit: int) -> None:
        super().__init__(f"backlog of {stream} is at its limit of {limit} jobs")
        self.stream = stream
        self.limit = limit


class UnreadableMessage(Exception):
    """A stream entry this worker cannot decode (unknown version, corrupt payload): dead-lettered."""
