"""Storage seam: the evidence filesystem as a device that can fill up and fail.

The recorder writes evidence only through :meth:`Storage.open_append`, so a simulated disk can
run out of space or fail exactly where a real one would (in ``write``/``fsync``), and the
policies can be tested against both the simulator and a real small filesystem.

Contract (checked by ``tests/contract/test_storage_contract.py``): writes beyond the free
space raise :class:`hw.errors.StorageFull` (an ``OSError`` with ``ENOSPC``) and leave the file
as it was before that write.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = ["Storage", "StorageReading"]


@dataclass(frozen=True, slots=True)
class StorageReading:
    """Capacity of the evidence filesystem."""

    total_bytes: int
    free_bytes: int
    read_only: bool = False


@runtime_checkable
class Storage(Protocol):
    """The filesystem holding ``root`` (the data directory)."""

    @property
    def root(self) -> Path:
        """The data directory."""
        ...

    def read(self) -> StorageReading:
        """Current capacity."""
        ...

    def open_append(self, path: Path) -> BinaryIO:
        """Open ``path`` for appending evidence bytes (binary, unbuffered or flushed by caller)."""
        ...
