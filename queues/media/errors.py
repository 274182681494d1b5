"""Media failures, as the client's `ClientError`s with the statuses media can fail with.

Every failure in media ingestion (bad reference, refused address, oversized or undecodable
payload, upstream failure or timeout) raises a `ClientError` made here; nothing else escapes
`MediaLoader.load`.
The front door returns `status` and `message` to the client as they are, so messages never
contain internal details (stack traces, resolved addresses of refused hosts, local paths beyond
the one the client sent).
"""

from __future__ import annotations

from queues.errors import ClientError

# status -> what it means; the only statuses a media error carries. A URL that cannot be fetched (DNS,
# connection, TLS, an HTTP error status, a timeout, a redirect loop) is the client's to fix, so it is
# a 400 too: a 5xx would tell clients (the OpenAI SDK retries 5xx three times) that we failed.
STATUSES: dict[int, str] = {
    400: "malformed, refused or unfetchable reference",
    413: "too large (bytes, pixels, frames or duration)",
    415: "unsupported media type",
    422: "undecodable media",
}


def media_error(status: int, message: str, code: str) -> ClientError:
    """A media failure: one of the `STATUSES`, its message safe to show the client."""
    if status not in STATUSES:
        raise ValueError(f"a media error's status must be one of {sorted(STATUSES)}, not {status}")
    return ClientError(status, message, code=code)


def describe(exc: BaseException) -> str:
    """A short, path-free reason for a decoder exception, fit for a client message."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(reason).split(";")[0].strip()[:120]


def bad_request(code: str, message: str) -> ClientError:
    return media_error(400, message, code)


def too_large(code: str, message: str) -> ClientError:
    return media_error(413, message, code)


def unsupported(code: str, message: str) -> ClientError:
    return media_error(415, message, code)


def undecodable(code: str, message: str) -> ClientError:
    return media_error(422, message, code)


def upstream(code: str, message: str) -> ClientError:
    """The media URL could not be fetched (the host, the network path or the server failed)."""
    return media_error(400, f"the media URL could not be fetched: {message}", code)
