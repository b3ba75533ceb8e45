"""The evidence filesystem: capacity from ``statvfs`` and all-or-nothing appends.

A plain ``open(path, "ab", buffering=0)`` is not enough for evidence: near a full disk the
kernel may accept part of a write and refuse the rest, leaving a torn record at the end of a
segment. :class:`AppendFile` therefore writes the whole buffer or nothing — on any error it
truncates the file back to its length before the write — and turns ``OSError`` into the
product's storage errors (:func:`classify_os_error`), so the recorder can tell "disk full"
from "read-only remount" from "the card is failing".

Callers make data durable with :meth:`AppendFile.fsync` (not ``os.fsync(f.fileno())``), so that
its errors are classified too and a simulator can fail it.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hw.errors import StorageError, StorageFull, StorageReadOnly, StorageWriteError
from hw.storage import StorageReading

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["AppendFile", "FsStorage", "classify_os_error"]

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def classify_os_error(exc: OSError, *, what: str = "") -> StorageError:
    """Map an ``OSError`` from a write, fsync or rename to the product's storage errors.

    ``ENOSPC``/``EDQUOT``/``EFBIG`` → :class:`StorageFull`; ``EROFS`` →
    :class:`StorageReadOnly`; anything else (``EIO`` above all) → :class:`StorageWriteError`.
    A :class:`StorageError` is returned unchanged. The caller raises the result ``from exc``.
    """
    if isinstance(exc, StorageError):
        return exc
    where = what or (str(exc.filename) if exc.filename else "")
    detail = f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)
    if exc.errno in _FULL:
        return StorageFull(f"storage full ({detail})")
    if exc.errno == errno.EROFS:
        return StorageReadOnly(f"storage is read-only ({detail})")
    return StorageWriteError(exc.errno or errno.EIO, f"write failed ({detail})")


class AppendFile(io.FileIO):
    """An unbuffered append-only file whose ``write`` stores all of the buffer or none of it.

    Not thread-safe: one writer per file (the segment writer owns it).
    """

    def __init__(self, path: Path | str) -> None:
        try:
            super().__init__(os.fspath(path), "ab")
        except OSError as exc:
            raise classify_os_error(exc, what=str(path)) from exc
        self.path = Path(path)
        self._length = os.fstat(self.fileno()).st_size  # one writer: tracked, not re-read

    def _admit(self, nbytes: int) -> None:
        """Hook for subclasses: raise before anything is written (quota, injected faults)."""

    def _rollback(self, length: int) -> str:
        try:
            os.ftruncate(self.fileno(), length)
        except OSError as exc:
            return f"; the file could not be cut back to {length} bytes: {exc.strerror}"
        return ""

    def write(self, b: ReadableBuffer, /) -> int:
        """Append all of ``b``; on failure the file is left as it was and a StorageError raised."""
        view = memoryview(b).cast("B")
        total = len(view)
        self._admit(total)
        start = self._length
        try:
            while view:
                written = super().write(view)
                if written is None or written == 0:
                    raise OSError(errno.ENOSPC, "no progress writing")
                view = view[written:]
        except OSError as exc:
            error = classify_os_error(exc, what=str(self.path))
            note = self._rollback(start)
            if note:
                error = StorageWriteError(errno.EIO, f"{error}{note}")
            raise error from exc
        self._length = start + total
        return total

    def fsync(self) -> None:
        """Make everything written so far durable."""
        try:
            os.fsync(self.fileno())
        except OSError as exc:
            raise classify_os_error(exc, what=str(self.path)) from exc


class FsStorage:
    """A real filesystem holding ``root``; stateless, safe from any thread."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        """The data directory."""
        return self._root

    def read(self) -> StorageReading:
        """Space available to an unprivileged writer (``f_bavail``), and the read-only flag."""
        try:
            st = os.statvfs(self._root)
        except OSError as exc:
            raise classify_os_error(exc, what=str(self._root)) from exc
        return StorageReading(
            total_bytes=st.f_blocks * st.f_frsize,
            free_bytes=st.f_bavail * st.f_frsize,
            read_only=bool(st.f_flag & os.ST_RDONLY),
        )

    def open_append(self, path: Path) -> AppendFile:
        """Open ``path`` (relative paths are taken under ``root``) for all-or-nothing appends."""
        target = Path(path)
        return AppendFile(target if target.is_absolute() else self._root / target)
