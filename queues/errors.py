"""Typed errors of the job runtime: how a handler says what went wrong and what should happen next."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queues.types import Stage

# Redis cannot be reached: redis-py's connection and timeout errors and the socket errors under them
# (the built-in ConnectionError and TimeoutError are OSErrors). Everything else is a reply.
UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


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


class QueueUnavailable(Exception):
    """Redis cannot be reached (or answered with an error): nothing was accepted. The front door
    answers 503."""


class NoWorkers(Exception):
    """No live worker runs these stages of the request's route (`waited`: none started within the
    admission timeout, though an autoscaler announced them). Nothing was accepted. 503."""

    def __init__(self, missing: list[Stage], waited_s: float | None = None) -> None:
        stages = ", ".join(missing)
        message = f"no worker is running for the {stages} stage{'s' if len(missing) > 1 else ''}"
        super().__init__(message + (f" (none started within {waited_s:g} s)" if waited_s is not None else ""))
        self.missing = missing
        self.waited_s = waited_s


class UnreadableMessage(Exception):
    """A stream entry this worker cannot decode (unknown version, corrupt payload): dead-lettered."""
