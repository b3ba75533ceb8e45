"""FsStorage and AppendFile on a real small filesystem."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from hw.errors import StorageFull, StorageReadOnly, StorageWriteError
from hw.storage_fs import AppendFile, FsStorage, classify_os_error

pytestmark = pytest.mark.timeout(60)


def test_statvfs_capacity(small_fs: Path) -> None:
    """An 8 MiB tmpfs reports 8 MiB total, nearly all free, writable."""
    reading = FsStorage(small_fs).read()
    assert reading.total_bytes == 8 * 1024 * 1024
    assert reading.free_bytes > 7 * 1024 * 1024
    assert reading.read_only is False


def test_write_that_does_not_fit_leaves_the_file_as_it_was(small_fs: Path) -> None:
    """Filling the disk: the last write raises StorageFull and the file keeps its old length."""
    storage = FsStorage(small_fs)
    chunk = os.urandom(300_000)  # not a divisor of 8 MiB: the last write is partial
    with storage.open_append(Path("segment.bin")) as out:
        written = 0
        with pytest.raises(StorageFull) as caught:
            while True:
                out.write(chunk)
                written += len(chunk)
        out.fsync()
    assert caught.value.errno == errno.ENOSPC
    assert (small_fs / "segment.bin").stat().st_size == written
    assert (small_fs / "segment.bin").read_bytes()[-len(chunk):] == chunk
    assert storage.read().free_bytes < len(chunk)


def test_read_only_remount_is_detected(small_fs: Path) -> None:
    """After `mount -o remount,ro` the reading says so and a write raises StorageReadOnly."""
    storage = FsStorage(small_fs)
    with storage.open_append(small_fs / "a.bin") as out:
        out.write(b"before")
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        assert storage.read().read_only is True
        with pytest.raises(StorageReadOnly):
            storage.open_append(small_fs / "b.bin")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)


def test_fs_storage_on_any_directory(tmp_path: Path) -> None:
    """FsStorage works on a plain directory; relative paths go under root; writes are whole."""
    storage = FsStorage(tmp_path)
    assert storage.root == tmp_path
    with storage.open_append(Path("x.bin")) as out:
        assert out.write(memoryview(b"abcdef")[2:]) == 4
        out.write(bytearray(b"gh"))
        out.fsync()
    assert (tmp_path / "x.bin").read_bytes() == b"cdefgh"
    with pytest.raises(StorageWriteError):
        FsStorage(tmp_path / "missing").read()


def test_append_file_open_failure_is_classified(tmp_path: Path) -> None:
    """Opening under a missing directory is a StorageWriteError naming the path."""
    with pytest.raises(StorageWriteError, match="missing"):
        AppendFile(tmp_path / "missing" / "x.bin")


@pytest.mark.parametrize(("code", "kind"), [
    (errno.ENOSPC, StorageFull), (errno.EDQUOT, StorageFull), (errno.EFBIG, StorageFull),
    (errno.EROFS, StorageReadOnly), (errno.EIO, StorageWriteError),
    (errno.ENODEV, StorageWriteError),
])
def test_classify_os_error(code: int, kind: type[Exception]) -> None:
    """Each errno maps to its storage error, keeps an errno and names the file."""
    error = classify_os_error(OSError(code, os.strerror(code), "/data/seg.mp4.age"))
    assert type(error) is kind
    assert isinstance(error, OSError)
    assert "/data/seg.mp4.age" in str(error)
    if kind is StorageWriteError:
        assert error.errno == code


def test_classify_passes_storage_errors_through() -> None:
    """An error that is already classified is returned unchanged."""
    original = StorageFull("x")
    assert classify_os_error(original) is original
