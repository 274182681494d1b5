"""The token channel: output events of one request, from the workers to the front door.

Workers publish `TokenEvent`s (numbered by `seq`), a final `ErrorEvent` when the request fails,
and the runtime publishes a `ProgressEvent` each time the job moves to another stream entry.
The front door subscribes *before* it enqueues the job and reads the events in `seq` order:
duplicates (a re-run after a crash repeats the same tokens) are dropped, out-of-order events wait
for the missing ones for a short while (a gap that does not fill is an error), and a silent
channel is probed: if the job's stream entry still exists the job is queued or running, else it
is lost and the client gets an error instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queues.batching import Batcher
from queues.keys import Keys
from queues.messages import ErrorEvent, Event, ProgressEvent, TokenEvent, decode_event, encode_event
from queues.pubsub import Subscriber
from queues.scripts import Commands, publish_script

Output = TokenEvent | ErrorEvent
log = logging.getLogger(__name__)


class TokenPublisher:
    """Publishes events; concurrent publishes share one pipelined round trip."""

    def __init__(self, client: Commands, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._batcher: Batcher[tuple[str, bytes], int] = Batcher(self._flush)

    async def publish(self, request_id: str, event: Event) -> int:
        """Returns how many subscribers received it (0: the front door no longer listens)."""
        return await self._batcher.submit((self._keys.tokens(request_id), encode_event(event)))

    async def _flush(self, items: list[tuple[str, bytes]]) -> list[int]:
        args: list[str | bytes] = []
        for channel, data in items:
            args += [channel, data]
        return [int(n) for n in await publish_script(self._client, [], args)]

    async def close(self) -> None:
        await self._batcher.close()


class TokenStream:
    """One request's events, in order, each exactly once; ends after the final or an error event."""

    def __init__(
        self,
        subscriber: Subscriber,
        client: aioredis.Redis,
        keys: Keys,
        request_id: str,
        *,
        silence_s: float,
        gap_s: float,
        deadline: float = math.inf,
    ) -> None:
        self.request_id = request_id
        self.deadline = deadline  # unix seconds: past it the stream ends with a 504 error
        self.location: ProgressEvent | None = None  # where the job last was; set by the front door first
        self._subscriber = subscriber
        self._client = client
        self._channel = keys.tokens(request_id)
        self._silence_s = silence_s
        self._gap_s = gap_s
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def __aenter__(self) -> TokenStream:
        await self._subscriber.subscribe(self._channel, self._inbox.put_nowait)
        return self

    async def open_with(self, *command: Any) -> Any:
        """Subscribe and, on the same connection right after, run `command` (e.g. the enqueue of the
        job whose events come here); returns its reply. Use instead of `async with`, then `close()`.

        No clock of its own: a connection whose replies stop for the Redis timeout is broken by its
        watchdog, which fails this call. A per-call timeout also fired when the reply had come but
        this process was too busy to read it in time (a burst on a loaded machine): a 503 for a job
        that was in fact enqueued."""
        return await self._subscriber.subscribe_then(self._channel, self._inbox.put_nowait, *command)

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def interrupt(self, event: ErrorEvent) -> None:
        """End the stream with `event` after the events already received (e.g. a front door stopping)."""
        self._inbox.put_nowait(encode_event(event))

    async def close(self) -> None:
        await self._subscriber.unsubscribe(self._channel)

    async def events(self) -> AsyncGenerator[Output, None]:
        """Token events in token order, each token once (a re-run's repeats are trimmed away)."""
        loop = asyncio.get_running_loop()
        expected = 0  # index of the next token the client has not seen
        early: dict[int, TokenEvent] = {}  # events that start past `expected`, by first token
        gap_deadline = 0.0
        while True:
            if self._inbox.empty():
                timeout = gap_deadline - loop.time() if early else self._silence_s
                left = self.deadline - time.time()
                try:
                    async with asyncio.timeout(max(min(timeout, left), 0.0)):
                        raw = await self._inbox.get()
                except TimeoutError:
                    if time.time() >= self.deadline:
                        yield ErrorEvent(
                            message="the request did not finish before its deadline",
                            status=504,
                            type="timeout_error",
                            code="deadline_exceeded",
                        )
                        return
                    if early:
                        yield _stream_error(f"token events {expected}..{min(early) - 1} never arrived")
                        return
                    if await self._job_alive():
                        continue
                    yield _stream_error("the job was lost (its worker or Redis failed) with no result")
                    return
            else:
                raw = self._inbox.get_nowait()
            event = decode_event(raw)
            if isinstance(event, ProgressEvent):
                self.location = event
                continue
            if isinstance(event, ErrorEvent):
                yield event
                return
            if event.end <= expected and event.finish_reason is None:
                continue  # every token already delivered (a re-run's repeat)
            if not early:
                gap_deadline = loop.time() + self._gap_s
            if event.seq > expected:
                early[event.seq] = event
                continue
            ready: TokenEvent | None = event
            while ready is not None:
                if ready.end > expected or (ready.finish_reason is not None and ready.end == expected):
                    trimmed = ready.after(expected)
                    expected = trimmed.end
                    yield trimmed
                    if trimmed.finish_reason is not None:
                        return
                start = min((seq for seq in early if seq <= expected), default=None)
                ready = early.pop(start) if start is not None else None

    async def _job_alive(self) -> bool:
        """The job's current stream entry still exists: it is queued, running, or pending reclaim.
        A probe that fails says nothing: a loaded machine times it out, and a Redis that is really
        gone ends the request at its deadline, or as lost once Redis answers again without the entry."""
        if self.location is None:
            return False
        try:
            where = self.location
            entries = await self._client.xrange(where.stream, where.entry_id, where.entry_id)
        except (RedisError, OSError) as exc:
            log.info("request %s: probe of its job failed (%s); still waiting", self.request_id, exc)
            return True
        return bool(entries)


def _stream_error(message: str) -> ErrorEvent:
    return ErrorEvent(message=message, status=502, type="server_error", code="stream_lost")
