"""`file://` media: read only under configured root directories (off when none is configured).

The path is made canonical (`..` removed, every symlink followed) before it is compared with the
canonical roots, so traversal and symlinks that lead out of a root are refused. After opening, the
opened file's own path (from /proc/self/fd on Linux) is checked again, which closes the window in
which a path component could be swapped for a symlink between the check and the open.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from queues.errors import ClientError
from queues.media.errors import bad_request, too_large, undecodable

_PROC_FD = Path("/proc/self/fd")


class FileSource:
    def __init__(self, roots: Sequence[str]) -> None:
        self._roots = tuple(Path(os.path.realpath(root)) for root in roots)

    @property
    def enabled(self) -> bool:
        return bool(self._roots)

    def resolve(self, url: str) -> Path:
        """The canonical path `url` names, if it lies under an allowed root; ClientError 400 otherwise."""
        if not self._roots:
            raise bad_request("unsupported_scheme", "file:// media URLs are disabled on this server")
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise bad_request("invalid_file_url", "a file:// URL must not name a host")
        path = unquote(parts.path)
        if "\x00" in path or not os.path.isabs(path):
            raise bad_request("invalid_file_url", "a file:// URL must hold an absolute path")
        real = Path(os.path.realpath(path))
        if not self._inside_roots(real):
            raise bad_request(
                "file_not_allowed", f"the file {path!r} is outside the directories media may be read from"
            )
        return real

    def check(self, url: str, max_bytes: int) -> Path:
        """`resolve`, then check that the file exists, is a regular file and is within `max_bytes`."""
        path = self.resolve(url)
        try:
            info = path.stat()
        except OSError:
            raise bad_request(
                "file_not_found", f"the file {unquote(urlsplit(url).path)!r} does not exist"
            ) from None
        _check_stat(info, max_bytes)
        return path

    def read(self, url: str, max_bytes: int) -> bytes:
        """Read the file `url` names (blocking; run it in a thread)."""
        path = self.check(url, max_bytes)
        try:
            # O_NONBLOCK: a path swapped for a FIFO after the check must not hang the open.
            flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(path, flags)
        except OSError:
            raise bad_request("file_not_found", "the file could not be opened") from None
        with os.fdopen(fd, "rb") as handle:
            opened = _PROC_FD / str(fd)
            if opened.exists() and not self._inside_roots(Path(os.path.realpath(opened))):
                raise bad_request(
                    "file_not_allowed", "the file is outside the directories media may be read from"
                )
            _check_stat(os.fstat(fd), max_bytes)
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        return data

    def _inside_roots(self, path: Path) -> bool:
        return any(path.is_relative_to(root) for root in self._roots)


def _check_stat(info: os.stat_result, max_bytes: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise bad_request("file_not_found", "the file URL does not name a regular file")
    if info.st_size > max_bytes:
        raise _too_large(max_bytes)
    if info.st_size == 0:
        raise undecodable("empty_media", "the file is empty (0 bytes)")


def _too_large(max_bytes: int) -> ClientError:
    return too_large("media_too_large", f"the file is larger than the {max_bytes}-byte limit")
