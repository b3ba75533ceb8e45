"""A FUSE file system that forgets what was not synced when the power is cut.

SIGKILL keeps the page cache: a killed process's writes still reach the disk, so a kill test
says nothing about a power cut. This file system sits over a *backing directory* (the disk)
and keeps every change that was not made durable in a volatile layer; ``cut`` throws that
layer away and leaves the backing directory exactly as a power cut would leave the disk.

Durability model -- ext4 ``data=ordered`` without ``auto_da_alloc``, read conservatively (what
POSIX promises, nothing a particular kernel happens to do besides):

* a file's data and size become durable at ``fsync``/``fdatasync`` of that file, and only
  then. A file whose name is durable but whose data never was comes back empty (delayed
  allocation: the name was committed, no block was allocated);
* a directory's entries (create, mkdir, symlink, link, unlink, rmdir, rename) become durable
  at ``fsync`` of that directory, all at once: after a cut a directory holds exactly the
  entries it had at its last fsync, so a rename *within* a directory is atomic (old target or
  new file, never neither). Fsyncing a file does not make its name durable;
* a rename *between* directories is two entry changes, each durable with its own directory's
  fsync (a cut in between may show both names or neither, as POSIX allows);
* a directory exists after the cut only if its entry is durable in its parent, up to the root;
* modes and times count as durable at once (the recorder does not rely on them); owners are
  not modelled; ``RENAME_NOREPLACE``/``RENAME_EXCHANGE`` are not supported (mfusepy drops the
  flags), nothing in the product uses them.

Layout: ``<backing>`` is the disk before the mount and after the cut. While mounted it must
not be touched: the file system keeps its state in ``<state>`` (default: a hidden sibling
``.<backing name>.dropfs``, on the same file system so files can be hard-linked) as
``durable/<ino>`` (a file's synced content; imported files are hard links to the backing
files) and ``live/<ino>`` (what processes see, copied on first write). At the cut the backing
directory is rebuilt from the durable namespace and the state directory is removed.

Control: the daemon prints ``ready`` once mounted and reads commands on stdin: ``cut`` (power
cut: drop unsynced changes, unmount, exit 0) or ``stop`` (clean shutdown: keep everything, as
``sync; umount``). End of stdin, SIGTERM/SIGINT or an unmount from outside also mean a cut.
Kill the processes using the mount first: a power cut stops them at the same instant.

    python -m tests.tools.dropfs BACKING MOUNTPOINT        # needs /dev/fuse, libfuse3, mfusepy

Threading: the FUSE loop runs single-threaded (``-s``); the stdin reader is a second thread.
Every operation and the cut take ``_Fs._mutex``; after a cut every operation fails with EIO.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = ["DroppingFs", "main"]

_T = TypeVar("_T")
_ROOT = 1


@dataclass
class _Inode:
    """One file, directory or symlink: its live state and what the disk holds of it."""

    ino: int
    kind: str  # "file" | "dir" | "symlink" | "special" (a socket or a FIFO)
    mode: int
    live: dict[str, int] = field(default_factory=dict)  # dir: entries processes see
    durable: dict[str, int] = field(default_factory=dict)  # dir: entries on the disk
    target: str = ""  # symlink
    type_bits: int = 0  # special: stat.S_IFSOCK or stat.S_IFIFO
    has_durable_data: bool = False  # file: durable/<ino> exists
    has_live_copy: bool = False  # file: live/<ino> exists (else the live data is durable/<ino>)
    dirty_from: int | None = None  # file: lowest offset changed since the last fsync
    live_links: int = 0
    durable_links: int = 0
    opens: int = 0
    fd: int | None = None  # file: one descriptor on the live data while open
    mtime_ns: int = field(default_factory=time.time_ns)


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class _Fs:
    """The file-system model and its FUSE operations (mfusepy calls these by name)."""

    use_ns = True

    def __init__(self, backing: Path, state: Path, *, on_ready: Callable[[], None]) -> None:
        self._mutex = threading.RLock()
        self.backing = backing
        self.state = state
        self._durable_dir = state / "durable"
        self._live_dir = state / "live"
        self._on_ready = on_ready
        self._inodes: dict[int, _Inode] = {}
        self._handles: dict[int, int] = {}  # fh -> ino
        self._next_ino = _ROOT
        self._next_fh = 1
        self.done = False
        self._import()

    # --- import and cut -----------------------------------------------------------------------
    def _new(self, kind: str, mode: int) -> _Inode:
        node = _Inode(self._next_ino, kind, mode & 0o7777)
        self._inodes[node.ino] = node
        self._next_ino += 1
        return node

    def _import(self) -> None:
        if self.state.exists():
            shutil.rmtree(self.state)
        self._durable_dir.mkdir(parents=True)
        self._live_dir.mkdir()
        root = self._new("dir", stat.S_IMODE(self.backing.stat().st_mode))
        self._import_dir(self.backing, root)

    def _import_dir(self, path: Path, node: _Inode) -> None:
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                child = self._new("dir", st.st_mode)
                self._import_dir(Path(entry.path), child)
            elif stat.S_ISLNK(st.st_mode):
                child = self._new("symlink", 0o777)
                child.target = os.readlink(entry.path)
            elif stat.S_ISREG(st.st_mode):
                child = self._new("file", st.st_mode)
                dst = self._durable_dir / str(child.ino)
                try:
                    os.link(entry.path, dst)
                except OSError:
                    shutil.copy2(entry.path, dst)
                child.has_durable_data = True
            elif stat.S_ISSOCK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                child = self._new("special", st.st_mode)
                child.type_bits = stat.S_IFMT(st.st_mode)
            else:
                continue  # device nodes: not on an evidence disk
            node.live[entry.name] = node.durable[entry.name] = child.ino
            child.live_links += 1
            child.durable_links += 1

    def cut(self, *, keep_unsynced: bool = False) -> None:
        """Freeze the file system and rebuild the backing directory from what is durable."""
        with self._mutex:
            if self.done:
                return
            if keep_unsynced:
                for node in self._inodes.values():
                    if node.kind == "file" and node.live_links:
                        self._sync_file(node)
                    node.durable = dict(node.live)
            self.done = True
            for node in self._inodes.values():
                if node.fd is not None:
                    os.close(node.fd)
                    node.fd = None
            for child in list(os.scandir(self.backing)):
                if child.is_dir(follow_symlinks=False):
                    shutil.rmtree(child.path)
                else:
                    os.unlink(child.path)
            self._materialize(self._inodes[_ROOT], self.backing, top=True)
            shutil.rmtree(self.state)

    def _materialize(self, node: _Inode, path: Path, *, top: bool = False) -> None:
        if node.kind == "dir":
            if not top:
                path.mkdir()
            for name, ino in sorted(node.durable.items()):
                self._materialize(self._inodes[ino], path / name)
            os.chmod(path, node.mode)
        elif node.kind == "symlink":
            os.symlink(node.target, path)
        elif node.kind == "special":
            os.mknod(path, node.type_bits | node.mode)
        elif node.has_durable_data:
            os.link(self._durable_dir / str(node.ino), path)
            os.chmod(path, node.mode)
        else:
            path.touch(mode=node.mode)  # name committed, data never synced: empty

    # --- helpers ------------------------------------------------------------------------------
    def _op(self, fn: Callable[[], _T]) -> _T:
        with self._mutex:
            if self.done:
                raise _err(errno.EIO)
            return fn()

    def _lookup(self, path: str) -> _Inode:
        node = self._inodes[_ROOT]
        for part in (p for p in path.split("/") if p):
            if node.kind != "dir":
                raise _err(errno.ENOTDIR)
            ino = node.live.get(part)
            if ino is None:
                raise _err(errno.ENOENT)
            node = self._inodes[ino]
        return node

    def _parent(self, path: str) -> tuple[_Inode, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self._lookup(head)
        if parent.kind != "dir":
            raise _err(errno.ENOTDIR)
        return parent, name

    def _node_for(self, path: str | None, fh: int | None) -> _Inode:
        if fh and fh in self._handles:
            return self._inodes[self._handles[fh]]
        if path is None:
            raise _err(errno.EBADF)
        return self._lookup(path)

    def _live_path(self, node: _Inode) -> Path:
        return (self._live_dir if node.has_live_copy else self._durable_dir) / str(node.ino)

    def _make_live_copy(self, node: _Inode) -> None:
        """Copy-on-write: the first change to an imported or synced file gets its own copy."""
        if node.has_live_copy:
            return
        src, dst = self._durable_dir / str(node.ino), self._live_dir / str(node.ino)
        if node.has_durable_data:
            shutil.copyfile(src, dst)
        else:
            dst.touch()
        node.has_live_copy = True
        if node.fd is not None:
            os.close(node.fd)
            node.fd = os.open(dst, os.O_RDWR)

    def _fd(self, node: _Inode, *, write: bool) -> int:
        if write:
            self._make_live_copy(node)
        if node.fd is None:
            node.fd = os.open(self._live_path(node), os.O_RDWR if node.has_live_copy
                              else os.O_RDONLY)
        return node.fd

    def _touch(self, node: _Inode) -> None:
        node.mtime_ns = time.time_ns()

    def _link(self, parent: _Inode, name: str, node: _Inode) -> None:
        old = parent.live.get(name)
        if old is not None:
            self._unref(self._inodes[old])
        parent.live[name] = node.ino
        node.live_links += 1
        self._touch(parent)

    def _unref(self, node: _Inode) -> None:
        node.live_links -= 1
        self._collect(node)

    def _collect(self, node: _Inode) -> None:
        """Forget an inode nobody can reach any more, live or after a cut."""
        if node.live_links or node.durable_links or node.opens or node.ino == _ROOT:
            return
        if node.fd is not None:
            os.close(node.fd)
        for d in (self._live_dir, self._durable_dir):
            (d / str(node.ino)).unlink(missing_ok=True)
        for ino in set(node.durable.values()):
            child = self._inodes[ino]
            child.durable_links -= 1
            self._collect(child)
        del self._inodes[node.ino]

    def _sync_file(self, node: _Inode) -> None:
        if not node.has_live_copy:
            return  # nothing changed since the import or the last sync
        src = self._fd(node, write=True)
        size = os.fstat(src).st_size
        dst_path = self._durable_dir / str(node.ino)
        if not node.has_durable_data:
            start = 0
        else:
            start = size if node.dirty_from is None else min(node.dirty_from, size)
        dst = os.open(dst_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.ftruncate(dst, size)
            pos = start
            while pos < size:
                chunk = os.pread(src, min(1 << 20, size - pos), pos)
                os.pwrite(dst, chunk, pos)
                pos += len(chunk)
        finally:
            os.close(dst)
        node.has_durable_data = True
        node.dirty_from = None

    def _attrs(self, node: _Inode) -> dict[str, Any]:
        attrs: dict[str, Any] = {"st_ino": node.ino, "st_uid": os.getuid(), "st_gid": os.getgid(),
                                 "st_mtime": node.mtime_ns, "st_ctime": node.mtime_ns,
                                 "st_atime": node.mtime_ns}
        if node.kind == "dir":
            attrs.update(st_mode=stat.S_IFDIR | node.mode, st_nlink=2, st_size=4096)
        elif node.kind == "symlink":
            attrs.update(st_mode=stat.S_IFLNK | 0o777, st_nlink=1, st_size=len(node.target))
        elif node.kind == "special":
            attrs.update(st_mode=node.type_bits | node.mode, st_nlink=1, st_size=0)
        else:
            st = os.stat(self._live_path(node)) if node.fd is None else os.fstat(node.fd)
            attrs.update(st_mode=stat.S_IFREG | node.mode, st_nlink=max(1, node.live_links),
                         st_size=st.st_size, st_blocks=st.st_blocks, st_mtime=st.st_mtime_ns,
                         st_ctime=st.st_ctime_ns, st_atime=st.st_atime_ns)
        return attrs

    # --- FUSE operations ----------------------------------------------------------------------
    def init(self, path: str) -> None:
        self._on_ready()

    def destroy(self, path: str) -> None:
        self.cut()

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        return self._op(lambda: self._attrs(self._node_for(path, fh)))

    def statfs(self, path: str) -> dict[str, int]:
        def run() -> dict[str, int]:
            sv = os.statvfs(self.state)
            return {k: getattr(sv, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree",
                                                "f_bavail", "f_files", "f_ffree", "f_namemax")}
        return self._op(run)

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        def run() -> list[tuple[str, dict[str, int], int]]:
            node = self._lookup(path)
            if node.kind != "dir":
                raise _err(errno.ENOTDIR)
            # a zero inode number would make readdir(3) skip the entry
            entries = [(".", node.ino), ("..", node.ino), *node.live.items()]
            return [(name, {"st_ino": ino, "st_mode": self._kind_bits(ino)}, 0)
                    for name, ino in entries]
        return self._op(run)

    def _kind_bits(self, ino: int) -> int:
        node = self._inodes[ino]
        bits = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "file": stat.S_IFREG}
        return bits.get(node.kind, node.type_bits)

    def readlink(self, path: str) -> str:
        def run() -> str:
            node = self._lookup(path)
            if node.kind != "symlink":
                raise _err(errno.EINVAL)
            return node.target
        return self._op(run)

    def mkdir(self, path: str, mode: int) -> None:
        def run() -> None:
            parent, name = self._parent(path)
            if name in parent.live:
                raise _err(errno.EEXIST)
            self._link(parent, name, self._new("dir", mode))
        self._op(run)

    def mknod(self, path: str, mode: int, dev: int) -> None:
        """Sockets (the agent's control socket) and FIFOs; device nodes are refused."""
        def run() -> None:
            if stat.S_IFMT(mode) not in (stat.S_IFSOCK, stat.S_IFIFO):
                raise _err(errno.EPERM)
            parent, name = self._parent(path)
            if name in parent.live:
                raise _err(errno.EEXIST)
            node = self._new("special", mode)
            node.type_bits = stat.S_IFMT(mode)
            self._link(parent, name, node)
        self._op(run)

    def symlink(self, target: str, source: str) -> None:
        def run() -> None:
            parent, name = self._parent(target)
            if name in parent.live:
                raise _err(errno.EEXIST)
            node = self._new("symlink", 0o777)
            node.target = source
            self._link(parent, name, node)
        self._op(run)

    def link(self, target: str, source: str) -> None:
        def run() -> None:
            node = self._lookup(source)
            if node.kind == "dir":
                raise _err(errno.EPERM)
            parent, name = self._parent(target)
            if name in parent.live:
                raise _err(errno.EEXIST)
            self._link(parent, name, node)
        self._op(run)

    def unlink(self, path: str) -> None:
        def run() -> None:
            parent, name = self._parent(path)
            node = self._lookup(path)
            if node.kind == "dir":
                raise _err(errno.EISDIR)
            del parent.live[name]
            self._touch(parent)
            self._unref(node)
        self._op(run)

    def rmdir(self, path: str) -> None:
        def run() -> None:
            parent, name = self._parent(path)
            node = self._lookup(path)
            if node.kind != "dir":
                raise _err(errno.ENOTDIR)
            if node.live:
                raise _err(errno.ENOTEMPTY)
            del parent.live[name]
            self._touch(parent)
            self._unref(node)
        self._op(run)

    def rename(self, old: str, new: str) -> None:
        def run() -> None:
            src, sname = self._parent(old)
            node = self._lookup(old)
            dst, dname = self._parent(new)
            existing = dst.live.get(dname)
            if existing == node.ino:
                return
            if existing is not None:
                target = self._inodes[existing]
                if target.kind == "dir" and (node.kind != "dir" or target.live):
                    raise _err(errno.ENOTEMPTY if node.kind == "dir" else errno.EISDIR)
                if target.kind != "dir" and node.kind == "dir":
                    raise _err(errno.ENOTDIR)
            del src.live[sname]
            node.live_links -= 1
            self._touch(src)
            self._link(dst, dname, node)
        self._op(run)

    def chmod(self, path: str | None, mode: int) -> None:
        def run() -> None:
            self._lookup(path or "").mode = mode & 0o7777
        self._op(run)

    def chown(self, path: str | None, uid: int, gid: int) -> None:
        self._op(lambda: None)

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> None:
        def run() -> None:
            node = self._lookup(path or "")
            node.mtime_ns = times[1] if times else time.time_ns()
            if node.kind == "file":
                os.utime(self._live_path(node), ns=times) if times else os.utime(
                    self._live_path(node))
        self._op(run)

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        def run() -> int:
            parent, name = self._parent(path)
            if name in parent.live:
                if flags & os.O_EXCL:
                    raise _err(errno.EEXIST)
                return self._open_node(self._lookup(path), flags)
            node = self._new("file", mode)
            (self._live_dir / str(node.ino)).touch()
            node.has_live_copy = True
            self._link(parent, name, node)
            return self._open_node(node, flags)
        return self._op(run)

    def open(self, path: str, flags: int) -> int:
        return self._op(lambda: self._open_node(self._lookup(path), flags))

    def _open_node(self, node: _Inode, flags: int) -> int:
        if node.kind == "dir":
            raise _err(errno.EISDIR)
        writable = bool(flags & (os.O_WRONLY | os.O_RDWR))
        node.opens += 1
        fd = self._fd(node, write=writable)
        if writable and flags & os.O_TRUNC and os.fstat(fd).st_size:
            os.ftruncate(fd, 0)
            node.dirty_from = 0
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = node.ino
        return fh

    def release(self, path: str | None, fh: int) -> None:
        def run() -> None:
            ino = self._handles.pop(fh, None)
            if ino is None:
                return
            node = self._inodes[ino]
            node.opens -= 1
            if node.opens == 0 and node.fd is not None:
                os.close(node.fd)
                node.fd = None
            self._collect(node)
        self._op(run)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        return self._op(lambda: os.pread(self._fd(self._node_for(path, fh), write=False),
                                         size, offset))

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        def run() -> int:
            node = self._node_for(path, fh)
            n = os.pwrite(self._fd(node, write=True), data, offset)
            node.dirty_from = offset if node.dirty_from is None else min(node.dirty_from, offset)
            self._touch(node)
            return n
        return self._op(run)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> None:
        def run() -> None:
            node = self._node_for(path, fh)
            if node.kind != "file":
                raise _err(errno.EISDIR)
            fd = self._fd(node, write=True)
            low = min(os.fstat(fd).st_size, length)
            os.ftruncate(fd, length)
            node.dirty_from = low if node.dirty_from is None else min(node.dirty_from, low)
            self._touch(node)
            if not node.opens:
                os.close(fd)
                node.fd = None
        self._op(run)

    def flush(self, path: str | None, fh: int) -> None:
        self._op(lambda: None)  # close() is not a sync

    def fsync(self, path: str | None, datasync: int, fh: int) -> None:
        self._op(lambda: self._sync_file(self._node_for(path, fh)))

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> None:
        def run() -> None:
            node = self._lookup(path or "")
            old, node.durable = node.durable, dict(node.live)
            for ino in node.durable.values():
                self._inodes[ino].durable_links += 1
            for ino in old.values():
                child = self._inodes[ino]
                child.durable_links -= 1
                self._collect(child)
        self._op(run)


def _serve(backing: Path, mountpoint: Path, state: Path) -> int:
    import mfusepy  # only the daemon needs libfuse; tests that drive it import this module

    out = sys.stdout

    def ready() -> None:
        out.write("ready\n")
        out.flush()

    fs = _Fs(backing, state, on_ready=ready)

    def control() -> None:
        keep = False
        for line in sys.stdin:
            if line.strip() in ("cut", "stop"):
                keep = line.strip() == "stop"
                break
        fs.cut(keep_unsynced=keep)
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False,
                       capture_output=True)

    threading.Thread(target=control, name="dropfs-control", daemon=True).start()
    mfusepy.FUSE(fs, str(mountpoint), foreground=True, nothreads=True, hard_remove=True,
                 use_ino=True, fsname="dropfs", attr_timeout=0, entry_timeout=0,
                 negative_timeout=0)
    fs.cut()  # unmounted from outside: that is a cut too
    out.write("cut\n")
    out.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.tools.dropfs BACKING MOUNTPOINT [--state DIR]``."""
    import argparse

    p = argparse.ArgumentParser(prog="dropfs", description=__doc__.split("\n\n")[0])
    p.add_argument("backing", type=Path)
    p.add_argument("mountpoint", type=Path)
    p.add_argument("--state", type=Path, default=None)
    a = p.parse_args(argv)
    backing = a.backing.resolve()
    state = a.state or backing.parent / f".{backing.name}.dropfs"
    return _serve(backing, a.mountpoint.resolve(), state)


class DroppingFs:
    """Mount a :mod:`dropfs <tests.tools.dropfs>` over ``backing`` at ``mountpoint``.

    ``with DroppingFs(disk, mnt) as fs: ...; fs.cut()`` -- after :meth:`cut`, ``disk`` holds
    what a power cut would have left; :meth:`mount` again to continue on it.
    """

    def __init__(self, backing: Path, mountpoint: Path) -> None:
        self.backing = Path(backing)
        self.mountpoint = Path(mountpoint)
        self._proc: subprocess.Popen[str] | None = None

    def mount(self, timeout: float = 20.0) -> None:
        """Start the daemon and wait until the mount answers."""
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.tools.dropfs", str(self.backing), str(self.mountpoint)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        assert self._proc.stdout is not None
        line = _readline(self._proc.stdout, timeout)
        if line.strip() != "ready" or not _await(lambda: os.path.ismount(self.mountpoint),
                                                 timeout):
            self._proc.kill()
            _, err = self._proc.communicate(timeout=10)
            self._proc = None
            raise RuntimeError(f"dropfs did not mount at {self.mountpoint}: {line!r} {err}")

    def cut(self, timeout: float = 60.0) -> None:
        """Power cut: drop everything not synced, unmount, leave the backing directory."""
        self._finish("cut", timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Clean shutdown: keep everything (as ``sync; umount``)."""
        self._finish("stop", timeout)

    @property
    def mounted(self) -> bool:
        """True between :meth:`mount` and :meth:`cut`/:meth:`stop`."""
        return self._proc is not None

    def _finish(self, command: str, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            out, err = proc.communicate(command + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False,
                           capture_output=True)
            raise RuntimeError(
                f"dropfs at {self.mountpoint} did not {command} in {timeout} s") from None
        if proc.returncode != 0 or "cut" not in out:
            raise RuntimeError(f"dropfs {command} failed ({proc.returncode}): {err[-2000:]}")

    def __enter__(self) -> DroppingFs:
        self.mount()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()


def _readline(stream: IO[str], timeout: float) -> str:
    box: list[str] = []
    t = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return box[0] if box else ""


def _await(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


if __name__ == "__main__":
    sys.exit(main())
