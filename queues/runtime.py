"""The consumer-group runtime every stage worker runs: `run → poll → start → process → settle`.

One implementation of reading, acknowledging, retrying, reclaiming, dead-lettering, lease renewal,
cancellation and graceful shutdown; a stage is only a `Handler` that turns a job into the next
stage's job (or None when the request is finished).

Guarantees, all at-least-once:
- the group is created at id 0 (jobs enqueued before the first worker starts are not skipped) and
  recreated when Redis lost it (NOGROUP), without a restart;
- a worker reads at most as many entries as it has free slots, and first re-reads its own
  pending entries (a restarted worker with the same consumer name picks up where it died);
- an entry is acknowledged and deleted only together with its hand-off (the settle script: XADD
  next + XACK + XDEL, atomically, and only while the entry is still owned by this consumer);
- entries idle past the lease in a dead consumer are reclaimed (XAUTOCLAIM); running jobs renew
  their lease; an entry delivered or failed too often goes to the dead-letter stream and its
  client gets an error event;
- on stop(): no more reads, in-flight jobs get `grace_s` to finish, the rest stay pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec
from redis.exceptions import RedisError, ResponseError

from queues.batching import Batcher
from queues.cancel import CancelWatcher
from queues.channel import TokenPublisher
from queues.config import RuntimeConfig
from queues.connection import check_server, connect
from queues.errors import UNREACHABLE, ClientError, Rerun, UnreadableMessage
from queues.heartbeat import Heartbeat
from queues.keys import Keys
from queues.logs import request_id
from queues.messages import ErrorEvent, Event, Job, TokenEvent, decode_job, encode_event, encode_job
from queues.pubsub import Subscriber
from queues.scripts import Call, renew_script, settle_script
from queues.types import Outcome
from queues.wire import WireLink

log = logging.getLogger(__name__)


Fields = dict[Any, bytes | str]  # stream entry fields as written


class ClientGone(Exception):
    """Nobody listens to the request's channel any more: its client disconnected."""


class Handler(Protocol):
    """A stage: returns the job for the next stage, or None when the request is finished."""

    async def __call__(self, job: Job, ctx: JobContext) -> Job | None: ...


# Why the runtime cancelled a job in flight: its client went away, its lease was lost, the worker is leaving.
StopReason = Literal["", "client", "lost", "left"]


class Hooks(Protocol):
    """Metrics hooks."""

    def job_started(self, stage: str, queue_wait_s: float) -> None: ...

    def job_finished(self, stage: str, outcome: Outcome, seconds: float) -> None: ...


class NoHooks:
    def job_started(self, stage: str, queue_wait_s: float) -> None:
        pass

    def job_finished(self, stage: str, outcome: Outcome, seconds: float) -> None:
        pass


@dataclass
class Entry:
    id: str
    fields: dict[bytes, bytes]
    deliveries: int

    @property
    def request_id(self) -> str:
        return self.fields.get(b"rid", b"").decode(errors="replace")


@dataclass
class InFlight:
    entry: Entry
    task: asyncio.Task[None]
    stop_reason: StopReason = ""
    settling: bool = False  # its settle script is under way: it stops by itself, never cancel it


@dataclass
class JobContext:
    """What a handler may use besides its job: the entry it came from and the client's channel."""

    stage: str
    consumer: str
    entry_id: str
    deliveries: int
    publisher: TokenPublisher
    request_id: str
    final_event: Event | None = None  # published by the settle that ends the job

    async def emit(self, event: Event) -> None:
        """Publish an event to the client; raises ClientGone when nobody listens any more."""
        receivers = await self.publisher.publish(self.request_id, event)
        if receivers == 0 and isinstance(event, TokenEvent):
            raise ClientGone(self.request_id)

    def finish(self, event: Event) -> None:
        """Publish `event` when the job is settled, atomically with its acknowledgement (one round
        trip less than publishing it first); for the request's last event."""
        self.final_event = event


class StageWorker:
    def __init__(
        self,
        stage: str,
        handler: Handler,
        config: RuntimeConfig,
        *,
        concurrency: int = 16,
        hooks: Hooks | None = None,
    ) -> None:
        self.stage = stage
        self.handler = handler
        self.config = config
        self.concurrency = concurrency
        self.hooks: Hooks = hooks or NoHooks()
        self.keys = Keys(config.key_prefix)
        self.stream = self.keys.stream(stage)
        self.group = self.keys.group(stage)
        self.consumer = ""
        self.redis = connect(config)
        # the hot commands (reads, settles, publishes) on two lean connections; see queues/wire.py
        self._reads = WireLink(self.redis, config.redis_timeout_s + config.block_ms / 1000)
        self._scripts = WireLink(self.redis, config.redis_timeout_s)
        self.publisher = TokenPublisher(self._scripts, self.keys)
        self._subscriber = Subscriber(self.redis, timeout_s=config.redis_timeout_s)
        self._cancels = CancelWatcher(self._subscriber, self.keys, self._cancel_request, config.cancel_ttl_s)
        self._heartbeat = Heartbeat(self.redis, self.keys, stage, config.heartbeat_s)
        self._in_flight: dict[str, InFlight] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._claim_cursor = "0-0"
        # Settles of concurrently finishing jobs go out together, one pipelined round trip.
        self._settles: Batcher[Call, Any] = Batcher(lambda calls: settle_script.many(self._scripts, calls))

    # ---- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop reading; in-flight jobs get the grace period. Safe to call from a signal handler."""
        self._stopping.set()

    async def run(self) -> None:
        await self._prepare()
        loops = [
            asyncio.create_task(self._every(self._reclaim, max(self.config.lease_s / 4, 0.05))),
            asyncio.create_task(self._every(self._renew, max(self.config.lease_s / 3, 0.05))),
            asyncio.create_task(self._every(self._beat, self.config.heartbeat_s)),
        ]
        try:
            await self._read_own_pending()
            while not self._stopping.is_set():
                await self._poll()
        finally:
            await self._shutdown(loops)

    async def _prepare(self) -> None:
        await check_server(self.redis)
        await self._ensure_group()
        self.consumer = await self._heartbeat.claim(self.concurrency)
        await self._subscriber.start()
        await self._cancels.start()
        log.info("worker %s of stage %s ready, %d slots", self.consumer, self.stage, self.concurrency)

    async def _shutdown(self, loops: list[asyncio.Task[None]]) -> None:
        if self._in_flight:
            log.info("stopping: waiting up to %.0fs for %d jobs", self.config.grace_s, len(self._in_flight))
            tasks = [job.task for job in self._in_flight.values()]
            await asyncio.wait(tasks, timeout=self.config.grace_s)
        for job in list(self._in_flight.values()):
            job.stop_reason = "left"
            job.task.cancel()
        remaining = [job.task for job in self._in_flight.values()]
        await asyncio.gather(*remaining, return_exceptions=True)
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        with contextlib.suppress(*UNREACHABLE, RedisError):
            await self._heartbeat.clear()
        await self._settles.close()
        await self.publisher.close()
        await self._subscriber.close()
        self._reads.close()
        self._scripts.close()
        await self.redis.aclose()

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _every(self, step: Any, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self._ensure_group()
                else:
                    log.warning("%s failed: %s", step.__name__, exc)
            except UNREACHABLE as exc:
                log.warning("%s: Redis unavailable: %s", step.__name__, exc)

    # ---- reading ---------------------------------------------------------------------------

    async def _free_slots(self) -> int:
        while len(self._in_flight) >= self.concurrency and not self._stopping.is_set():
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return self.concurrency - len(self._in_flight)

    async def _poll(self) -> None:
        free = await self._free_slots()
        if self._stopping.is_set():
            return
        try:
            reply: Any = await self._reads.call(
                "XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", free,
                "BLOCK", self.config.block_ms, "STREAMS", self.stream, ">",
            )  # fmt: skip
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer group %s is gone (Redis lost its data?): recreating it", self.group)
            await self._ensure_group()
            return
        except UNREACHABLE as exc:
            log.warning("reading %s: Redis unavailable: %s", self.stream, exc)
            await asyncio.sleep(min(self.config.redis_timeout_s, 1.0))
            return
        for entry_id, fields in _stream_entries(reply):
            self._start(Entry(entry_id, fields, deliveries=1))

    async def _read_own_pending(self) -> None:
        """Re-read this consumer's own pending entries (left by a previous run under the same name)."""
        last = "0"
        while not self._stopping.is_set():
            free = await self._free_slots()
            streams: dict[Any, Any] = {self.stream: last}
            reply: Any = await self.redis.xreadgroup(self.group, self.consumer, streams, count=free)
            entries = reply[0][1] if reply else []
            if not entries:
                return
            last = entries[-1][0].decode()
            ids = [entry_id.decode() for entry_id, _ in entries]
            counts = await self._delivery_counts(ids)
            log.info("re-reading %d of my own pending entries", len(entries))
            for entry_id, fields in entries:
                key = entry_id.decode()
                self._start(Entry(key, fields or {}, deliveries=counts.get(key, 1)))

    async def _reclaim(self) -> None:
        """Take over entries left idle past the lease by a dead consumer."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0 or self._stopping.is_set():
            return
        lease_ms = int(self.config.lease_s * 1000)
        reply: Any = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, lease_ms, start_id=self._claim_cursor, count=free
        )
        self._claim_cursor = reply[0].decode()
        claimed = [(entry_id.decode(), fields) for entry_id, fields in reply[1] if entry_id is not None]
        if not claimed:
            return
        counts = await self._delivery_counts([entry_id for entry_id, _ in claimed])
        log.warning("reclaimed %d entries idle for more than %.1fs", len(claimed), self.config.lease_s)
        for entry_id, fields in claimed:
            if entry_id not in self._in_flight:
                self._start(Entry(entry_id, fields or {}, deliveries=counts.get(entry_id, 1)))

    async def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        ordered = sorted(ids, key=lambda entry_id: tuple(int(part) for part in entry_id.split("-")))
        rows: Any = await self.redis.xpending_range(
            self.stream, self.group, ordered[0], ordered[-1], len(ids) + 64, consumername=self.consumer
        )
        return {row["message_id"].decode(): int(row["times_delivered"]) for row in rows}

    async def _renew(self) -> None:
        """Reset the idle time of running jobs; a job this consumer no longer owns is stopped."""
        ids = list(self._in_flight)
        if not ids:
            return
        lost = await renew_script(self._scripts, [self.stream], [self.group, self.consumer, *ids])
        for raw in lost:
            job = self._in_flight.get(raw.decode())
            if job is not None and not job.settling:  # a settled entry is gone, not taken over
                log.warning("entry %s was taken over by another worker; stopping my copy", job.entry.id)
                job.stop_reason = "lost"
                job.task.cancel()

    async def _beat(self) -> None:
        await self._heartbeat.beat(len(self._in_flight), self.concurrency)

    def _cancel_request(self, request_id: str) -> None:
        for job in list(self._in_flight.values()):
            if job.entry.request_id == request_id and not job.settling:
                job.stop_reason = "client"
                job.task.cancel()

    # ---- running one job -------------------------------------------------------------------

    def _start(self, entry: Entry) -> None:
        task = asyncio.create_task(self._run_job(entry), name=f"{self.stage}:{entry.id}")
        self._in_flight[entry.id] = InFlight(entry, task)

    async def _run_job(self, entry: Entry) -> None:
        request_id.set(entry.request_id)  # this task's log lines name the request
        began = time.monotonic()
        outcome: Outcome = "lost"
        try:
            outcome = await self._process(entry)
        except asyncio.CancelledError:
            job = self._in_flight.get(entry.id)
            outcome = "lost" if job and job.stop_reason == "lost" else "left"
        except Exception:
            log.exception("entry %s could not be settled", entry.id)
        finally:
            self._in_flight.pop(entry.id, None)
            self._slot_freed.set()
            self.hooks.job_finished(self.stage, outcome, time.monotonic() - began)

    async def _process(self, entry: Entry) -> Outcome:
        if not entry.fields:  # deleted from the stream while pending: nothing left to do
            await self._settle(entry)
            return "done"
        try:
            job = decode_job(entry.fields)
        except UnreadableMessage as exc:
            return await self._dead_letter(entry, str(exc))
        if entry.deliveries + job.attempt > self.config.max_attempts:
            reason = f"delivered {entry.deliveries} times without finishing (its worker crashed each time?)"
            return await self._dead_letter(entry, reason, job.last_error)
        if self._cancels.is_cancelled(job.request.id):
            await self._settle(entry)
            return "cancelled"
        remaining = job.request.deadline - time.time()
        if remaining <= 0:
            return await self._fail(entry, _deadline_error(self.stage))
        self.hooks.job_started(self.stage, max(time.time() - job.enqueued_at, 0.0))
        ctx = JobContext(
            stage=self.stage,
            consumer=self.consumer,
            entry_id=entry.id,
            deliveries=entry.deliveries,
            publisher=self.publisher,
            request_id=job.request.id,
        )
        try:
            async with asyncio.timeout(remaining) as deadline:
                result = await self.handler(job, ctx)
        except asyncio.CancelledError:
            in_flight = self._in_flight.get(entry.id)
            if in_flight is None or in_flight.stop_reason != "client":
                raise  # shutting down or taken over: leave the entry pending
            _uncancel()
            await self._settle(entry)
            return "cancelled"
        except ClientGone:
            await self._settle(entry)
            return "cancelled"
        except TimeoutError as exc:
            if deadline.expired():
                return await self._fail(entry, _deadline_error(self.stage))
            return await self._retry(entry, job, exc)
        except ClientError as exc:
            return await self._fail(entry, ErrorEvent.of(exc))
        except Rerun as exc:
            return await self._rerun(entry, job, exc)
        except Exception as exc:
            log.warning("job %s failed at %s: %r", job.request.id, self.stage, exc, exc_info=True)
            return await self._retry(entry, job, exc)
        if result is None:
            await self._settle(entry, event=ctx.final_event)
            return "done"
        return "handed_on" if await self._hand_on(entry, result) else "lost"

    async def _hand_on(self, entry: Entry, job: Job) -> bool:
        job = msgspec.structs.replace(job, enqueued_at=time.time())
        return await self._settle(entry, job=job, progress=True, drop_if_cancelled=True)

    async def _retry(self, entry: Entry, job: Job, exc: BaseException) -> Outcome:
        error = f"{type(exc).__name__}: {exc}"
        if job.attempt + 1 >= self.config.max_attempts:
            return await self._dead_letter(entry, f"failed {job.attempt + 1} times", error)
        retry = msgspec.structs.replace(job, attempt=job.attempt + 1, last_error=error)
        await self._hand_on(entry, retry)
        return "retried"

    async def _rerun(self, entry: Entry, job: Job, exc: Rerun) -> Outcome:
        if job.reruns >= self.config.max_reruns:
            return await self._dead_letter(entry, f"re-run {job.reruns} times", exc.reason)
        stage = job.rerun_from(exc.stage)
        log.warning("job %s goes back to %s: %s", job.request.id, stage, exc.reason)
        again = msgspec.structs.replace(
            job.without_outputs_from(stage), reruns=job.reruns + 1, last_error=exc.reason
        )
        await self._hand_on(entry, again)
        return "rerun"

    async def _fail(self, entry: Entry, error: ErrorEvent) -> Outcome:
        await self._settle(entry, event=error)
        return "expired" if error.status == 504 else "failed"

    async def _dead_letter(self, entry: Entry, reason: str, last_error: str = "") -> Outcome:
        log.error("dead-lettering entry %s of %s: %s %s", entry.id, self.stream, reason, last_error)
        fields: Fields = dict(entry.fields)
        fields.update(
            {
                "reason": reason,
                "error": last_error,
                "stage": self.stage,
                "consumer": self.consumer,
                "entry": entry.id,
                "failed_at": str(time.time()),
            }
        )
        message = f"the request failed at stage {self.stage}: {reason}"
        if last_error:
            message += f" (last error: {last_error})"
        event = ErrorEvent(message=message, status=500, type="server_error", code="dead_letter")
        await self._settle(entry, target=self.keys.dead(self.stage), fields=fields, event=event)
        return "dead"

    async def _settle(
        self,
        entry: Entry,
        *,
        job: Job | None = None,
        target: str | None = None,
        fields: Fields | None = None,
        event: Event | None = None,
        progress: bool = False,
        drop_if_cancelled: bool = False,
    ) -> bool:
        """Acknowledge and delete `entry`, atomically adding `job` (or raw `fields` to `target`) and
        publishing `event`. Retries while Redis is unreachable, for up to one lease (after that
        the entry is someone else's to reclaim). Returns False when the entry is no longer ours."""
        in_flight = self._in_flight.get(entry.id)
        if in_flight is not None:
            in_flight.settling = True
        if job is not None:
            target, fields = self.keys.stream(job.stage), {**encode_job(job)}
        request_id = entry.request_id
        args: list[bytes | str] = [
            self.group,
            entry.id,
            self.consumer,
            self.keys.tokens(request_id),
            encode_event(event) if event is not None else b"",
            job.stage if (job is not None and progress) else "",
            "1" if drop_if_cancelled else "0",
        ]
        for name, value in (fields or {}).items():
            args += [name, value]
        keys = [self.stream, target or self.stream, self.keys.cancel(request_id)]
        give_up = time.monotonic() + self.config.lease_s
        delay = 0.05
        while True:
            try:
                result = await self._settles.submit((keys, args))
                if isinstance(result, Exception):
                    raise result
                return result is not None
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    log.warning("entry %s is gone with its group (Redis lost its data)", entry.id)
                    return False
                raise
            except UNREACHABLE as exc:
                if time.monotonic() > give_up:
                    log.error("could not settle %s (Redis unavailable): left pending", entry.id)
                    return False
                log.warning("settling %s: Redis unavailable (%s), retrying", entry.id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)


def _stream_entries(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    """(id, fields) of a raw XREADGROUP reply: a map of streams under RESP3, a list under RESP2."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else (entries for _, entries in reply)
    found = []
    for entries in streams:
        for entry_id, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}
            found.append((entry_id.decode(), fields))
    return found


def _deadline_error(stage: str) -> ErrorEvent:
    return ErrorEvent(
        message=f"the request's deadline passed at stage {stage}",
        status=504,
        type="timeout_error",
        code="deadline_exceeded",
    )


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
