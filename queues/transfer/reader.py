"""Reader side: fetch a `TensorRef` into a buffer of the receive pool, whatever its transport.

Every transport lands in a lease of the registered receive pool (or, for a payload larger than the
whole pool, a buffer of its own), so `Received.tensors` always live on this process's device. NIXL
and shared-memory reads copy the payload first and check the owner's slot tag afterwards: a tag that
no longer matches means the owner freed the payload meanwhile (expiry, discard, an earlier reader),
so the bytes are not trusted and the fetch fails with `expired`. Over NIXL the tag is read into a
word of a small registered host buffer (`words`), by a second READ that also carries the completion
notification.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
import torch

from queues.transfer import blob, layout
from queues.transfer.arena import Arena, Lease
from queues.transfer.errors import TransferError
from queues.transfer.nixl_agent import NixlAgent, mem_type, region_of
from queues.transfer.owner import Owner, notification
from queues.transfer.peers import Peer, Peers
from queues.transfer.received import Received
from queues.transfer.ref import TensorRef

WORD = 8  # bytes of a slot-table entry


class _Target:
    """A lease being written by a READ; `defer` keeps it out of the pool until NIXL lets go."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.deferred = False

    def defer(self) -> None:
        self.deferred = True

    def release(self) -> None:
        self.lease.release()

    def release_unless_deferred(self) -> None:
        if not self.deferred:
            self.lease.release()


class Reader:
    def __init__(
        self,
        redis: aioredis.Redis,
        pool: Arena,
        words: Arena,
        peers: Peers,
        nixl: NixlAgent | None,
        owner: Owner | None,
        name: str,
        epoch: int,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._words = words
        self._peers = peers
        self._nixl = nixl
        self._owner = owner
        self._name = name
        self._epoch = epoch

    async def fetch(self, ref: TensorRef, deadline: float) -> Received:
        _check(ref)
        if self._is_own(ref):
            return self._take_own(ref)
        if time.time() > ref.expires_at:
            raise TransferError("expired", f"transfer {ref.tag} of {ref.owner} expired before the read")
        target = _Target(await self._lease(ref.nbytes, register=ref.transport == "nixl"))
        view = target.lease.view
        try:
            if ref.transport == "nixl":
                await self._read_nixl(ref, target, deadline)
            elif ref.transport == "shm":
                await self._read_shm(ref, view)
            elif ref.transport == "inline":
                await _copy_bytes(view, ref.data)
            else:
                await blob.load_into(self._redis, ref.blob_key, view)
        except BaseException:
            target.release_unless_deferred()
            raise
        return Received(ref, layout.views(view, ref.tensors), target.lease)

    async def discard(self, ref: TensorRef, limit_s: float) -> None:
        """Tell the owner of `ref` to free it (best effort: a gone owner frees by itself)."""
        if ref.transport == "redis":
            await self._redis.delete(ref.blob_key)
        elif self._is_own(ref):
            if self._owner is not None:
                self._owner.free(ref.tag)
        elif ref.transport == "nixl" and self._nixl is not None:
            peer = await self._peers.get(ref)
            self._nixl.notify(await self._peers.nixl_name(peer, limit_s), notification(ref.tag))
        elif ref.transport == "shm":
            shared = self._peers.shared(await self._peers.get(ref))
            if 0 <= ref.slot < shared.slots.shape[1] and int(shared.slots[0, ref.slot]) == ref.tag:
                shared.slots[1, ref.slot] = ref.tag

    def _is_own(self, ref: TensorRef) -> bool:
        return ref.transport in ("nixl", "shm") and ref.owner == self._name and ref.epoch == self._epoch

    def _take_own(self, ref: TensorRef) -> Received:
        """A ref this process published: hand over the held buffer itself (no copy)."""
        lease = self._owner.take(ref.tag) if self._owner is not None else None
        if lease is None:
            raise TransferError("expired", f"transfer {ref.tag} was already freed")
        return Received(ref, layout.views(lease.view, ref.tensors), lease)

    async def _lease(self, nbytes: int, register: bool) -> Lease:
        if self._pool.fits(nbytes):
            return await self._pool.allocate(nbytes)
        # Larger than the whole pool: a buffer of its own, registered (for NIXL) for this one read.
        buffer = torch.empty(nbytes, dtype=torch.uint8, device=self._pool.buffer.device)
        nixl = self._nixl if register else None
        if nixl is not None:
            nixl.register(buffer)

        def release(_: Lease) -> None:
            if nixl is not None:
                nixl.deregister(buffer)

        return Lease(buffer, 0, -1, release)

    async def _read_nixl(self, ref: TensorRef, target: _Target, deadline: float) -> None:
        peer = await self._peers.get(ref)
        _check_bounds(ref, peer)
        word = _Target(await self._words.allocate(WORD))
        try:
            name = await self._peers.nixl_name(peer, max(deadline - time.monotonic(), 0.0))
            nixl = self._nixl
            assert nixl is not None  # nixl_name raised otherwise
            view = target.lease.view
            local, start = [], view.data_ptr()
            for desc in ref.descs:
                local.append((start, desc.nbytes, max(view.get_device(), 0)))
                start += desc.nbytes
            remote = [(desc.addr, desc.nbytes, desc.device) for desc in ref.descs]
            await nixl.read(local, mem_type(view), remote, ref.mem, name, b"", deadline, target)
            # After the payload: the owner's tag word, with the completion notification attached.
            tag_at = [(peer.record.slots_addr + WORD * ref.slot, WORD, 0)]
            word_at = [region_of(word.lease.view)]
            await nixl.read(word_at, "DRAM", tag_at, "DRAM", name, notification(ref.tag), deadline, word)
            tag = int(word.lease.view.view(torch.int64)[0])
        except TransferError as error:
            raise await self._peers.diagnose(ref, error) from error
        finally:
            word.release_unless_deferred()
        if tag != ref.tag:
            raise TransferError("expired", f"transfer {ref.tag} was freed by its owner during the read")

    async def _read_shm(self, ref: TensorRef, view: torch.Tensor) -> None:
        peer = await self._peers.get(ref)
        _check_bounds(ref, peer)
        shared = self._peers.shared(peer)
        if not shared.owner_alive():
            self._peers.evict((ref.owner, ref.epoch))
            raise TransferError("owner_gone", f"owner {ref.owner} exited")
        start = 0
        for desc in ref.descs:
            offset = desc.addr - peer.record.data_addr
            source = shared.data[offset : offset + desc.nbytes]
            await layout.copy(view[start : start + desc.nbytes], source)
            start += desc.nbytes
        if int(shared.slots[0, ref.slot]) != ref.tag:
            raise TransferError("expired", f"transfer {ref.tag} was freed by its owner during the read")
        shared.slots[1, ref.slot] = ref.tag


def _check(ref: TensorRef) -> None:
    if ref.transport not in ("nixl", "shm", "inline", "redis"):
        raise TransferError("invalid", f"unknown transport {ref.transport!r}")
    layout.check(ref.tensors, ref.nbytes)
    covered = sum(desc.nbytes for desc in ref.descs)
    if ref.transport in ("nixl", "shm") and covered != ref.nbytes:
        raise TransferError("size_mismatch", f"descriptors cover {covered} bytes, the ref says {ref.nbytes}")


def _check_bounds(ref: TensorRef, peer: Peer) -> None:
    rec = peer.record
    if not 0 <= ref.slot < rec.n_slots:
        raise TransferError("invalid", f"slot {ref.slot} outside the owner's {rec.n_slots} slots")
    for desc in ref.descs:
        if desc.addr < rec.data_addr or desc.addr + desc.nbytes > rec.data_addr + rec.data_nbytes:
            raise TransferError("size_mismatch", f"descriptor {desc} outside the owner's send buffer")


async def _copy_bytes(view: torch.Tensor, data: bytes) -> None:
    if len(data) != view.numel():
        raise TransferError("size_mismatch", f"received {len(data)} bytes, the ref says {view.numel()}")
    if data:
        await layout.copy(view, layout.frombuffer(data))
