"""One running sglang request, read token by token from `async_generate(stream=True)`.

sglang's stream (non-incremental mode, its default) yields cumulative chunks: all output ids so
far, all logprobs so far, and a `finish_reason` dict on the last one; chunks queued together are
collapsed into the newest, so tokens are counted off the cumulative ids, never one per chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from queues.types import FinishReason

Chunk = dict[str, Any]


@dataclass(frozen=True)
class Token:
    token_id: int
    logprob: float | None
    top_logprobs: list[tuple[int, float]] | None
    finish_reason: FinishReason | None  # set on the last token of a finished request


class SglangAborted(RuntimeError):
    """sglang ended the request without finishing it (aborted, or an internal error)."""


@dataclass
class LiveRequest:
    rid: str
    stream: AsyncIterator[Chunk]
    pending: list[Token] = field(default_factory=list)  # read from sglang, not yet handed out
    seen: int = 0  # output ids read so far
    finished: bool = False  # sglang sent the last chunk
    cancelled: bool = False

    async def next_chunk(self) -> None:
        """Read sglang's next chunk into `pending` (raises StopAsyncIteration after the last)."""
        chunk = await anext(self.stream)
        self.pending.extend(self._tokens(chunk))

    async def tokens(self) -> AsyncIterator[Token]:
        """Every token not handed out yet, reading further chunks until the request finished."""
        while True:
            while self.pending:
                yield self.pending.pop(0)
            if self.finished:
                return
            try:
                await self.next_chunk()
            except StopAsyncIteration:
                raise SglangAborted(f"sglang request {self.rid} ended without a finish reason") from None

    async def close(self) -> None:
        """Stop reading; closing sglang's generator early makes sglang abort the request."""
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()

    def _tokens(self, chunk: Chunk) -> list[Token]:
        ids: list[int] = chunk["output_ids"]
        meta: dict[str, Any] = chunk.get("meta_info", {})
        reason = _finish_reason(meta.get("finish_reason"), self.cancelled)
        logprobs = meta.get("output_token_logprobs")
        tops = meta.get("output_top_logprobs")
        new = [
            Token(
                token_id=ids[i],
                logprob=float(logprobs[i][0]) if logprobs else None,
                top_logprobs=[(int(t[1]), float(t[0])) for t in tops[i]] if tops else None,
                finish_reason=None,
            )
            for i in range(self.seen, len(ids))
        ]
        self.seen = len(ids)
        if meta.get("finish_reason") is not None:
            self.finished = True
            if not new:  # a finish after the last token was read (e.g. an abort)
                raise SglangAborted(f"sglang ended request {self.rid} after its last token: {reason}")
            last = new[-1]
            new[-1] = Token(last.token_id, last.logprob, last.top_logprobs, reason)
        return new


def _finish_reason(raw: dict[str, Any] | None, cancelled: bool) -> FinishReason | None:
    if raw is None:
        return None
    kind = raw.get("type")
    if kind in ("stop", "length"):
        return "length" if kind == "length" else "stop"
    message = raw.get("message") or kind
    if kind == "abort" and raw.get("status_code") == 400 and not cancelled:
        raise ValueError(f"sglang rejected the request: {message}")
    raise SglangAborted(f"sglang aborted the request: {message}")
