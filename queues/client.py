"""The front door's side of the queues: submit a request, read its events, cancel it.

`QueueClient.submit()` subscribes to the request's token channel *before* enqueueing its job (pub/sub
keeps nothing for a late subscriber) and returns a `Submission` whose events arrive in order. If the
caller stops early (client disconnect, deadline), the request is cancelled in every stage that holds
it. Refusals are `BacklogFull`, `NoWorkers` and `QueueUnavailable`; nothing is accepted then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from redis.exceptions import NoScriptError, RedisError

from queues.admission import WorkerWatch
from queues.cancel import cancel_request
from queues.channel import Output, TokenStream
from queues.config import RuntimeConfig
from queues.connection import check_server, connect
from queues.errors import UNREACHABLE, NoWorkers, QueueUnavailable
from queues.heartbeat import live_consumers
from queues.keys import Keys
from queues.messages import ErrorEvent, Job, ProgressEvent, Request
from queues.producer import Producer
from queues.pubsub import Subscriber
from queues.types import Stage

log = logging.getLogger(__name__)

_FAILED: tuple[type[Exception], ...] = (*UNREACHABLE, RedisError)  # unreachable, or an error reply


class QueueClient:
    def __init__(
        self, config: RuntimeConfig, *, stages: list[Stage] | None = None, admission_timeout_s: float = 30.0
    ) -> None:
        """`stages`: the ones whose live workers admission checks (none: no check)."""
        self.config = config
        self.keys = Keys(config.key_prefix)
        self.redis = connect(config)
        self.subscriber = Subscriber(self.redis, timeout_s=config.redis_timeout_s)
        self.producer = Producer(self.redis, self.keys, config.backlog_limit)
        self.admission_timeout_s = admission_timeout_s
        self.open: set[TokenStream] = set()  # the token streams of requests in flight
        interval = min(config.heartbeat_s, 1.0)
        self.workers = WorkerWatch(self.redis, self.keys, stages or [], interval) if stages else None

    async def start(self) -> None:
        await check_server(self.redis)
        await self.subscriber.start()
        if self.workers is not None:
            await self.workers.start()

    async def close(self) -> None:
        if self.workers is not None:
            await self.workers.close()
        await self.subscriber.close()
        await self.redis.aclose()

    async def submit(self, request: Request) -> Submission:
        """Subscribe to the request's channel, then enqueue its first job. Raises `BacklogFull`,
        `QueueUnavailable`, or `NoWorkers` when a stage of the route has no live worker (after
        `admission_timeout_s` when an autoscaler starts them)."""
        missing, scalable = await self._missing(request.route)
        if missing and not scalable:
            raise NoWorkers(missing)
        stream = TokenStream(
            self.subscriber,
            self.redis,
            self.keys,
            request.id,
            silence_s=self.config.silence_s,
            gap_s=self.config.gap_s,
            deadline=request.deadline,
        )
        job = Job(request=request, stage=request.route[0])
        try:
            # SUBSCRIBE and the enqueue on one connection, in that order: no event can be missed
            try:
                reply = await stream.open_with(*self.producer.command(job))
            except NoScriptError:  # Redis restarted: load the script; the subscription is live
                await self.producer.load_script()
                reply = await self.producer.enqueue(job)
            entry_id = self.producer.entry_id(job, reply)
        except BaseException as exc:
            with contextlib.suppress(*_FAILED):
                await stream.close()
            if isinstance(exc, _FAILED):
                raise _unavailable(exc) from None
            raise
        where = self.keys.stream(job.stage)
        stream.location = ProgressEvent(stage=job.stage, stream=where, entry_id=entry_id)
        submission = Submission(self, stream)
        self.open.add(stream)
        if missing:
            await self._await_workers(submission, missing)
        return submission

    def interrupt_all(self, event: ErrorEvent) -> None:
        """End every request in flight with `event` (the front door is stopping)."""
        for stream in list(self.open):
            stream.interrupt(event)

    async def ready(self, stages: list[Stage]) -> dict[str, object]:
        """Redis reachable, and every stage of the mode has at least one live worker."""
        report: dict[str, object] = {}
        try:
            await self.redis.ping()
        except UNREACHABLE as exc:
            return {"redis": f"unreachable: {exc}"}
        # the token channel too: without it no request can be accepted
        report["redis"] = "ok" if self.subscriber.connected else "pub/sub connection down"
        for stage in stages:
            report[stage] = len(await live_consumers(self.redis, self.keys, stage))
        return report

    async def backlog(self, stages: list[Stage]) -> dict[str, tuple[int, int]]:
        """Per stage: (entries in the stream, entries being worked on)."""
        pipe = self.redis.pipeline(transaction=False)
        for stage in stages:
            pipe.xlen(self.keys.stream(stage))
            pipe.xpending(self.keys.stream(stage), self.keys.group(stage))
        replies = await pipe.execute(raise_on_error=False)
        result: dict[str, tuple[int, int]] = {}
        for i, stage in enumerate(stages):
            length, pending = replies[2 * i], replies[2 * i + 1]
            waiting = int(length) if isinstance(length, int) else 0
            working = int(pending["pending"]) if isinstance(pending, dict) else 0
            result[stage] = (waiting, working)
        return result

    async def _missing(self, route: list[Stage]) -> tuple[list[Stage], bool]:
        """Stages of the route with no live worker, and whether an autoscaler starts all of them."""
        if self.workers is None:
            return [], False
        try:
            missing, view = await self.workers.missing(route)
        except _FAILED as exc:
            raise _unavailable(exc) from None
        return [stage for stage in route if stage in missing], all(
            stage in view.scalable for stage in missing
        )

    async def _await_workers(self, submission: Submission, missing: list[Stage]) -> None:
        """An autoscaler starts workers once it sees the job: wait for them, a bounded time."""
        assert self.workers is not None
        deadline = asyncio.get_running_loop().time() + self.admission_timeout_s
        while missing:
            if asyncio.get_running_loop().time() >= deadline:
                await submission.withdraw()
                raise NoWorkers(missing, waited_s=self.admission_timeout_s)
            await asyncio.sleep(0.25)
            with contextlib.suppress(*_FAILED):
                still = (await self.workers.refresh()).missing(missing)
                missing = [stage for stage in missing if stage in still]


def _unavailable(exc: BaseException) -> QueueUnavailable:
    log.warning("Redis unavailable: %s", exc)
    return QueueUnavailable(f"the job queue is unavailable: {exc}")


class Submission:
    """An accepted request: its events, in order, until the final one; `close()` always.

    Closing before the final event (client gone, deadline passed) cancels the request in every
    stage that holds it."""

    def __init__(self, client: QueueClient, stream: TokenStream) -> None:
        self._client = client
        self._stream = stream
        self._finished = False
        self._events: AsyncGenerator[Output, None] | None = None

    def events(self) -> AsyncIterator[Output]:
        if self._events is None:
            self._events = self._relay()
        return self._events

    async def _relay(self) -> AsyncGenerator[Output, None]:
        # Readers stop at the final event without exhausting the generators; closing them here, not
        # by the garbage collector, spares the event loop a thread-safe wake-up and a task each.
        async with contextlib.aclosing(self._stream.events()) as events:
            async for event in events:
                if isinstance(event, ErrorEvent) or event.finish_reason is not None:
                    self._finished = True
                yield event

    async def withdraw(self) -> None:
        """Take the job back before any worker ran it: its entry deleted, and cancelled in case a
        worker read it meanwhile."""
        where = self._stream.location
        if where is not None:
            with contextlib.suppress(*_FAILED):
                await self._client.redis.xdel(where.stream, where.entry_id)
        await self.close()

    async def close(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        client = self._client
        client.open.discard(self._stream)
        with contextlib.suppress(*_FAILED):
            await self._stream.close()
            if not self._finished:
                request_id = self._stream.request_id
                await cancel_request(client.redis, client.keys, request_id, client.config.cancel_ttl_s)
