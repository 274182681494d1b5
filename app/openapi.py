"""The OpenAPI 3.1 document of the HTTP API, built from the msgspec types the server decodes with."""

from __future__ import annotations

from typing import Any

import msgspec

from app.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ErrorResponse, ModelList


def _error_responses(*statuses: int) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        str(status): {"description": "error", "content": {"application/json": {"schema": ref}}}
        for status in statuses
    }


def build_openapi(title: str, version: str) -> dict[str, Any]:
    (request, completion, chunk, models, _), components = msgspec.json.schema_components(
        [ChatCompletionRequest, ChatCompletion, ChatCompletionChunk, ModelList, ErrorResponse],
        ref_template="#/components/schemas/{name}",
    )
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "summary": "Create a chat completion (streaming with `stream: true`)",
                    "security": security,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
                    "responses": {
                        "200": {
                            "description": "the completion, or server-sent chat.completion.chunk events",
                            "content": {
                                "application/json": {"schema": completion},
                                "text/event-stream": {"schema": chunk},
                            },
                        },
                        **_error_responses(400, 401, 404, 413, 415, 422, 429, 502, 503, 504),
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "The served model",
                    "security": security,
                    "responses": {
                        "200": {"description": "models", "content": {"application/json": {"schema": models}}},
                        **_error_responses(401),
                    },
                }
            },
            "/health": {
                "get": {"summary": "The process is alive", "responses": {"200": {"description": "alive"}}}
            },
            "/ready": {
                "get": {
                    "summary": "Redis reachable and every stage has a live worker",
                    "security": security,
                    "responses": {"200": {"description": "ready"}, **_error_responses(401, 503)},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "security": security,
                    "responses": {"200": {"description": "metrics"}, **_error_responses(401)},
                }
            },
        },
    }
