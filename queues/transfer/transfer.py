"""`TensorTransfer`: one per worker process; publishes tensors as `TensorRef`s and fetches others'.

    transfer = await TensorTransfer.start(redis, keys, name, config)
    ref = await transfer.publish([k0, v0, k1, v1])      # waits while the held-bytes cap is reached
    with await transfer.fetch(ref) as got:              # in another process
        use(got.tensors)
    await transfer.close()

Start-up creates the NIXL agent (when a NIXL wheel is installed and UCX starts), registers the send
buffer and the receive pool once, and publishes the agent metadata once at `keys.agent(name)`. A
background task frees held payloads on readers' notifications or at expiry, reaps abandoned reads
and keeps the metadata's TTL fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
import torch
from redis.exceptions import RedisError

from queues.keys import Keys
from queues.stopping import cancel_and_wait
from queues.transfer import blob, layout, record, shm
from queues.transfer.arena import Arena
from queues.transfer.config import TransferConfig, Transport
from queues.transfer.errors import TransferError
from queues.transfer.nixl_agent import NixlAgent, mem_type, region_of
from queues.transfer.owner import Owner
from queues.transfer.peers import Peers
from queues.transfer.reader import Reader
from queues.transfer.received import Received
from queues.transfer.record import AgentRecord
from queues.transfer.ref import Desc, TensorRef

log = logging.getLogger(__name__)

_IDLE_TICK_S = 0.25
_WORDS = 4096  # concurrent NIXL reads (each borrows one slot-tag word while it runs)


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TransferError("unavailable", f"TRANSFER_DEVICE={spec}, but no GPU is visible")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


class _SendSide:
    """The send buffer and its slot table, anonymous (NIXL) or in shared memory."""

    def __init__(self, data: torch.Tensor, slots: torch.Tensor, shared: shm.SharedBuffer | None) -> None:
        self.data = data
        self.slots = slots
        self.shared = shared
        self.owner = Owner(Arena(data, slots=slots.shape[1]), slots, readers_mark_done=shared is not None)


class TensorTransfer:
    """Tensor transfer endpoint of one process. Create with `await TensorTransfer.start(...)`."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        name: str,
        config: TransferConfig,
        epoch: int,
        device: torch.device,
        nixl: NixlAgent | None,
        send: _SendSide | None,
        pool: Arena,
        words: Arena,
        agent_record: AgentRecord,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.name = name
        self.config = config
        self.epoch = epoch
        self.device = device
        self._nixl = nixl
        self._send = send
        self._pool = pool
        self._record = agent_record
        self._meta_key = keys.agent(name)
        self._peers = Peers(redis, nixl, agent_record.host)
        owner = send.owner if send is not None else None
        self._reader = Reader(redis, pool, words, self._peers, nixl, owner, name, epoch)
        self._fetching = 0
        self._tags = itertools.count(1)
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        publishable: list[Transport] = ["inline", "redis"]
        if send is not None:
            publishable.append("shm" if send.shared is not None else "nixl")
        self.publishable = frozenset(publishable)

    # -- lifecycle --------------------------------------------------------------------------------

    @classmethod
    async def start(
        cls, redis: aioredis.Redis, keys: Keys, name: str, config: TransferConfig | None = None
    ) -> TensorTransfer:
        config = config or TransferConfig.from_env()
        if redis.get_encoder().decode_responses:
            raise ValueError("tensor transfer needs a Redis client with decode_responses=False")
        device = resolve_device(config.device)
        epoch = time.time_ns()
        nixl: NixlAgent | None = None
        try:
            nixl = await NixlAgent.create(
                f"{name}@{epoch}",
                config.nixl_backends,
                config.nixl_threads,
                config.progress_delay_us(device.type),
            )
        except Exception as exc:
            if config.transport == "nixl":
                raise TransferError("unavailable", f"TRANSFER_TRANSPORT=nixl, but NIXL fails: {exc}") from exc
            log.warning("NIXL unavailable (%s); tensors go by shared memory or Redis", exc)
        send: _SendSide | None = None
        try:
            await asyncio.to_thread(shm.sweep, config.shm_dir)
            send = _make_send_side(config, name, epoch, device, nixl)
            pool = torch.empty(config.pool_bytes, dtype=torch.uint8, device=device)
            words = torch.zeros(_WORDS * layout.ALIGN, dtype=torch.uint8)
            if nixl is not None:
                nixl.register(pool)
                nixl.register(words)
            agent_record = _describe(name, epoch, nixl, send)
            await record.publish(redis, keys.agent(name), agent_record, config.meta_ttl_s)
        except BaseException:
            if send is not None and send.shared is not None:
                send.shared.close(unlink=True)
            if nixl is not None:
                await nixl.close()
            raise
        self = cls(
            redis, keys, name, config, epoch, device, nixl, send, Arena(pool), Arena(words), agent_record
        )
        self._task = asyncio.create_task(self._background(), name=f"tensor-transfer-{name}")
        log.info(
            "tensor transfer %s (epoch %d) on %s: publishes %s", name, epoch, device, sorted(self.publishable)
        )
        return self

    async def close(self, drain: float = 0.0) -> None:
        """Free everything: held payloads (after waiting up to `drain` seconds for their readers),
        registrations, the NIXL agent, the shared-memory file and the published metadata."""
        if self._closed:
            return
        self._closed = True
        owner = self._send.owner if self._send is not None else None
        deadline = time.monotonic() + drain
        while owner is not None and owner.held_count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(min(self.config.poll_s * 5, 0.05))
        # Fetches under way end by their own timeout; their buffers must stay registered until then.
        deadline = time.monotonic() + self.config.read_timeout_s
        while self._fetching and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._task is not None:
            await cancel_and_wait(self._task)
        if owner is not None:
            owner.clear()
        with contextlib.suppress(RedisError, OSError):
            await record.delete(self.redis, self._meta_key, self._record)
        self._peers.close()
        if self._nixl is not None:
            await self._nixl.close()
        if self._send is not None and self._send.shared is not None:
            self._send.shared.close(unlink=True)

    # -- owner side -------------------------------------------------------------------------------

    async def publish(
        self, tensors: Sequence[torch.Tensor], ttl: float | None = None, transport: Transport | None = None
    ) -> TensorRef:
        """Ship `tensors` (one transfer for all of them) and return the reference for the message.

        Waits while the held-bytes or held-count cap is reached. `ttl` (seconds, default
        TRANSFER_TTL_S) bounds how long an unread payload is kept; `transport` overrides the
        configured choice for this call (it must be in `publishable`).
        """
        self._check_open()
        tensors = list(tensors)
        specs, nbytes = layout.plan(tensors)
        chosen = self._choose(nbytes, transport)
        ttl_s = self.config.ttl_s if ttl is None else ttl
        if not ttl_s > 0:
            raise ValueError(f"ttl must be > 0, not {ttl}")
        tag = next(self._tags)
        if chosen in ("inline", "redis"):
            payload = bytearray(nbytes)
            if nbytes:
                await layout.pack(torch.frombuffer(payload, dtype=torch.uint8), tensors, specs)
            blob_key = ""
            if chosen == "redis":
                blob_key = self.keys.blob(f"{self.name}:{self.epoch}:{tag}")
                await blob.store(self.redis, blob_key, payload, ttl_s)
            return TensorRef(
                transport=chosen,
                tensors=specs,
                nbytes=nbytes,
                tag=tag,
                expires_at=time.time() + ttl_s,
                owner=self.name,
                epoch=self.epoch,
                blob_key=blob_key,
                data=bytes(payload) if chosen == "inline" else b"",
            )
        assert self._send is not None  # _choose only offers nixl/shm with a send side
        held = await self._send.owner.hold(tensors, specs, nbytes, tag, ttl_s)
        if self._closed:  # closed while this publish waited at the cap
            self._send.owner.free(tag)
            self._check_open()
        self._wake.set()
        addr, _, device = region_of(held.lease.view)
        return TensorRef(
            transport=chosen,
            tensors=specs,
            nbytes=nbytes,
            tag=tag,
            expires_at=held.expires_at,
            owner=self.name,
            epoch=self.epoch,
            meta_key=self._meta_key,
            mem=mem_type(self._send.data),
            descs=[Desc(addr, nbytes, device)],
            slot=held.lease.slot,
        )

    async def discard(self, ref: TensorRef) -> None:
        """Free the payload behind `ref` early (a cancelled job); best effort, never raises for a
        payload or owner that is already gone."""
        if self._closed:
            return
        try:
            await self._reader.discard(ref, self.config.read_timeout_s)
        except Exception as exc:
            log.info("discarding transfer %d of %s: %s", ref.tag, ref.owner, exc)

    @property
    def held_bytes(self) -> int:
        """Bytes of the send buffer held for readers (payload sizes, not counting alignment)."""
        return self._send.owner.held_bytes if self._send is not None else 0

    @property
    def held_count(self) -> int:
        return self._send.owner.held_count if self._send is not None else 0

    @property
    def pool_used_bytes(self) -> int:
        """Bytes of the receive pool lent out (unreleased `Received`s, reads under way)."""
        return self._pool.used_bytes

    @property
    def registered_count(self) -> int:
        """Memory regions registered with NIXL: send buffer, slot table, receive pool and tag words
        (and a buffer of its own per in-flight read larger than the pool); 0 after close."""
        return self._nixl.registered_count if self._nixl is not None else 0

    @property
    def shm_path(self) -> str:
        return self._record.shm_path

    # -- reader side ------------------------------------------------------------------------------

    async def fetch(self, ref: TensorRef, timeout: float | None = None) -> Received:  # noqa: ASYNC109
        """Read the tensors of `ref` into this process's receive pool, notify the owner, and
        return them. Raises TransferError (never hangs past `timeout`, default
        TRANSFER_READ_TIMEOUT_S, which includes waiting for a free receive buffer)."""
        self._check_open()
        timeout = self.config.read_timeout_s if timeout is None else timeout
        self._fetching += 1
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.fetch(ref, time.monotonic() + timeout)
        except TimeoutError:
            raise TransferError(
                "timeout", f"fetching transfer {ref.tag} of {ref.owner} took over {timeout}s"
            ) from None
        finally:
            self._fetching -= 1
            if self._nixl is not None and self._nixl.abandoned:
                self._wake.set()

    # -- internals --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise TransferError("closed", f"tensor transfer {self.name} is closed")

    def _choose(self, nbytes: int, forced: Transport | None) -> Transport:
        if nbytes == 0:
            return "inline"
        want = forced or self.config.transport
        if want == "auto":
            if nbytes <= self.config.inline_max_bytes:
                return "inline"
            for transport in ("nixl", "shm"):
                if transport in self.publishable:
                    return transport
            return "redis"
        if want not in self.publishable:
            raise TransferError("unavailable", f"transport {want} is not available in {self.name}")
        return want

    async def _refresh(self) -> None:
        if not await record.refresh(self.redis, self._meta_key, self._record, self.config.meta_ttl_s):
            log.error("another process publishes as %s: tensor refs of this one go stale", self.name)

    async def _background(self) -> None:
        next_refresh = time.monotonic() + self.config.meta_ttl_s / 3
        owner = self._send.owner if self._send is not None else None
        while True:
            try:
                if self._nixl is not None:
                    messages = self._nixl.notifications()
                    if owner is not None:
                        owner.on_notifications(messages)
                    self._nixl.reap()
                if owner is not None:
                    owner.collect(time.time())
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.config.meta_ttl_s / 3
                    await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tensor transfer housekeeping failed; retrying")
            if (owner is not None and owner.held_count) or (self._nixl is not None and self._nixl.abandoned):
                await asyncio.sleep(self.config.poll_s)
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_IDLE_TICK_S):
                        await self._wake.wait()


def _make_send_side(
    config: TransferConfig, name: str, epoch: int, device: torch.device, nixl: NixlAgent | None
) -> _SendSide | None:
    n_slots = config.held_max_count
    wants_shm = config.transport == "shm" or (config.transport == "auto" and nixl is None)
    if wants_shm:
        if device.type != "cpu":
            if config.transport == "shm":
                raise TransferError("unavailable", "shared memory needs TRANSFER_DEVICE=cpu")
            return None
        try:
            shared = shm.SharedBuffer.create(config.shm_dir, name, epoch, config.held_max_bytes, n_slots)
        except OSError as exc:
            if config.transport == "shm":
                raise TransferError("unavailable", f"shared memory in {config.shm_dir}: {exc}") from exc
            log.warning("no shared-memory send buffer (%s); large tensors go by Redis", exc)
            return None
        return _SendSide(shared.data, shared.slots, shared)
    if nixl is None or config.transport not in ("auto", "nixl"):
        return None
    data = torch.empty(config.held_max_bytes, dtype=torch.uint8, device=device)
    slots = torch.zeros((2, n_slots), dtype=torch.int64)
    nixl.register(data)
    nixl.register(slots)
    return _SendSide(data, slots, None)


def _describe(name: str, epoch: int, nixl: NixlAgent | None, send: _SendSide | None) -> AgentRecord:
    return AgentRecord(
        name=name,
        epoch=epoch,
        host=shm.host_id(),
        pid=os.getpid(),
        nixl_name=nixl.name if nixl is not None else "",
        nixl_meta=nixl.metadata() if nixl is not None else b"",
        data_addr=send.data.data_ptr() if send is not None else 0,
        data_nbytes=send.data.numel() if send is not None else 0,
        slots_addr=send.slots.data_ptr() if send is not None else 0,
        n_slots=send.slots.shape[1] if send is not None else 0,
        shm_path=send.shared.path if send is not None and send.shared is not None else "",
    )
