"""API errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with its status."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from app.types import ErrorBody, ErrorResponse

_TYPES = {
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


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,  # required: clients branch on it, metrics count by it
        param: str | None = None,
        type: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error")
        self.retry_after = retry_after

    def body(self) -> ErrorResponse:
        body = ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code)
        return ErrorResponse(body)

    def response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return Response(
            msgspec.json.encode(self.body()),
            status_code=self.status,
            media_type="application/json",
            headers=headers,
        )
