"""Client errors (`queues.errors.ClientError`) as HTTP responses in OpenAI's shape:
`{"error": {"message", "type", "param", "code"}}` with the status, and Retry-After when set."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from app.types import ErrorBody, ErrorResponse
from queues.errors import ClientError


def error_body(error: ClientError) -> ErrorResponse:
    return ErrorResponse(
        ErrorBody(message=error.message, type=error.type, param=error.param, code=error.code)
    )


def error_response(error: ClientError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return Response(
        msgspec.json.encode(error_body(error)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )
