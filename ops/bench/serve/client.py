"""The load client: raw HTTP/1.1 over asyncio, responses parsed by httptools (llhttp, in C).

One request at a time per connection, kept alive unless asked otherwise. Per request it records the
send time, the arrival of every SSE chunk that carries content (time to first token, the gaps between
tokens), the end, and the completion tokens the server reports in `usage`. Both sides of a comparison
are measured by this same code, so tokens are counted the same way for both. A general client (httpx)
spends several times more CPU per request, and on a small machine the client shares the CPUs with the
system under test.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import httptools
import msgspec


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None  # a streamed chunk
    message: _Delta | None = None  # a whole completion


class _Usage(msgspec.Struct):
    completion_tokens: int = 0


class _Body(msgspec.Struct):
    """What the client reads of an SSE chunk or of a chat.completion body."""

    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: msgspec.Raw | None = None


_decode = msgspec.json.Decoder(_Body).decode


@dataclass(slots=True)
class Sample:
    """One request as the client saw it (perf_counter seconds)."""

    start: float
    end: float = 0.0
    first: float = 0.0  # arrival of the first content; 0 when none came
    last: float = 0.0
    gaps: list[float] = field(default_factory=list)  # between consecutive content chunks
    tokens: int = 0  # usage.completion_tokens
    pieces: int = 0  # chunks (or, unstreamed, bodies) that carried content
    error: str = ""

    @property
    def ttft(self) -> float:
        return self.first - self.start

    @property
    def e2e(self) -> float:
        return self.end - self.start


def build_request(host: str, port: int, path: str, body: bytes, keep_alive: bool = True) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: */*\r\nContent-Length: {len(body)}\r\n"
    )
    if not keep_alive:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


class _Recorder:
    """Turns the body of one response into the fields of its Sample."""

    def __init__(self, sample: Sample, stream: bool) -> None:
        self.sample = sample
        self.stream = stream
        self.done = False  # saw `data: [DONE]`
        self._buffer = b""
        self._parts: list[bytes] = []

    def feed(self, data: bytes, now: float) -> None:
        if not self.stream:
            self._parts.append(data)
            return
        self._buffer += data
        while (end := self._buffer.find(b"\n\n")) >= 0:
            event, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self._event(line[5:].strip(), now)

    def _event(self, payload: bytes, now: float) -> None:
        if payload == b"[DONE]":
            self.done = True
            return
        body = self._read(payload)
        if body is None:
            return
        for choice in body.choices:
            if choice.delta is not None and choice.delta.content:
                self._content(now)
        if body.usage is not None:
            self.sample.tokens = body.usage.completion_tokens

    def _content(self, now: float) -> None:
        sample = self.sample
        if sample.first:
            sample.gaps.append(now - sample.last)
        else:
            sample.first = now
        sample.last = now
        sample.pieces += 1

    def _read(self, payload: bytes) -> _Body | None:
        try:
            body = _decode(payload)
        except msgspec.DecodeError as exc:
            self.sample.error = self.sample.error or f"undecodable body: {exc}"
            return None
        if body.error is not None:
            self.sample.error = self.sample.error or f"error: {bytes(body.error)[:200].decode()}"
            return None
        return body

    def finish(self, status: int, now: float) -> None:
        sample = self.sample
        sample.end = now
        if status != 200:
            text = (self._buffer or b"".join(self._parts))[:200].decode(errors="replace")
            sample.error = f"HTTP {status}: {text}"
        elif self.stream:
            if not self.done:
                sample.error = sample.error or "the stream ended without [DONE]"
        else:
            body = self._read(b"".join(self._parts))
            if body is not None:
                content = body.choices[0].message if body.choices else None
                if content is not None and content.content:
                    sample.first = sample.last = now
                    sample.pieces = 1
                sample.tokens = body.usage.completion_tokens if body.usage else 0


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; `exchange()` sends a request and waits for the whole response."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[int] | None = None
        self._recorder: _Recorder | None = None
        self._now = 0.0
        self.closed = False
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, port)
        return connection

    async def exchange(self, request: bytes, recorder: _Recorder, limit_s: float) -> int:
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        self._recorder = recorder
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(limit_s, self._fail, TimeoutError(f"no full response in {limit_s:.0f}s"))
        self._transport.write(request)
        try:
            return int(await waiter)
        finally:
            timer.cancel()
            self._waiter = self._recorder = None

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self._now = time.perf_counter()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection closed: {exc or 'by the server'}"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    # httptools callbacks

    def on_body(self, body: bytes) -> None:
        if self._recorder is not None:
            self._recorder.feed(body, self._now)

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._parser.get_status_code())


class Client:
    """Requests to one server over one connection, reopened when closed (each time without keep-alive)."""

    def __init__(self, host: str, port: int, *, keep_alive: bool = True, timeout: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.keep_alive = keep_alive
        self.timeout = timeout
        self._connection: _Connection | None = None

    async def send(self, request: bytes, stream: bool, expect_tokens: int = 0) -> Sample:
        """Send one request (built by `build_request` with this client's keep-alive setting)."""
        sample = Sample(start=time.perf_counter())
        recorder = _Recorder(sample, stream)
        try:
            connection = self._connection
            if connection is None or connection.closed or not connection.reusable:
                connection = self._connection = await _Connection.open(self.host, self.port)
            status = await connection.exchange(request, recorder, self.timeout)
            recorder.finish(status, time.perf_counter())
        except (OSError, ConnectionError, TimeoutError) as exc:
            sample.end = time.perf_counter()
            sample.error = f"{type(exc).__name__}: {exc}"
        if not self.keep_alive or sample.error:
            self.close()
        if expect_tokens and not sample.error and sample.tokens != expect_tokens:
            sample.error = f"{sample.tokens} completion tokens, expected {expect_tokens}"
        return sample

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
