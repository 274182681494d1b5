"""Shape a request's events into OpenAI responses: SSE chunks, or one chat.completion body.

Also records the per-request latency metrics (TTFT, inter-token latency, end to end).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field

import msgspec

from app.access import Outcome
from app.errors import error_body
from app.metrics import FrontDoorMetrics
from app.types import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    LogprobOut,
    ResponseMessage,
    TopLogprobOut,
    UsageOut,
)
from queues.channel import Output
from queues.errors import ClientError
from queues.messages import ErrorEvent, TokenEvent, TokenLogprob

_json = msgspec.json.Encoder()


@dataclass
class Meta:
    """What every chunk of one response repeats, and the clocks of its metrics."""

    id: str
    model: str
    created: int
    decode_token: Callable[[int], str]  # a token's text, for logprobs
    metrics: FrontDoorMetrics
    return_token_ids: bool = False
    accepted: float = field(default_factory=time.monotonic)
    last_token: float = 0.0
    outcome: Outcome = field(default_factory=Outcome)  # filled in as the events arrive

    def observe(self, event: TokenEvent, stream: bool = True) -> None:
        """Record the latencies `event` completes; inter-token latency only for a stream (a
        non-streamed answer has its tokens arrive together, at the end)."""
        now = time.monotonic()
        if event.seq == 0:
            self.outcome.ttft_s = now - self.accepted
            self.metrics.ttft.observe(self.outcome.ttft_s)
        elif self.last_token and stream:
            self.metrics.itl.observe(now - self.last_token)
        if stream:
            for _ in event.token_ids[1:]:  # the other tokens of one event arrived together
                self.metrics.itl.observe(0.0)
        self.last_token = now
        if event.finish_reason is not None:
            self.metrics.e2e.observe(now - self.accepted)
            self.outcome.finish_reason = event.finish_reason
            self.outcome.timings = event.timings or {}
            if event.usage is not None:
                self.metrics.prompt_tokens.inc(event.usage.prompt_tokens)
                self.metrics.completion_tokens.inc(event.usage.completion_tokens)
                self.outcome.prompt_tokens = event.usage.prompt_tokens
                self.outcome.completion_tokens = event.usage.completion_tokens

    def failed(self, error: ClientError) -> None:
        self.outcome.status, self.outcome.code = error.status, error.code

    def logprobs(self, items: list[TokenLogprob] | None) -> ChoiceLogprobs | None:
        if items is None:
            return None
        return ChoiceLogprobs(content=[self._logprob(item) for item in items])

    def _logprob(self, item: TokenLogprob) -> LogprobOut:
        text = self.decode_token(item.token_id)
        top = []
        for alt in item.top:
            alt_text = self.decode_token(alt.token_id)
            top.append(TopLogprobOut(token=alt_text, logprob=alt.logprob, bytes=list(alt_text.encode())))
        return LogprobOut(token=text, logprob=item.logprob, bytes=list(text.encode()), top_logprobs=top)


def _usage(event: TokenEvent) -> UsageOut | None:
    if event.usage is None:
        return None
    prompt, completion = event.usage.prompt_tokens, event.usage.completion_tokens
    return UsageOut(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


async def collect(events: AsyncIterator[Output], meta: Meta) -> ChatCompletion:
    """The whole answer at once; an error event becomes the error response."""
    text: list[str] = []
    token_ids: list[int] = []
    logprobs: list[TokenLogprob] | None = None
    async for event in events:
        if isinstance(event, ErrorEvent):
            raise event.error()
        meta.observe(event, stream=False)
        text.append(event.text)
        token_ids.extend(event.token_ids)
        if event.logprobs is not None:
            logprobs = (logprobs or []) + event.logprobs
        if event.finish_reason is not None:
            usage = _usage(event) or UsageOut(0, 0, 0)
            choice = Choice(
                index=0,
                message=ResponseMessage(role="assistant", content="".join(text)),
                finish_reason=event.finish_reason,
                logprobs=meta.logprobs(logprobs),
                token_ids=token_ids if meta.return_token_ids else msgspec.UNSET,
            )
            return ChatCompletion(
                id=meta.id,
                created=meta.created,
                model=meta.model,
                choices=[choice],
                usage=usage,
                timings=event.timings,
            )
    raise ClientError(502, "the token stream ended without a final event", code="stream_lost")


async def sse(events: AsyncIterator[Output], meta: Meta, include_usage: bool) -> AsyncGenerator[bytes, None]:
    """Server-sent events: a role chunk, one chunk per token event, optionally usage, then [DONE].

    Frames that are ready together leave in one write: the role chunk with the first tokens, the
    last tokens with the usage chunk and [DONE]."""
    pending = _frame(_chunk(meta, Delta(role="assistant", content="")))
    async for event in events:
        if isinstance(event, ErrorEvent):
            error = event.error()
            meta.failed(error)
            pending += b"data: " + _json.encode(error_body(error)) + b"\n\n"
            break
        meta.observe(event)
        chunk = _chunk(meta, Delta(content=event.text), event.finish_reason, meta.logprobs(event.logprobs))
        if meta.return_token_ids:
            chunk.choices[0].token_ids = event.token_ids
        if event.finish_reason is None:
            yield pending + _frame(chunk)
            pending = b""
            continue
        chunk.timings = event.timings
        pending += _frame(chunk)
        if include_usage:
            pending += _frame(ChatCompletionChunk(meta.id, meta.created, meta.model, [], usage=_usage(event)))
        break
    yield pending + b"data: [DONE]\n\n"


def _chunk(
    meta: Meta, delta: Delta, finish_reason: str | None = None, logprobs: ChoiceLogprobs | None = None
) -> ChatCompletionChunk:
    choice = ChunkChoice(index=0, delta=delta, finish_reason=finish_reason, logprobs=logprobs)
    return ChatCompletionChunk(id=meta.id, created=meta.created, model=meta.model, choices=[choice])


def _frame(chunk: ChatCompletionChunk) -> bytes:
    return b"data: " + _json.encode(chunk) + b"\n\n"
