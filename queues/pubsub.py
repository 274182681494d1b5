"""One shared pub/sub connection per process, with confirmed subscriptions and reconnection.

`await subscriber.subscribe(channel, callback)` returns only once Redis has confirmed the
subscription, so a job enqueued afterwards cannot publish before anyone listens (pub/sub keeps
nothing for late subscribers). If the connection drops, the subscriber reconnects with backoff
and subscribes again to every channel it had; callers learn of the outage through `on_reconnect`
(messages published meanwhile are lost; the token stream detects that from its sequence numbers).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

Callback = Callable[[bytes], None]
_PUSH_KINDS = frozenset(
    {b"message", b"subscribe", b"unsubscribe", b"pmessage", b"psubscribe", b"punsubscribe"}
)
_DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.IncompleteReadError)


class Subscriber:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        timeout_s: float = 2.0,
        ping_s: float = 5.0,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._client = client
        self._timeout = timeout_s
        self._ping_s = ping_s
        self._on_reconnect = on_reconnect
        self._callbacks: dict[bytes, Callback] = {}
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._conn: Connection | None = None
        self._connected = asyncio.Event()
        self._last_seen = 0.0
        self._task: asyncio.Task[None] | None = None
        self._replies: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._outbox: list[tuple[bytes, bytes]] = []

    async def start(self) -> None:
        """Connect (raising if Redis is unreachable now) and start the reader task."""
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="pubsub-reader")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            await self._conn.disconnect()
        self._fail_confirmations(ConnectionError("subscriber closed"))

    @property
    def timeout_s(self) -> float:
        return self._timeout

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """Deliver every message of `channel` to `callback`; returns once Redis confirmed."""
        name = channel.encode()
        if not self._connected.is_set():
            raise ConnectionError("pub/sub connection to Redis is down")
        self._callbacks[name] = callback
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(name, []).append(future)
        try:
            self._queue_command(b"SUBSCRIBE", name)
            async with asyncio.timeout(self._timeout):
                await future
        except BaseException:
            self._callbacks.pop(name, None)
            waiting = self._confirmations.get(name, [])
            if future in waiting:
                waiting.remove(future)
            raise

    def subscribe_then(self, channel: str, callback: Callback, *command: Any) -> asyncio.Future[Any]:
        """Subscribe to `channel` and run `command` right after it on the same connection; returns the
        command's reply. Redis executes the two in order, so whatever the command sets off (a job
        whose tokens come back on `channel`) finds the subscription live, without waiting for the
        confirmation first (RESP3 allows commands on a subscribed connection)."""
        if not self._connected.is_set() or self._conn is None or self._conn._writer is None:
            raise ConnectionError("pub/sub connection to Redis is down")
        name = channel.encode()
        self._callbacks[name] = callback
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies.append(reply)
        self._conn._writer.writelines(self._conn.pack_commands([(b"SUBSCRIBE", name), command]))
        return reply

    async def unsubscribe(self, channel: str) -> None:
        name = channel.encode()
        if self._callbacks.pop(name, None) is None:
            return
        if self._connected.is_set():
            self._queue_command(b"UNSUBSCRIBE", name)

    def _queue_command(self, command: bytes, name: bytes) -> None:
        """(UN)SUBSCRIBEs of concurrent requests leave together: one write, one command per run."""
        self._outbox.append((command, name))
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._send_outbox)

    def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        if self._conn is None or not self._connected.is_set():
            return  # a reconnect subscribes to every channel anyway
        commands: list[list[bytes]] = []
        for command, name in outbox:
            if commands and commands[-1][0] == command:
                commands[-1].append(name)
            else:
                commands.append([command, name])
        writer = self._conn._writer
        if writer is not None:  # straight to the transport: no task, no extra turn of the loop
            writer.writelines(self._conn.pack_commands([tuple(command) for command in commands]))

    async def _connect(self) -> None:
        conn = self._client.connection_pool.make_connection()
        await asyncio.wait_for(conn.connect(), self._timeout)
        if self._callbacks:
            await conn.send_command("SUBSCRIBE", *self._callbacks, check_health=False)
        self._conn = conn
        self._last_seen = asyncio.get_running_loop().time()
        self._connected.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            pinger = asyncio.create_task(self._ping_loop())
            try:
                await self._read_loop()
            except _DISCONNECTS as exc:
                log.warning("pub/sub connection lost: %s", exc)
            except Exception:  # never leave the process without its subscriptions
                log.exception("pub/sub reader failed; reconnecting")
            finally:
                pinger.cancel()
                self._connected.clear()
                self._fail_confirmations(ConnectionError("pub/sub connection lost"))
                if self._conn is not None:
                    await self._conn.disconnect()
            while True:
                await asyncio.sleep(backoff)
                try:
                    await self._connect()
                except (*_DISCONNECTS, TimeoutError) as exc:
                    backoff = min(backoff * 2, 1.0)
                    log.debug("pub/sub reconnect failed: %s", exc)
                    continue
                backoff = 0.1
                log.info("pub/sub reconnected, %d channels resubscribed", len(self._callbacks))
                if self._on_reconnect is not None:
                    await self._on_reconnect()
                break

    async def _read_loop(self) -> None:
        assert self._conn is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                reply = await self._conn.read_response(
                    timeout=math.inf, disconnect_on_error=False, push_request=True
                )
            except ResponseError as exc:  # an error reply to a command, not a broken connection
                self._reply(exc)
                continue
            self._last_seen = loop.time()
            if not isinstance(reply, list) or not reply or reply[0] not in _PUSH_KINDS:
                self._reply(reply)  # the reply to a command of subscribe_then() or to a PING
                continue
            kind = reply[0]
            if kind == b"message":
                callback = self._callbacks.get(reply[1])
                if callback is not None:
                    callback(reply[2])
            elif kind == b"subscribe":
                waiting = self._confirmations.get(reply[1])
                if waiting:
                    future = waiting.pop(0)
                    if not waiting:
                        del self._confirmations[reply[1]]
                    if not future.done():
                        future.set_result(None)

    async def _ping_loop(self) -> None:
        """A connection that stays silent past the timeout after a PING is dead (half-open TCP)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_s)
            if self._conn is None:
                return
            sent = loop.time()
            self._replies.append(loop.create_future())  # its PONG is a reply like any other
            await self._conn.send_command("PING", check_health=False)
            await asyncio.sleep(self._timeout)
            if self._last_seen < sent:
                log.warning("pub/sub connection unresponsive, reconnecting")
                await self._conn.disconnect()
                return

    def _reply(self, reply: Any) -> None:
        if not self._replies:
            return
        future = self._replies.popleft()
        if future.done():
            return
        if isinstance(reply, Exception):
            future.set_exception(reply)
        else:
            future.set_result(reply)

    def _fail_confirmations(self, exc: Exception) -> None:
        for waiting in self._confirmations.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(exc)
        self._confirmations.clear()
        while self._replies:
            future = self._replies.popleft()
            if not future.done():
                future.set_exception(exc)

