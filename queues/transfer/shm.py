"""Same-host shared-memory send buffers: created by an owner, mapped by readers on the same host.

One file per owner incarnation in `shm_dir` (tmpfs), laid out as a header, the slot table
(int64 `[2, n_slots]`: row 0 the live tag of each slot, row 1 the tag a reader reported done) and the
data area. The owner holds an exclusive `flock` on the file for as long as it lives, so a reader can
tell a dead owner from a live one and any process can sweep files left by a killed owner, across PID
namespaces. Files are created under a temporary name and renamed once locked, so a sweep never sees
an unlocked live file (staging files are swept only once they are a minute old).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import re
import socket
import struct
import time
from pathlib import Path

import torch

from queues.transfer.layout import align_up

log = logging.getLogger(__name__)

PREFIX = "triptych-transfer-"
_MAGIC = b"TTXSHM01"
_HEADER = struct.Struct("<8sqqq")  # magic, epoch, n_slots, data_nbytes
_SLOTS_AT = 64


def host_id() -> str:
    """Identifies this machine boot: equal ids mean a file in shm_dir is reachable."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def path_for(shm_dir: str, name: str, epoch: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return os.path.join(shm_dir, f"{PREFIX}{safe}-{epoch}")


def data_offset(n_slots: int) -> int:
    return align_up(_SLOTS_AT + 16 * n_slots, mmap.PAGESIZE)


class SharedBuffer:
    """A mapped shared-memory send buffer: `data` (uint8) and `slots` (int64 [2, n]) views."""

    def __init__(self, path: str, fd: int, mapping: mmap.mmap, n_slots: int, data_nbytes: int) -> None:
        self.path = path
        self._fd = fd
        self._mapping: mmap.mmap | None = mapping
        self.slots = torch.frombuffer(mapping, dtype=torch.int64, count=2 * n_slots, offset=_SLOTS_AT).view(
            2, n_slots
        )
        self.data = torch.frombuffer(
            mapping, dtype=torch.uint8, count=data_nbytes, offset=data_offset(n_slots)
        )

    @classmethod
    def create(cls, shm_dir: str, name: str, epoch: int, data_nbytes: int, n_slots: int) -> SharedBuffer:
        """Create, reserve (so a full tmpfs fails here, not with SIGBUS later), lock and map."""
        path = path_for(shm_dir, name, epoch)
        staging = f"{path}.new"
        size = data_offset(n_slots) + data_nbytes
        fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(fd, 0, size)
            mapping = mmap.mmap(fd, size)
            mapping[: _HEADER.size] = _HEADER.pack(_MAGIC, epoch, n_slots, data_nbytes)
            os.rename(staging, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(staging)
            raise
        return cls(path, fd, mapping, n_slots, data_nbytes)

    @classmethod
    def open(cls, path: str, epoch: int, n_slots: int, data_nbytes: int) -> SharedBuffer:
        """Map an owner's buffer; raises FileNotFoundError once the owner closed, ValueError on a
        header that does not match the published metadata."""
        fd = os.open(path, os.O_RDWR)
        try:
            size = data_offset(n_slots) + data_nbytes
            if os.fstat(fd).st_size < size:
                raise ValueError(f"{path} is smaller than its published size")
            mapping = mmap.mmap(fd, size)
            if _HEADER.unpack_from(mapping) != (_MAGIC, epoch, n_slots, data_nbytes):
                mapping.close()
                raise ValueError(f"{path} does not hold epoch {epoch} with the published layout")
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, mapping, n_slots, data_nbytes)

    def owner_alive(self) -> bool:
        """Whether the owner still holds its lock (call on a reader's mapping)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def close(self, unlink: bool = False) -> None:
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        mapping, self._mapping = self._mapping, None
        if mapping is None:
            return
        del self.slots, self.data
        try:
            mapping.close()
        except BufferError:
            # A tensor still views the mapping; it is unmapped when that tensor is collected.
            log.debug("shared buffer %s still viewed at close; unmapped later", self.path)
        os.close(self._fd)


def sweep(shm_dir: str) -> list[str]:
    """Remove buffers whose owner died without closing (its lock is free); returns their paths."""
    removed: list[str] = []
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(shm_dir, name)
        if not name.startswith(PREFIX) or (name.endswith(".new") and not _older_than(path, 60.0)):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
        os.close(fd)
    return removed


def _older_than(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except OSError:
        return False
