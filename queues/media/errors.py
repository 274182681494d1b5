"""The one error type of media ingestion: a user-facing message plus the HTTP status it maps to.

Every failure in `workers.media` (bad reference, refused address, oversized or undecodable
payload, upstream failure or timeout) raises `MediaError`; nothing else escapes `MediaLoader.load`.
The front door returns `status` and `message` to the client as they are, so messages never
contain internal details (stack traces, resolved addresses of refused hosts, local paths beyond
the one the client sent).
"""

from __future__ import annotations

from typing import Any

# status -> what it means; the only statuses MediaError carries. A URL that cannot be fetched (DNS,
# connection, TLS, an HTTP error status, a timeout, a redirect loop) is the client's to fix, so it is
# a 400 too: a 5xx would tell clients (the OpenAI SDK retries 5xx three times) that we failed.
STATUSES: dict[int, str] = {
    400: "malformed, refused or unfetchable reference",
    413: "too large (bytes, pixels, frames or duration)",
    415: "unsupported media type",
    422: "undecodable media",
}


class MediaError(Exception):
    """A media item could not be loaded.

    `status` is the HTTP status the front door answers with, `message` is safe to show the client,
    `code` is a short stable identifier (for metrics and for clients that branch on it).
    """

    def __init__(self, status: int, message: str, code: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"MediaError status must be one of {sorted(STATUSES)}, not {status}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the error intact when it crosses a process boundary (pickle).
        return (type(self), (self.status, self.message, self.code))

    def __repr__(self) -> str:
        return f"MediaError({self.status}, {self.message!r}, {self.code!r})"

    def to_dict(self) -> dict[str, str | int]:
        """The error as plain data, for a job's failure message or an OpenAI-style error body."""
        return {"status": self.status, "message": self.message, "code": self.code}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MediaError:
        return cls(int(data["status"]), str(data["message"]), str(data["code"]))


def describe(exc: BaseException) -> str:
    """A short, path-free reason for a decoder exception, fit for a client message."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(reason).split(";")[0].strip()[:120]


def bad_request(code: str, message: str) -> MediaError:
    return MediaError(400, message, code)


def too_large(code: str, message: str) -> MediaError:
    return MediaError(413, message, code)


def unsupported(code: str, message: str) -> MediaError:
    return MediaError(415, message, code)


def undecodable(code: str, message: str) -> MediaError:
    return MediaError(422, message, code)


def upstream(code: str, message: str) -> MediaError:
    """The media URL could not be fetched (the host, the network path or the server failed)."""
    return MediaError(400, f"the media URL could not be fetched: {message}", code)
