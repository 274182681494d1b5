"""One shared pub/sub connection per process, with confirmed subscriptions and reconnection.

`await subscriber.subscribe(channel, callback)` returns only once Redis has confirmed the
subscription, so a job enqueued afterwards cannot publish before anyone listens (pub/sub keeps
nothing for late subscribers). If the connection drops, the subscriber reconnects with backoff
and subscribes again to every channel it had; callers learn of the outage through `on_reconnect`
(messages published meanwhile are lost; the token stream detects that from its sequence numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from queues.errors import UNREACHABLE
from queues.stopping import cancel_and_wait
from queues.wire import Wire

log = logging.getLogger(__name__)

Callback = Callable[[bytes], None]


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
        self._wire: Wire | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outbox: list[tuple[bytes, bytes]] = []

    async def start(self) -> None:
        """Connect (raising if Redis is unreachable now) and start the task that keeps it connected."""
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="pubsub-keeper")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._wire is not None:
            self._wire.close()
        self._connected.clear()
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
        wire = self._wire
        if not self._connected.is_set() or wire is None or wire.closed:
            raise ConnectionError("pub/sub connection to Redis is down")
        name = channel.encode()
        self._callbacks[name] = callback
        [reply] = wire.send_many([command], push_only=[(b"SUBSCRIBE", name)])
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
        wire = self._wire
        if wire is None or wire.closed or not self._connected.is_set():
            return  # a reconnect subscribes to every channel anyway
        commands: list[list[bytes]] = []
        for command, name in outbox:
            if commands and commands[-1][0] == command:
                commands[-1].append(name)
            else:
                commands.append([command, name])
        wire.send_many([], push_only=commands)

    async def _connect(self) -> None:
        wire = await Wire.open(self._client, self._timeout, on_push=self._pushed)
        if wire.protocol != 3:
            wire.close()
            raise RedisConnectionError("the token channel needs RESP3: remove protocol=2 from REDIS_URL")
        if self._callbacks:
            wire.send_many([], push_only=[(b"SUBSCRIBE", *self._callbacks)])
        self._wire = wire
        self._connected.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            assert self._wire is not None
            pinger = asyncio.create_task(self._ping_loop(self._wire))
            try:
                await self._wire.wait_closed()
                log.warning("pub/sub connection lost")
            finally:
                pinger.cancel()
                self._connected.clear()
                self._fail_confirmations(ConnectionError("pub/sub connection lost"))
            while True:
                await asyncio.sleep(backoff)
                try:
                    await self._connect()
                except UNREACHABLE as exc:
                    backoff = min(backoff * 2, 1.0)
                    log.debug("pub/sub reconnect failed: %s", exc)
                    continue
                backoff = 0.1
                log.info("pub/sub reconnected, %d channels resubscribed", len(self._callbacks))
                if self._on_reconnect is not None:
                    await self._on_reconnect()
                break

    async def _ping_loop(self, wire: Wire) -> None:
        """A connection that leaves a PING unanswered past the timeout is dead (half-open TCP): the
        wire breaks it, and `_run` reconnects."""
        while not wire.closed:
            await asyncio.sleep(self._ping_s)
            with contextlib.suppress(*UNREACHABLE):
                wire.send("PING")

    def _pushed(self, push: list[Any]) -> None:
        kind = push[0]
        if kind == b"message":
            callback = self._callbacks.get(push[1])
            if callback is not None:
                try:
                    callback(push[2])
                except Exception:  # one bad callback must not break everyone's connection
                    log.exception("pub/sub callback for %r failed", push[1])
        elif kind == b"subscribe":
            waiting = self._confirmations.get(push[1])
            if waiting:
                future = waiting.pop(0)
                if not waiting:
                    del self._confirmations[push[1]]
                if not future.done():
                    future.set_result(None)

    def _fail_confirmations(self, exc: Exception) -> None:
        for waiting in self._confirmations.values():
            for future in waiting:
                if not future.done():
                    future.set_exception(exc)
        self._confirmations.clear()
