"""Reader side: owners' published metadata, fetched once per owner and epoch and cached.

A cached peer also remembers its NIXL connection (the owner's agent metadata loaded into this
process's agent, once) and, for shared memory, the mapping of the owner's file. After a transport
failure the peer is evicted and its record read again, to tell a dead owner (no record) from a
restarted one (another epoch). Loading an owner's new epoch evicts its older ones, and the cache
keeps at most `MAX_PEERS` owners (least recently used go first), so owners that went away without a
failed read do not pile up connections.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queues.transfer import record
from queues.transfer.errors import TransferError
from queues.transfer.nixl_agent import NixlAgent
from queues.transfer.record import AgentRecord
from queues.transfer.ref import TensorRef
from queues.transfer.shm import SharedBuffer

PeerKey = tuple[str, int]
MAX_PEERS = 1024


@dataclass
class Peer:
    record: AgentRecord
    connect: asyncio.Task[str] | None = None  # loads the owner's NIXL metadata; result: its NIXL name
    shared: SharedBuffer | None = None


class Peers:
    def __init__(self, redis: aioredis.Redis, nixl: NixlAgent | None, host: str) -> None:
        self._redis = redis
        self._nixl = nixl
        self._host = host
        self._peers: OrderedDict[PeerKey, Peer] = OrderedDict()
        self._loading: dict[PeerKey, asyncio.Lock] = {}

    async def get(self, ref: TensorRef) -> Peer:
        """The owner of `ref`, from cache or from its published record (owner_gone / stale)."""
        key = (ref.owner, ref.epoch)
        peer = self._peers.get(key)
        if peer is not None:
            self._peers.move_to_end(key)
            return peer
        try:
            async with self._loading.setdefault(key, asyncio.Lock()):
                peer = self._peers.get(key)
                if peer is None:
                    peer = Peer(await self._load(ref))
                    self._add(key, peer)
        finally:
            self._loading.pop(key, None)
        return peer

    def _add(self, key: PeerKey, peer: Peer) -> None:
        for old in [other for other in self._peers if other[0] == key[0]]:
            self.evict(old)  # an older incarnation of the same owner: it is gone
        self._peers[key] = peer
        while len(self._peers) > MAX_PEERS:
            self.evict(next(iter(self._peers)))

    async def nixl_name(self, peer: Peer, limit_s: float) -> str:
        """Connect to the owner's NIXL agent once; concurrent callers share the connection attempt."""
        if self._nixl is None:
            raise TransferError("unreachable", "this process has no NIXL agent; it cannot read NIXL refs")
        if not peer.record.nixl_meta:
            raise TransferError("unreachable", f"owner {peer.record.name} published no NIXL metadata")
        if peer.connect is None or _failed(peer.connect):
            peer.connect = asyncio.ensure_future(self._nixl.add_peer(peer.record.nixl_meta, limit_s))
        # Shielded: a cancelled reader must not lose track of a connection that completes anyway.
        return await asyncio.shield(peer.connect)

    def shared(self, peer: Peer) -> SharedBuffer:
        """The owner's shared-memory buffer, mapped once."""
        if peer.shared is not None:
            return peer.shared
        rec = peer.record
        if not rec.shm_path:
            raise TransferError("unreachable", f"owner {rec.name} has no shared-memory buffer")
        if rec.host != self._host:
            raise TransferError("unreachable", f"owner {rec.name} is on another host ({rec.host})")
        try:
            peer.shared = SharedBuffer.open(rec.shm_path, rec.epoch, rec.n_slots, rec.data_nbytes)
        except FileNotFoundError:
            raise TransferError("owner_gone", f"owner {rec.name} removed its shared buffer") from None
        except (OSError, ValueError) as exc:
            raise TransferError("unreachable", f"cannot map {rec.shm_path}: {exc}") from exc
        return peer.shared

    async def diagnose(self, ref: TensorRef, error: TransferError) -> TransferError:
        """After a transport failure: forget the peer and refine the error from its current record."""
        self.evict((ref.owner, ref.epoch))
        if error.reason not in ("owner_gone", "failed"):
            return error
        try:
            await self._load(ref)
        except TransferError as refined:
            return refined
        except (RedisError, OSError):
            pass
        return error

    def evict(self, key: PeerKey) -> None:
        peer = self._peers.pop(key, None)
        if peer is None:
            return
        if peer.connect is not None and peer.connect.done() and not _failed(peer.connect):
            if self._nixl is not None:
                self._nixl.remove_peer(peer.connect.result())
        elif peer.connect is not None:
            peer.connect.cancel()
        if peer.shared is not None:
            peer.shared.close()

    def close(self) -> None:
        for key in list(self._peers):
            self.evict(key)

    async def _load(self, ref: TensorRef) -> AgentRecord:
        if not ref.meta_key:
            raise TransferError("invalid", f"a {ref.transport} ref without meta_key")
        try:
            rec = await record.load(self._redis, ref.meta_key)
        except RedisError as exc:
            raise TransferError("failed", f"reading {ref.meta_key}: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise TransferError("invalid", f"unreadable record at {ref.meta_key}: {exc}") from exc
        if rec is None:
            raise TransferError("owner_gone", f"owner {ref.owner} has no published metadata (exited?)")
        if rec.epoch != ref.epoch:
            raise TransferError(
                "stale", f"owner {ref.owner} is at epoch {rec.epoch}, the ref names epoch {ref.epoch}"
            )
        return rec


def _failed(task: asyncio.Task[str]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
