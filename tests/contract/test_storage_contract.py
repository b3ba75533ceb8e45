"""The Storage contract, run against every implementation (see hw/storage.py).

FsStorage on a plain directory, on a 2 MiB tmpfs and on a loop-mounted 8 MiB ext4 image (where
mounting is permitted), and the SimStorage quota.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hw.errors import StorageFull
from hw.storage import Storage, StorageReading
from hw.storage_fs import FsStorage
from hw.storage_sim import SimStorage

pytestmark = pytest.mark.timeout(60)


@dataclass
class Disk:
    storage: Storage
    small: bool  # small enough to fill in a test


def _mount(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount {what} here: {done.stderr.strip() or done.returncode}")


@pytest.fixture(params=["fs-dir", "fs-tmpfs", "fs-ext4-loop", "sim"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    if request.param == "fs-dir":
        yield Disk(FsStorage(tmp_path), small=False)
        return
    if request.param == "sim":
        yield Disk(SimStorage(tmp_path / "sim", 2 * 1024 * 1024), small=True)
        return
    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    if request.param == "fs-tmpfs":
        _mount(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], "a tmpfs")
    else:
        if shutil.which("mkfs.ext4") is None:
            pytest.skip("mkfs.ext4 is not installed")
        image = tmp_path / "ext4.img"
        with image.open("wb") as f:
            f.truncate(8 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
        _mount(["mount", "-o", "loop", str(image), str(mountpoint)], "a loop device")
    try:
        yield Disk(FsStorage(mountpoint), small=True)
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_is_a_storage(disk: Disk) -> None:
    """Every implementation satisfies the Protocol and reads a sane capacity."""
    assert isinstance(disk.storage, Storage)
    reading = disk.storage.read()
    assert isinstance(reading, StorageReading)
    assert 0 <= reading.free_bytes <= reading.total_bytes
    assert reading.read_only is False


def test_open_append_appends(disk: Disk) -> None:
    """open_append keeps existing bytes and adds new ones at the end."""
    path = disk.storage.root / "segment.bin"
    with disk.storage.open_append(path) as out:
        out.write(b"first;")
    with disk.storage.open_append(path) as out:
        out.write(b"second")
    assert path.read_bytes() == b"first;second"


def test_writes_use_up_free_space(disk: Disk) -> None:
    """Free space falls by (at least) what was written."""
    before = disk.storage.read().free_bytes
    with disk.storage.open_append(disk.storage.root / "grow.bin") as out:
        out.write(os.urandom(256 * 1024))
    assert disk.storage.read().free_bytes <= before - 256 * 1024


def test_full_disk_raises_storage_full_and_keeps_the_file(disk: Disk) -> None:
    """A write beyond free space raises StorageFull (ENOSPC) and leaves the file as it was."""
    if not disk.small:
        pytest.skip("too big to fill in a test")
    path = disk.storage.root / "fill.bin"
    chunk = os.urandom(100_000)
    with disk.storage.open_append(path) as out:
        written = 0
        with pytest.raises(StorageFull):
            while written < 64 * 1024 * 1024:
                out.write(chunk)
                written += len(chunk)
    assert path.stat().st_size == written
    assert path.read_bytes()[-len(chunk):] == chunk
