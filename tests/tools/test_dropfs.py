"""The power-cut file system keeps exactly what was synced (see tests/tools/dropfs.py's model)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.atomic import atomic_write, fsync_dir
from tests.tools.dropfs import DroppingFs

pytestmark = pytest.mark.skipif(
    not (os.access("/dev/fuse", os.R_OK | os.W_OK) and shutil.which("fusermount3")),
    reason="needs /dev/fuse and fuse3 (scripts/setup.sh installs it)")
pytest.importorskip("mfusepy")


@pytest.fixture
def dfs(tmp_path: Path) -> Iterator[DroppingFs]:
    fs = DroppingFs(tmp_path / "disk", tmp_path / "mnt")
    fs.mount()
    try:
        yield fs
    finally:
        if fs.mounted:
            fs.cut()


def _write(path: Path, data: bytes, *, sync: bool, flags: int = os.O_CREAT | os.O_WRONLY) -> None:
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _remount(fs: DroppingFs) -> Path:
    fs.cut()
    fs.mount()
    return fs.mountpoint


def test_unsynced_writes_are_gone_after_a_cut(dfs: DroppingFs) -> None:
    """An append without fsync vanishes; a new file in a synced directory comes back empty."""
    mnt, disk = dfs.mountpoint, dfs.backing
    _write(mnt / "log", b"durable", sync=True)
    fsync_dir(mnt)
    _write(mnt / "log", b"+volatile", sync=False, flags=os.O_WRONLY | os.O_APPEND)
    _write(mnt / "new", b"never synced", sync=False)
    fsync_dir(mnt)  # the name is durable, its data is not
    assert (mnt / "log").read_bytes() == b"durable+volatile"  # live view sees everything
    dfs.cut()
    assert (disk / "log").read_bytes() == b"durable"
    assert (disk / "new").read_bytes() == b""


def test_synced_data_and_entries_survive(dfs: DroppingFs) -> None:
    """fsync(file) + fsync(dir) keeps the data, in nested directories too; remounting shows it."""
    mnt = dfs.mountpoint
    (mnt / "a" / "b").mkdir(parents=True)
    _write(mnt / "a" / "b" / "f", b"x" * 300_000, sync=True)
    for d in (mnt / "a" / "b", mnt / "a", mnt):
        fsync_dir(d)
    mnt = _remount(dfs)
    assert (mnt / "a" / "b" / "f").read_bytes() == b"x" * 300_000
    assert (dfs.backing / "a" / "b" / "f").stat().st_size == 300_000


def test_fsync_of_a_file_does_not_make_its_name_durable(dfs: DroppingFs) -> None:
    """A created and fsynced file whose directory was not fsynced is gone after the cut."""
    mnt = dfs.mountpoint
    _write(mnt / "orphan", b"data", sync=True)
    (mnt / "sub").mkdir()
    fsync_dir(mnt / "sub")  # the directory's own entry in the root is still volatile
    dfs.cut()
    assert sorted(os.listdir(dfs.backing)) == []


def test_rename_is_atomic_at_the_directory_fsync(dfs: DroppingFs) -> None:
    """Replacing a file by rename: before the directory fsync the old file, after it the new
    one -- never a missing or empty file; an unsynced unlink comes back."""
    mnt = dfs.mountpoint
    atomic_write(mnt / "state.json", b"old")
    _write(mnt / "state.json.tmp", b"new", sync=True)
    os.replace(mnt / "state.json.tmp", mnt / "state.json")
    assert (mnt / "state.json").read_bytes() == b"new"
    mnt = _remount(dfs)
    assert sorted(os.listdir(mnt)) == ["state.json"]
    assert (mnt / "state.json").read_bytes() == b"old"
    atomic_write(mnt / "state.json", b"new")  # rename + fsync(dir)
    _write(mnt / "gone-soon", b"g", sync=True)
    fsync_dir(mnt)
    (mnt / "gone-soon").unlink()
    mnt = _remount(dfs)
    assert (mnt / "state.json").read_bytes() == b"new"
    assert (mnt / "gone-soon").read_bytes() == b"g"


def test_truncation_follows_the_same_rule(dfs: DroppingFs) -> None:
    """A shrink is a change of data: durable only once fsynced."""
    mnt = dfs.mountpoint
    _write(mnt / "seg", b"0123456789", sync=True)
    fsync_dir(mnt)
    os.truncate(mnt / "seg", 4)
    mnt = _remount(dfs)
    assert (mnt / "seg").read_bytes() == b"0123456789"
    with open(mnt / "seg", "r+b") as f:
        f.truncate(4)
        f.seek(0, os.SEEK_END)
        f.write(b"AB")
        f.flush()
        os.fsync(f.fileno())
    mnt = _remount(dfs)
    assert (mnt / "seg").read_bytes() == b"0123AB"


def test_a_clean_stop_keeps_everything(dfs: DroppingFs) -> None:
    """``stop`` is a clean shutdown (sync; umount), not a power cut."""
    _write(dfs.mountpoint / "f", b"kept", sync=False)
    dfs.stop()
    assert (dfs.backing / "f").read_bytes() == b"kept"


def test_a_unix_socket_on_the_mount_answers(dfs: DroppingFs) -> None:
    """The agent's control socket lives in its data directory: binding and connecting work."""
    path = dfs.mountpoint / "ctl.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        server.listen(1)
        client.connect(str(path))
        conn, _ = server.accept()
        client.sendall(b"status")
        assert conn.recv(16) == b"status"
        conn.close()
    finally:
        client.close()
        server.close()
    assert path.is_socket()
