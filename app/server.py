"""The HTTP front door: routes, authentication, body limits, and the request path.

POST /v1/chat/completions renders the chat template, tokenizes (one placeholder per media item),
resolves sampling, subscribes to the request's token channel, enqueues the job on the first stage
of the mode's route, and relays the events as SSE or one JSON body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.access import CLIENT_LEFT, Outcome, finish
from app.completions import Meta, collect, sse
from app.convert import convert
from app.drain import SHUTTING_DOWN, on_stop_signals
from app.errors import error_response
from app.gateway import Gateway
from app.metrics import FrontDoorMetrics
from app.openapi import build_openapi
from app.prompts import PromptRenderer
from app.responses import EventStreamResponse, unless_disconnected
from app.sampling import resolve_sampling
from app.settings import AppSettings
from app.types import ChatCompletionRequest, ModelCard, ModelList
from queues.checkpoint import Checkpoint
from queues.config import RuntimeConfig
from queues.errors import ClientError
from queues.logs import request_id
from queues.media.config import MediaConfig
from queues.messages import Request
from queues.types import route, stages

VERSION = "0.1.0"
log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(ChatCompletionRequest)


class FrontDoor:
    """The state behind the routes: settings, the model's tokenizer/template, the queue gateway."""

    def __init__(self, settings: AppSettings, runtime: RuntimeConfig, media: MediaConfig) -> None:
        self.settings = settings
        self.media = media
        self.card = Checkpoint.load(settings.model)
        self.prompts = PromptRenderer(self.card, settings.prompt_cache_entries)
        self.gateway = Gateway(
            runtime,
            settings.retry_after_s,
            stages=stages(settings.mode),
            admission_timeout_s=settings.admission_timeout_s,
        )
        self.metrics = FrontDoorMetrics()
        self.created = int(time.time())
        self.max_prompt = settings.max_prompt_tokens or self.card.max_context
        self.model_id = settings.model_id
        self.instance = settings.instance_id or uuid.uuid4().hex[:12]
        self.drain_s = runtime.grace_s
        self._drain: asyncio.TimerHandle | None = None

    def drain(self) -> None:
        """The process is stopping (app/drain.py): requests in flight get `drain_s` to end on their
        own, then each still open ends with a `server_shutting_down` error."""
        if self._drain is None:
            log.info("stopping: %d requests in flight get %g s", len(self.gateway.open), self.drain_s)
            loop = asyncio.get_running_loop()
            self._drain = loop.call_later(self.drain_s, self.gateway.interrupt_all, SHUTTING_DOWN)

    # ---- routes ----------------------------------------------------------------------------

    async def chat(self, http: HTTPRequest) -> Response:
        started = time.monotonic()
        try:
            return await self._chat(http, started)
        except ClientError as exc:  # refused, or a non-streamed request that failed
            outcome = Outcome(status=exc.status, code=exc.code)
            finish(self.metrics, self.settings.mode, outcome, time.monotonic() - started)
            return error_response(exc)

    def _finish(self, meta: Meta, started: float) -> None:
        """A served request ended: a stream cut short without a final event is a client that left
        (or a front door stopping); an error event has already set the outcome's status."""
        outcome = meta.outcome
        if outcome.status == 200 and outcome.finish_reason is None:
            outcome.status, outcome.code = CLIENT_LEFT, "client_disconnected"
        finish(self.metrics, self.settings.mode, outcome, time.monotonic() - started)

    async def _chat(self, http: HTTPRequest, started: float) -> Response:
        body = _decode(await _read_body(http, self.settings.max_body_bytes))
        if body.model is not None and body.model != self.model_id:
            raise ClientError(
                404,
                f"the model `{body.model}` does not exist; this server serves `{self.model_id}`",
                param="model",
                code="model_not_found",
            )
        converted = convert(body, self.settings, self.media, self.card.modalities)
        try:
            prompt_ids = self.prompts.render(converted.messages)
        except ValueError as exc:
            message = f"the messages could not be rendered: {exc}"
            raise ClientError(400, message, param="messages", code="invalid_messages") from None
        if len(prompt_ids) > self.max_prompt:
            raise ClientError(
                400,
                f"the prompt has {len(prompt_ids)} tokens; the limit is {self.max_prompt}",
                param="messages",
                code="context_length_exceeded",
            )
        sampling = resolve_sampling(body, self.card.generation, self.settings, self.card.vocab_size)
        now = time.time()
        request = Request(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            model=self.model_id,
            prompt_ids=prompt_ids,
            media=converted.media,
            sampling=sampling,
            route=route(self.settings.mode, bool(converted.media)),
            deadline=now + self.settings.request_timeout_s,
            created=now,
            stream=body.stream,
        )
        request_id.set(request.id)
        meta = Meta(
            request.id,
            self.model_id,
            int(now),
            self.card.decode_token,
            self.metrics,
            return_token_ids=bool(body.return_token_ids),
        )
        meta.outcome.stream = body.stream
        submission = await self.gateway.accept(request)
        self.metrics.in_flight.inc()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)

            async def stream() -> AsyncGenerator[bytes, None]:
                try:
                    async with contextlib.aclosing(sse(submission.events(), meta, include_usage)) as frames:
                        async for frame in frames:
                            yield frame
                finally:
                    self.metrics.in_flight.dec()
                    self._finish(meta, started)
                    await submission.close()

            headers = {"Cache-Control": "no-cache"}
            return EventStreamResponse(stream(), headers=headers)
        try:
            completion = await unless_disconnected(http.receive, collect(submission.events(), meta))
        finally:
            self.metrics.in_flight.dec()
            await submission.close()
        self._finish(meta, started)
        return Response(msgspec.json.encode(completion), media_type="application/json")

    async def models(self, http: HTTPRequest) -> Response:
        cards = ModelList(data=[ModelCard(id=self.model_id, created=self.created)])
        return Response(msgspec.json.encode(cards), media_type="application/json")

    async def health(self, http: HTTPRequest) -> Response:
        return JSONResponse({"status": "ok", "instance": self.instance})

    async def ready(self, http: HTTPRequest) -> Response:
        report = await self.gateway.ready(stages(self.settings.mode))
        ok = report.get("redis") == "ok" and all(
            isinstance(count, int) and count > 0 for key, count in report.items() if key != "redis"
        )
        return JSONResponse({"ready": ok, **report}, status_code=200 if ok else 503)

    async def metrics_text(self, http: HTTPRequest) -> Response:
        with contextlib.suppress(Exception):  # the metrics page must answer even without Redis
            backlog = await self.gateway.backlog(stages(self.settings.mode))
            for stage, (waiting, working) in backlog.items():
                self.metrics.queue_depth.labels(stage).set(waiting)
                self.metrics.queue_pending.labels(stage).set(working)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, http: HTTPRequest) -> Response:
        return JSONResponse(build_openapi("triptych", VERSION))


def _decode(raw: bytes) -> ChatCompletionRequest:
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = text.rsplit("- at `", 1)[-1].rstrip("`") if "- at `" in text else None
        if "unknown field" in text:
            field = text.split("`")[1]
            raise ClientError(400, f"unknown field `{field}`", param=field, code="unknown_field") from None
        raise ClientError(400, f"invalid request: {text}", param=param, code="invalid_value") from None
    except msgspec.DecodeError as exc:
        raise ClientError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise ClientError(400, "the body's JSON is nested too deeply", code="invalid_json") from None


async def _read_body(http: HTTPRequest, limit: int) -> bytes:
    declared = http.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(413, f"the request body is larger than {limit} bytes", code="body_too_large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in http.stream():
        size += len(chunk)
        if size > limit:
            raise ClientError(413, f"the request body is larger than {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


class AuthMiddleware:
    """`Authorization: Bearer <key>` on every route but /health, when API keys are configured."""

    def __init__(self, app: ASGIApp, keys: list[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        valid = any(hmac.compare_digest(token.strip(), key) for key in self.keys)
        if scheme.lower() != b"bearer" or not valid:
            message = "a valid API key is required (Authorization: Bearer <key>)"
            await error_response(ClientError(401, message, code="invalid_api_key"))(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _http_error(http: HTTPRequest, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(ClientError(exc.status_code, str(exc.detail), code=code))


async def _server_error(http: HTTPRequest, exc: Exception) -> Response:
    return error_response(
        ClientError(500, "internal server error", type="server_error", code="internal_error")
    )


def create_app(settings: AppSettings, runtime: RuntimeConfig, media: MediaConfig) -> Starlette:
    door = FrontDoor(settings, runtime, media)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await door.gateway.start()
        restore = on_stop_signals(door.drain)
        try:
            yield
        finally:
            restore()
            await door.gateway.close()

    routes = [
        Route("/v1/chat/completions", door.chat, methods=["POST"]),
        Route("/v1/models", door.models, methods=["GET"]),
        Route("/health", door.health, methods=["GET"]),
        Route("/ready", door.ready, methods=["GET"]),
        Route("/metrics", door.metrics_text, methods=["GET"]),
        Route("/openapi.json", door.openapi, methods=["GET"]),
    ]
    handlers: dict[Any, Callable[[HTTPRequest, Exception], Awaitable[Response]]] = {
        HTTPException: _http_error,
        Exception: _server_error,
    }
    middleware = [Middleware(AuthMiddleware, keys=settings.api_keys)] if settings.api_keys else []
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers, middleware=middleware)
    app.state.door = door
    return app
