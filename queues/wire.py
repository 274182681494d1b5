"""A lean Redis connection for the hot paths: pipelined commands, replies parsed as they arrive.

redis-py spends over 100 us of Python per command on its connection pool, health checks and parser
layers, more than the round trip itself on a small machine; a job costs a worker three or four
commands and the front door a few replies and pub/sub messages. The runtime's hot commands
(XREADGROUP, the enqueue/settle/publish scripts, pub/sub) go through a `Wire` instead; everything
else (set-up, leases, metrics) keeps using redis-py.

A `Wire` is an asyncio protocol on a connection that redis-py opened (so the URL, TLS, AUTH, HELLO 3
and database selection are redis-py's, exactly as for every other client): commands are packed by
hiredis and written at once, replies resolve their futures in order, and RESP3 pushes (pub/sub
messages, subscription confirmations) go to `on_push` without a task switch. A reply that does not
come within `timeout_s` of the previous one breaks the connection (a half-open TCP connection must
not hang its callers); a lost connection fails every waiting call with `ConnectionError`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Push = Callable[[list[Any]], None]
_NOT_ENOUGH = object()


class Wire(asyncio.Protocol):
    def __init__(self, timeout_s: float, on_push: Push | None = None, protocol: int = 3) -> None:
        self.timeout_s = timeout_s
        self.protocol = protocol  # RESP version: pushes exist only in 3
        self._on_push = on_push
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=ResponseError, notEnoughData=_NOT_ENOUGH
        )
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._writer: object = None
        self._loop = asyncio.get_running_loop()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._progress = 0.0  # loop time of the last reply, or of a send to an idle connection
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, client: aioredis.Redis, timeout_s: float, on_push: Push | None = None) -> Wire:
        """A new connection with `client`'s settings (its pool's), taken over from redis-py; the
        handshake too must end within `timeout_s`."""
        conn = client.connection_pool.make_connection()
        async with asyncio.timeout(timeout_s):
            await conn.connect()
        writer, leftover = take_over(conn)
        wire = cls(timeout_s, on_push, int(conn.protocol or 2))
        wire._writer = writer  # held: a collected StreamWriter closes its transport
        transport = writer.transport
        transport.set_protocol(wire)
        wire.connection_made(transport)
        if leftover:  # a push that arrived during the handshake
            wire.data_received(leftover)
        return wire

    # ---- commands --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._transport is None

    def send(self, *args: Any) -> asyncio.Future[Any]:
        """Write one command; the future gets its reply (an error reply as ResponseError)."""
        return self.send_many((args,))[0]

    def send_many(
        self, commands: Iterable[Sequence[Any]], *, push_only: Iterable[Sequence[Any]] = ()
    ) -> list[asyncio.Future[Any]]:
        """Write several commands at once (one write); their replies, in order. `push_only` commands
        go first and get no future: Redis answers them with pushes only ((UN)SUBSCRIBE in RESP3)."""
        transport = self._writable()
        futures = []
        packed = [hiredis.pack_command(tuple(args)) for args in push_only]
        for args in commands:
            packed.append(hiredis.pack_command(tuple(args)))
            future = self._loop.create_future()
            futures.append(future)
        if futures:
            self._expect(futures)
        transport.write(b"".join(packed))
        return futures

    async def call(self, *args: Any) -> Any:
        return await self.send(*args)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _writable(self) -> asyncio.Transport:
        if self._transport is None or self._transport.is_closing():
            raise RedisConnectionError("the connection to Redis is closed")
        return self._transport

    def _expect(self, futures: list[asyncio.Future[Any]]) -> None:
        if not self._waiting:
            self._progress = self._loop.time()
        self._waiting.extend(futures)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._progress + self.timeout_s, self._check)

    def _check(self) -> None:
        """Break the connection when the oldest call has had no reply for `timeout_s`."""
        self._watchdog = None
        if not self._waiting or self._transport is None:
            return
        due = self._progress + self.timeout_s
        if self._loop.time() >= due:
            self._abort(RedisTimeoutError(f"no reply from Redis within {self.timeout_s:.1f}s"))
        else:
            self._watchdog = self._loop.call_at(due, self._check)

    # ---- protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except InvalidResponse as exc:
                self._abort(RedisConnectionError(f"invalid reply from Redis: {exc}"))
                return
            if reply is _NOT_ENOUGH:
                return
            if type(reply) is hiredis.PushNotification:
                if self._on_push is not None:
                    self._on_push(reply)
                continue
            self._progress = self._loop.time()
            if not self._waiting:
                continue  # every command with a reply has a future: a stray reply is ignored
            future = self._waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, ResponseError):
                _set_exception(future, _error(reply))
            else:
                future.set_result(reply)

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def _abort(self, exc: Exception) -> None:
        transport = self._transport
        self._fail(exc)
        if transport is not None:
            transport.abort()

    def _fail(self, exc: Exception) -> None:
        self._transport = None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                _set_exception(future, exc)
        if not self._closed.done():
            self._closed.set_result(None)


def _set_exception(future: asyncio.Future[Any], exc: Exception) -> None:
    future.set_exception(exc)
    future.exception()  # retrieved: a caller that gave up waiting must not cause a warning


def _error(reply: ResponseError) -> ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return reply


def take_over(conn: Any) -> tuple[asyncio.StreamWriter, bytes]:
    """The stream writer of a connected redis-py connection, now ours (redis-py forgets it and will
    not close it when collected), and the bytes its reader had received but not parsed.

    The one place that uses private parts of redis-py (`AbstractConnection._reader` / `_writer`) and
    of asyncio (`StreamReader._buffer`); tests/integration/queues/test_internals.py checks them
    against the installed versions, and this fails loudly, not silently, where they changed."""
    reader, writer = getattr(conn, "_reader", None), getattr(conn, "_writer", None)
    if not isinstance(reader, asyncio.StreamReader) or not isinstance(writer, asyncio.StreamWriter):
        raise RuntimeError(
            f"redis-py {redis.__version__} keeps its streams elsewhere (AbstractConnection._reader/_writer):"
            " queues/wire.py needs updating"
        )
    buffered = getattr(reader, "_buffer", None)
    if not isinstance(buffered, bytearray):
        raise RuntimeError("asyncio.StreamReader._buffer is gone: queues/wire.py needs updating")
    conn._reader = conn._writer = None
    return writer, bytes(buffered)


class WireLink:
    """A `Wire` that is reopened on the next use after it broke (callers retry as they would with
    redis-py: they see ConnectionError or TimeoutError)."""

    def __init__(self, client: aioredis.Redis, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._wire: Wire | None = None
        self._opening: asyncio.Lock | None = None

    async def get(self) -> Wire:
        wire = self._wire
        if wire is not None and not wire.closed:
            return wire
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._wire is None or self._wire.closed:
                self._wire = await Wire.open(self._client, self._timeout_s)
            return self._wire

    async def call(self, *args: Any) -> Any:
        return await (await self.get()).send(*args)

    async def call_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Replies of several commands sent in one write; error replies are returned, not raised."""
        futures = (await self.get()).send_many(commands)
        results: list[Any] = []
        for future in futures:  # all done together, mostly: one suspension in all
            try:
                results.append(await future)
            except ResponseError as exc:
                results.append(exc)
        return results

    def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None
