"""SimStorage: a quota over a real directory that fills and fails."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from hw.errors import StorageFull, StorageReadOnly, StorageWriteError
from hw.storage_sim import SimStorage


def test_free_space_counts_files_and_fill(tmp_path: Path) -> None:
    """free = quota − bytes under root − filled."""
    storage = SimStorage(tmp_path / "data", 10_000)
    (storage.root / "sub").mkdir()
    (storage.root / "sub/state.json").write_bytes(b"x" * 1000)
    storage.fill(2000)
    assert storage.read().free_bytes == 7000
    storage.free(5000)
    assert storage.read().free_bytes == 9000
    assert storage.read().total_bytes == 10_000


def test_write_beyond_quota_is_refused_before_writing(tmp_path: Path) -> None:
    """The write that would cross the quota raises StorageFull and writes nothing."""
    storage = SimStorage(tmp_path, 1000)
    with storage.open_append(Path("seg.bin")) as out:
        out.write(b"a" * 600)
        with pytest.raises(StorageFull):
            out.write(b"b" * 401)
        out.write(b"c" * 400)  # exactly fits
        with pytest.raises(StorageFull):
            out.write(b"d")
    assert (tmp_path / "seg.bin").read_bytes() == b"a" * 600 + b"c" * 400
    assert storage.read().free_bytes == 0
    assert [e.what for e in storage.history] == ["refused", "refused"]


def test_fill_mid_write(tmp_path: Path) -> None:
    """Space taken by others makes the next write fail; freeing it lets writing resume."""
    storage = SimStorage(tmp_path, 10_000)
    with storage.open_append(Path("seg.bin")) as out:
        out.write(b"x" * 1000)
        storage.fill(8500)
        with pytest.raises(StorageFull):
            out.write(b"y" * 1000)
        storage.free(8500)
        out.write(b"y" * 1000)
    assert (tmp_path / "seg.bin").stat().st_size == 2000


def test_injected_eio_fails_write_and_fsync(tmp_path: Path) -> None:
    """fail_writes(EIO): write and fsync raise StorageWriteError; the file is unchanged."""
    storage = SimStorage(tmp_path, 10_000)
    out = storage.open_append(Path("seg.bin"))
    out.write(b"good")
    storage.fail_writes(errno.EIO)
    with pytest.raises(StorageWriteError) as caught:
        out.write(b"bad")
    assert caught.value.errno == errno.EIO
    with pytest.raises(StorageWriteError):
        out.fsync()
    out.close()
    assert (tmp_path / "seg.bin").read_bytes() == b"good"
    with pytest.raises(StorageWriteError):
        storage.open_append(Path("next.bin"))
    storage.fail_writes(None)
    with storage.open_append(Path("next.bin")) as healed:
        healed.write(b"ok")
        healed.fsync()


def test_injected_erofs_looks_like_a_read_only_remount(tmp_path: Path) -> None:
    """fail_writes(EROFS): read() says read-only and writes raise StorageReadOnly."""
    storage = SimStorage(tmp_path, 10_000)
    out = storage.open_append(Path("seg.bin"))
    storage.fail_writes(errno.EROFS)
    assert storage.read().read_only is True
    with pytest.raises(StorageReadOnly):
        out.write(b"x")
    out.close()


def test_invalid_construction(tmp_path: Path) -> None:
    """A quota must be positive."""
    with pytest.raises(ValueError):
        SimStorage(tmp_path, 0)


def test_usage_cache_is_exact_near_the_limit(tmp_path: Path) -> None:
    """Bytes written behind the disk's back are seen at once when a write nears the quota."""
    now = [0.0]
    storage = SimStorage(tmp_path, 10_000, rescan_s=3600, exact_margin_bytes=8_000,
                         clock=lambda: now[0])
    with storage.open_append(Path("seg.bin")) as out:
        out.write(b"a" * 1000)  # far from the limit: the cached walk is used
        (tmp_path / "state.json").write_bytes(b"s" * 7500)  # not through the disk
        with pytest.raises(StorageFull):
            out.write(b"b" * 1600)  # would fit by the stale figure, not by the real one
        out.write(b"c" * 1500)
    assert storage.read().free_bytes == 0


def test_usage_cache_tops_up_with_own_writes(tmp_path: Path) -> None:
    """Between walks the estimate grows by what the disk's own files wrote."""
    now = [0.0]
    storage = SimStorage(tmp_path, 100_000, rescan_s=3600, exact_margin_bytes=0,
                         clock=lambda: now[0])
    with storage.open_append(Path("seg.bin")) as out:
        for _ in range(99):
            out.write(b"x" * 1000)
        with pytest.raises(StorageFull):
            out.write(b"x" * 1001)
    assert (tmp_path / "seg.bin").stat().st_size == 99_000


def test_excluded_top_level_folders_are_not_on_the_simulated_disk(tmp_path: Path) -> None:
    """The loopback station's folder (another machine in real life) takes no device space;
    a folder of the same name deeper down, on the device's disk, still does."""
    (tmp_path / "station").mkdir()
    (tmp_path / "station" / "store.bin").write_bytes(b"s" * 5000)
    (tmp_path / "rec" / "station").mkdir(parents=True)
    (tmp_path / "rec" / "station" / "seg.age").write_bytes(b"d" * 700)
    assert SimStorage(tmp_path, 10_000, exclude=("station",)).used_bytes() == 700
    assert SimStorage(tmp_path, 10_000).used_bytes() == 5700
