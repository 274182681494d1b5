"""The process's NIXL agent: creation, memory registration, peers, READs and notifications.

Every NIXL call of the package goes through this module. NIXL calls are synchronous C++: a READ is
posted on the event loop when small and in a worker thread when large (the post itself may copy the
whole payload, e.g. over CMA between two processes of one host), then polled with short asyncio
sleeps. The agent runs in NIXL's reader/writer thread-sync mode so those threads are safe.

A READ that has to be given up while NIXL may still write into the local buffer (timeout,
cancellation) is *abandoned*: its handle is kept and polled by `reap()` until NIXL is done, and only
then is the buffer returned, so a pooled buffer is never handed out while a transfer can land in it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from queues.transfer.errors import TransferError

log = logging.getLogger(__name__)

# READs at least this large are posted from a worker thread (their post can take milliseconds).
THREAD_POST_BYTES = 1 << 20
# How long an abandoned READ may stay in flight before its handle is released by force.
ABANDON_GRACE_S = 30.0
# Polling a READ in flight: spin this long, then yield to the event loop until _YIELD_S, then sleep.
_SPIN_S = 100e-6
_YIELD_S = 2e-3
_MAX_POLL_SLEEP_S = 1e-3

Region = tuple[int, int, int]  # address, length, device id


def load_api() -> Any | None:
    """The `_api` module of whichever NIXL wheel is installed (nixl-cu13, nixl-cu12 or nixl)."""
    for module in ("nixl_cu13._api", "nixl_cu12._api", "nixl._api"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    return None


def mem_type(tensor: torch.Tensor) -> str:
    return "VRAM" if tensor.is_cuda else "DRAM"


def region_of(tensor: torch.Tensor) -> Region:
    return (tensor.data_ptr(), tensor.numel() * tensor.element_size(), max(tensor.get_device(), 0))


class Target(Protocol):
    """The local memory a READ writes into."""

    def defer(self) -> None:
        """The READ was given up while in flight: keep the memory until `release()` is called."""

    def release(self) -> None:
        """NIXL is done with the memory."""


@dataclass
class _Abandoned:
    handle: Any
    post: asyncio.Future[str] | None
    target: Target
    since: float


class NixlAgent:
    """A NIXL agent with UCX (or the configured backends) and a small thread pool for posts."""

    def __init__(
        self, api: Any, name: str, backends: tuple[str, ...], threads: int, progress_delay_us: int
    ) -> None:
        config = api.nixl_agent_config(
            backends=list(backends), sync_mode=api.nixl_thread_sync_t.NIXL_THREAD_SYNC_RW
        )
        self._agent: Any = _new_agent(api, name, config, progress_delay_us)
        if not self._agent.backends:
            raise RuntimeError(f"none of the NIXL backends {backends} could start")
        self.name = name
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="nixl")
        self._registered: dict[int, Any] = {}
        self._peers: set[str] = set()
        self._abandoned: list[_Abandoned] = []

    @classmethod
    async def create(
        cls, name: str, backends: tuple[str, ...], threads: int, progress_delay_us: int
    ) -> NixlAgent:
        """Create the agent off the event loop (UCX start-up takes a noticeable fraction of a second)."""
        api = load_api()
        if api is None:
            raise RuntimeError("no NIXL wheel installed (nixl-cu13, nixl-cu12 or nixl)")
        return await asyncio.to_thread(cls, api, name, backends, threads, progress_delay_us)

    # -- memory -----------------------------------------------------------------------------------

    def register(self, tensor: torch.Tensor) -> None:
        """Register a contiguous tensor's memory (DRAM or VRAM) with every capable backend."""
        self._registered[tensor.data_ptr()] = self._agent.register_memory(tensor)

    def deregister(self, tensor: torch.Tensor) -> None:
        descs = self._registered.pop(tensor.data_ptr(), None)
        if descs is not None:
            self._agent.deregister_memory(descs)

    @property
    def registered_count(self) -> int:
        return len(self._registered)

    def metadata(self) -> bytes:
        """This agent's metadata (connection info and registered memory), for peers to load."""
        return bytes(self._agent.get_agent_metadata())

    # -- peers ------------------------------------------------------------------------------------

    async def add_peer(self, metadata: bytes, limit_s: float) -> str:
        """Load a remote agent's metadata (connects); returns its NIXL name."""
        try:
            async with asyncio.timeout(limit_s):
                loaded = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._agent.add_remote_agent, metadata
                )
        except TimeoutError:
            raise TransferError("timeout", "connecting to a NIXL peer timed out") from None
        except Exception as exc:
            raise _as_error(exc, "a new peer") from exc
        name = loaded.decode() if isinstance(loaded, bytes) else str(loaded)
        self._peers.add(name)
        return name

    def remove_peer(self, name: str) -> None:
        if name in self._peers:
            self._peers.discard(name)
            try:
                self._agent.remove_remote_agent(name)
            except Exception as exc:
                log.debug("removing NIXL peer %s: %s", name, exc)

    # -- transfers --------------------------------------------------------------------------------

    async def read(
        self,
        local: list[Region],
        local_mem: str,
        remote: list[Region],
        remote_mem: str,
        peer: str,
        notif: bytes,
        deadline: float,
        target: Target,
    ) -> None:
        """READ `remote` (on `peer`) into `local`, then deliver `notif` to the peer.

        Raises TransferError. If the READ must be given up while in flight, `target.defer()` is
        called and `target.release()` follows once NIXL no longer touches the memory.
        """
        agent = self._agent
        try:
            handle = agent.initialize_xfer(
                "READ",
                agent.get_xfer_descs(local, local_mem),
                agent.get_xfer_descs(remote, remote_mem),
                peer,
                notif,
            )
        except Exception as exc:
            raise _as_error(exc, peer) from exc
        post: asyncio.Future[str] | None = None
        state = "PROC"
        try:
            if sum(length for _, length, _ in local) >= THREAD_POST_BYTES:
                post = asyncio.get_running_loop().run_in_executor(self._executor, agent.transfer, handle)
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    state = await asyncio.shield(post)
            else:
                state = agent.transfer(handle)
            state = await _wait(agent, handle, state, deadline)
        except TimeoutError:
            raise TransferError("timeout", f"NIXL READ from {peer} did not finish in time") from None
        except TransferError:
            raise
        except Exception as exc:
            state = "ERR"
            raise _as_error(exc, peer) from exc
        finally:
            if state == "PROC":
                target.defer()
                self._abandoned.append(_Abandoned(handle, post, target, time.monotonic()))
            else:
                _release_handle(handle)
        if state != "DONE":
            raise TransferError("failed", f"NIXL READ from {peer} ended in state {state}")

    def notify(self, peer: str, message: bytes) -> None:
        self._agent.send_notif(peer, message)

    def notifications(self) -> list[bytes]:
        """Notifications received since the last call, from every peer."""
        return [message for messages in self._agent.get_new_notifs().values() for message in messages]

    @property
    def abandoned(self) -> int:
        return len(self._abandoned)

    def reap(self, force: bool = False) -> None:
        """Release abandoned READs that NIXL has finished (or, past the grace period, by force)."""
        still: list[_Abandoned] = []
        now = time.monotonic()
        for item in self._abandoned:
            if item.post is not None:
                if not item.post.done():
                    still.append(item)
                    continue
                if not item.post.cancelled() and item.post.exception() is not None:
                    log.debug("abandoned NIXL post failed: %s", item.post.exception())
            try:
                state = self._agent.check_xfer_state(item.handle)
            except Exception:
                state = "ERR"
            if state == "PROC" and not force and now - item.since < ABANDON_GRACE_S:
                still.append(item)
                continue
            if state == "PROC":
                log.warning("releasing a NIXL READ still in flight after %.0f s", now - item.since)
            if _release_handle(item.handle) or state != "PROC":
                item.target.release()
        self._abandoned = still

    async def close(self, grace_s: float = 5.0) -> None:
        """Wait (bounded) for abandoned READs, deregister all memory, drop peers and the agent."""
        deadline = time.monotonic() + grace_s
        while self._abandoned and time.monotonic() < deadline:
            self.reap()
            await asyncio.sleep(0.01)
        self.reap(force=True)
        for descs in self._registered.values():
            try:
                self._agent.deregister_memory(descs)
            except Exception as exc:
                log.warning("deregistering NIXL memory: %s", exc)
        self._registered.clear()
        for peer in list(self._peers):
            self.remove_peer(peer)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._agent = None


async def _wait(agent: Any, handle: Any, state: str, deadline: float) -> str:
    """Poll a posted transfer until it leaves PROC: spin briefly (a small READ completes within
    microseconds), then yield to the event loop, then sleep (asyncio's timers have ~1 ms grain)."""
    started = time.monotonic()
    while state == "PROC":
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError
        if now - started >= _SPIN_S:
            await asyncio.sleep(0 if now - started < _YIELD_S else _MAX_POLL_SLEEP_S)
        state = agent.check_xfer_state(handle)
    return state


_construct_lock = threading.Lock()


class _Bindings(types.ModuleType):
    """NIXL's bindings module, except that agents get a progress-thread delay."""

    def __init__(self, real: Any, delay_us: int) -> None:
        super().__init__(real.__name__)
        self._real = real
        self._delay_us = delay_us

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def nixlAgent(self, name: str, config: Any) -> Any:
        config.pthrDelay = self._delay_us
        return self._real.nixlAgent(name, config)


def _new_agent(api: Any, name: str, config: Any, progress_delay_us: int) -> Any:
    """`api.nixl_agent(name, config)` with the progress thread's idle delay set.

    The Python wrapper hard-codes a delay of 0, which makes UCX's progress thread spin on a whole
    core even when idle; with a delay it waits for events (up to the delay) instead. The wrapper
    offers no parameter, so its bindings module is swapped for the duration of the constructor.
    """
    real = getattr(api, "nixlBind", None)
    if real is None or progress_delay_us <= 0:
        return api.nixl_agent(name, config)
    with _construct_lock:
        api.nixlBind = _Bindings(real, progress_delay_us)
        try:
            return api.nixl_agent(name, config)
        finally:
            api.nixlBind = real


def _release_handle(handle: Any) -> bool:
    try:
        handle.release()
    except Exception as exc:
        log.debug("releasing a NIXL transfer handle: %s", exc)
        return False
    return True


def _as_error(exc: Exception, peer: str) -> TransferError:
    kind = type(exc).__name__
    if "Disconnect" in kind:
        return TransferError("owner_gone", f"NIXL peer {peer} disconnected")
    return TransferError("failed", f"NIXL error with {peer}: {kind}: {exc}")
