"""Shared-memory send buffers: mapping, owner liveness through the file lock, sweeping leftovers."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from queues.transfer import shm


def test_a_reader_maps_the_owners_buffer(tmp_path: Path) -> None:
    owner = shm.SharedBuffer.create(str(tmp_path), "enc/0", 11, 8192, 4)
    assert Path(owner.path).name == f"{shm.PREFIX}enc_0-11"
    owner.data[:5] = 7
    owner.slots[0, 2] = 42
    reader = shm.SharedBuffer.open(owner.path, 11, 4, 8192)
    assert reader.data[:5].tolist() == [7] * 5 and int(reader.slots[0, 2]) == 42
    reader.slots[1, 2] = 42
    assert int(owner.slots[1, 2]) == 42
    assert reader.owner_alive()
    owner.close(unlink=True)
    assert not reader.owner_alive()
    reader.close()
    assert not os.path.exists(owner.path)


def test_a_mapping_of_another_epoch_or_layout_is_refused(tmp_path: Path) -> None:
    owner = shm.SharedBuffer.create(str(tmp_path), "w", 1, 4096, 2)
    with pytest.raises(ValueError):
        shm.SharedBuffer.open(owner.path, 2, 2, 4096)
    with pytest.raises(ValueError):
        shm.SharedBuffer.open(owner.path, 1, 2, 8192)
    owner.close(unlink=True)
    with pytest.raises(FileNotFoundError):
        shm.SharedBuffer.open(owner.path, 1, 2, 4096)


def test_sweep_removes_only_files_whose_owner_is_gone(tmp_path: Path) -> None:
    live = shm.SharedBuffer.create(str(tmp_path), "live", 1, 4096, 2)
    dead = tmp_path / f"{shm.PREFIX}dead-1"
    dead.write_bytes(b"\0" * 64)
    young_staging = tmp_path / f"{shm.PREFIX}new-1.new"
    young_staging.write_bytes(b"")
    other = tmp_path / "someone-else"
    other.write_bytes(b"")
    assert shm.sweep(str(tmp_path)) == [str(dead)]
    assert os.path.exists(live.path) and young_staging.exists() and other.exists()
    live.close(unlink=True)


def test_a_locked_file_is_not_swept(tmp_path: Path) -> None:
    path = tmp_path / f"{shm.PREFIX}locked-1"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert shm.sweep(str(tmp_path)) == []
    finally:
        os.close(fd)
    assert shm.sweep(str(tmp_path)) == [str(path)]


def test_host_id_names_this_boot() -> None:
    assert shm.host_id() == shm.host_id() and "/" in shm.host_id()
