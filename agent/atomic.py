"""Crash-consistent file updates.

Every state file the recorder keeps (checkpoints, acknowledgement registry, segment journals,
configuration written by commands) is replaced with the classic sequence
temp → write → fsync(temp) → rename → fsync(directory). A power cut at any instant leaves
either the old or the new content, never a mix, and never an empty file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "fsync_dir", "open_dir_fd", "write_all", "write_durable"]


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_dir_fd(path: Path) -> Iterator[int]:
    """A directory file descriptor, closed on exit (for ``dir_fd=`` operations)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file whole.

    The temporary file lives in the same directory (rename must not cross filesystems) and is
    created with ``mode`` from the start, so a secret is never briefly world-readable.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        write_durable(fd, data)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_durable(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (an ``O_APPEND`` one appends) and fsync it."""
    write_all(fd, data)
    os.fsync(fd)
