"""A simulated evidence disk: a quota over a real directory that can fill up and fail.

Files are real (the evidence they hold can be verified afterwards); only the capacity is
simulated: ``free = quota − bytes of the files under root − bytes taken by fill()``. Writes go
through :class:`QuotaFile`, which refuses a write that would cross the quota with
:class:`hw.errors.StorageFull` *before* writing anything, and raises an injected error
(``fail_writes(errno.EIO)``, ``fail_writes(errno.EROFS)``) from ``write`` and ``fsync``, the
places a real card fails. Other code that writes under ``root`` directly (state files through
:func:`agent.atomic.atomic_write`) still counts against the quota, as on a real disk, but is
not policed by it.

Cost: walking the tree on every write would make a write cost O(files) (17 ms per 64 KiB
write with 1,000 files on disk). The walk is therefore cached and topped up with the bytes
written through this disk's files; it is redone when it is older than ``rescan_s`` and whenever
a write comes (by the cached figure) within ``exact_margin_bytes`` of the quota. Decisions near
the limit are therefore exact unless more than the margin was written behind the disk's back
(not through :meth:`SimStorage.open_append`) within the last ``rescan_s``.

Locking: ``_lock`` guards the fill level, the injected fault, the usage cache and the history,
and is held across a quota check and its write, so two writers cannot both squeeze into the
last bytes.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hw.storage import StorageReading
from hw.storage_fs import AppendFile, classify_os_error

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["QuotaFile", "SimStorage", "SimStorageEvent"]


@dataclass(frozen=True, slots=True)
class SimStorageEvent:
    """One entry of the simulator's history."""

    what: str  # fill | free | fail_writes | refused | failed
    detail: str = ""


def _bytes_under(root: Path, exclude: frozenset[str] = frozenset()) -> int:
    """Bytes of the files under ``root``, except under its top-level folders in ``exclude``."""
    total = 0
    for dirpath, dirs, files in os.walk(root):
        if dirpath == str(root):
            dirs[:] = [d for d in dirs if d not in exclude]
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue  # removed while we walked
            total += st.st_size
    return total


class SimStorage:
    """A disk of ``quota_bytes`` over the real directory ``root``."""

    def __init__(self, root: Path, quota_bytes: int, *, filled_bytes: int = 0,
                 rescan_s: float = 1.0, exact_margin_bytes: int = 4 << 20,
                 clock: Callable[[], float] = time.monotonic,
                 exclude: tuple[str, ...] = ()) -> None:
        if quota_bytes <= 0 or filled_bytes < 0:
            raise ValueError("quota_bytes must be > 0 and filled_bytes >= 0")
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        # top-level folders that are not on the simulated disk (the loopback station's
        # files share the data directory on a bench; a real station is another machine)
        self._exclude = frozenset(exclude)
        self._quota = quota_bytes
        self._filled = filled_bytes
        self._fault: int | None = None
        self._rescan_s = rescan_s
        self._margin = exact_margin_bytes
        self._clock = clock
        self._scanned: int | None = None  # bytes under root at the last walk
        self._scanned_at = 0.0
        self._since_scan = 0  # bytes appended through QuotaFiles since that walk
        self._lock = threading.RLock()
        self.history: list[SimStorageEvent] = []

    @property
    def root(self) -> Path:
        """The data directory."""
        return self._root

    # --- stimulus verbs -------------------------------------------------------------------
    def fill(self, nbytes: int) -> None:
        """Take ``nbytes`` of space, as other data growing on the same disk would."""
        with self._lock:
            self._filled += nbytes
            self.history.append(SimStorageEvent("fill", str(nbytes)))

    def free(self, nbytes: int) -> None:
        """Give back up to ``nbytes`` taken by :meth:`fill`."""
        with self._lock:
            self._filled = max(0, self._filled - nbytes)
            self.history.append(SimStorageEvent("free", str(nbytes)))

    def fail_writes(self, err: int | None = errno.EIO) -> None:
        """From now on every write and fsync fails with ``err`` (None heals the disk).

        ``EROFS`` also makes :meth:`read` report the filesystem read-only, as after the kernel
        remounts a failing card.
        """
        with self._lock:
            self._fault = err
            self.history.append(SimStorageEvent(
                "fail_writes", "healed" if err is None else errno.errorcode.get(err, str(err))))

    # --- Storage --------------------------------------------------------------------------
    def used_bytes(self) -> int:
        """Bytes taken: files under root (walked now) plus :meth:`fill`."""
        with self._lock:
            return self._scan() + self._filled

    def _scan(self) -> int:
        self._scanned = _bytes_under(self._root, self._exclude)
        self._scanned_at = self._clock()
        self._since_scan = 0
        return self._scanned

    def _estimated_used(self) -> int:
        if self._scanned is None or self._clock() - self._scanned_at >= self._rescan_s:
            self._scan()
        assert self._scanned is not None
        return self._scanned + self._since_scan + self._filled

    def read(self) -> StorageReading:
        """Quota, what is left of it, and whether a read-only fault is injected."""
        with self._lock:
            return StorageReading(
                total_bytes=self._quota,
                free_bytes=max(0, self._quota - self.used_bytes()),
                read_only=self._fault == errno.EROFS,
            )

    def open_append(self, path: Path) -> QuotaFile:
        """Open ``path`` (relative paths are taken under ``root``) for policed appends."""
        target = Path(path)
        with self._lock:
            self._raise_fault(target, "open")
            return QuotaFile(target if target.is_absolute() else self._root / target, self)

    # --- used by QuotaFile ----------------------------------------------------------------
    def _raise_fault(self, path: Path, op: str) -> None:
        if self._fault is not None:
            self.history.append(SimStorageEvent("failed", f"{op} {path.name}"))
            exc = OSError(self._fault, os.strerror(self._fault), str(path))
            raise classify_os_error(exc) from exc

    def _admit(self, path: Path, nbytes: int) -> None:
        self._raise_fault(path, "write")
        free = self._quota - self._estimated_used()
        if nbytes > free - self._margin:
            free = self._quota - self.used_bytes()  # near the limit: decide on a fresh walk
        if nbytes > free:
            self.history.append(SimStorageEvent("refused", f"{path.name} +{nbytes} > {free}"))
            exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            raise classify_os_error(exc) from exc

    def _written(self, nbytes: int) -> None:
        self._since_scan += nbytes


class QuotaFile(AppendFile):
    """An :class:`hw.storage_fs.AppendFile` policed by a :class:`SimStorage`."""

    def __init__(self, path: Path, storage: SimStorage) -> None:
        self._storage = storage
        super().__init__(path)

    def _admit(self, nbytes: int) -> None:
        self._storage._admit(self.path, nbytes)

    def write(self, b: ReadableBuffer, /) -> int:
        """Check the quota and the injected fault, then append all of ``b``."""
        with self._storage._lock:  # check and write are one step under the disk lock
            written = super().write(b)
            self._storage._written(written)
            return written

    def fsync(self) -> None:
        """Fail with the injected error, else fsync for real."""
        with self._storage._lock:  # the fault is read under the disk lock
            self._storage._raise_fault(self.path, "fsync")
        super().fsync()
