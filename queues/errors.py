"""Typed errors: what a client is told (`ClientError`), how a stage handler says what should happen
next (`Rerun`), the queue's refusals, and which exceptions mean Redis cannot be reached."""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from queues.types import Stage

# Redis cannot be reached: redis-py's connection and timeout errors and the socket errors under them
# (the built-in ConnectionError and TimeoutError are OSErrors). Everything else is a reply.
UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


class JobError(Exception):
    """Base of the errors a stage handler raises on purpose."""


# The OpenAI error type of each status a client can get (anything else is a server_error).
TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "server_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ClientError(JobError):
    """A failure the client is told about, the same from where it is found (the front door, a media
    loader, a stage handler) through the job's error event to the HTTP body: the status, a message
    safe to show, OpenAI's `type`, a stable `code` clients and metrics branch on, the request field
    at fault (`param`, as OpenAI writes it: `messages[0].content[1].image_url.url`) and, for a refusal
    that passes, how many seconds to wait (`retry_after`). Raised in a stage handler, it fails the
    job without a retry."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        param: str | None = None,
        type: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or TYPES.get(status, "server_error")
        self.retry_after = retry_after

    def at(self, param: str) -> ClientError:
        """The same error, about the request field `param`."""
        return ClientError(
            self.status,
            self.message,
            code=self.code,
            param=param,
            type=self.type,
            retry_after=self.retry_after,
        )

    def __reduce__(self) -> tuple[Any, ...]:  # intact across a process boundary (pickle)
        return (_rebuild, (self.status, self.message, self.code, self.param, self.type, self.retry_after))

    def __repr__(self) -> str:
        return f"ClientError({self.status}, {self.message!r}, code={self.code!r}, param={self.param!r})"


def _rebuild(
    status: int, message: str, code: str, param: str | None, type: str, retry_after: int | None
) -> ClientError:
    return ClientError(status, message, code=code, param=param, type=type, retry_after=retry_after)


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
