"""The evidence sink: the file-like object the muxer writes a segment into.

One pass over the bytes: SHA-256 of the plaintext → age encryption → SHA-256 of the
ciphertext → append to storage. Nothing is read back. With encryption on, plaintext is held
only in memory (less than one 64 KiB chunk plus one held-back chunk) and never reaches
storage; with encryption off (an explicit configuration choice recorded in the manifest)
the plaintext is written and both hashes are equal.

Storage errors from ``write``/``fsync`` surface as :class:`~hw.errors.StorageFull`,
:class:`~hw.errors.StorageReadOnly` or :class:`~hw.errors.StorageWriteError`; the sink
is then *poisoned* (every later call raises) because what is on disk is no longer known.
The segment's journal stays behind and :meth:`EvidenceStore.recover` seals it later.

Crash recovery (:func:`recover_ciphertext`) cuts a crashed segment back to its last complete
age chunk, which the agency can still decrypt; the device cannot, so the plaintext hash of a
recovered segment is unknown.

Threading: not thread-safe. One thread (the segment writer that owns the muxer) calls
``write``/``sync``/``close``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from hw.errors import (
    EvidenceError,
    StorageError,
    StorageFull,
    StorageReadOnly,
    StorageWriteError,
)

from .age import ENCRYPTED_CHUNK_SIZE, AgeEncryptor, AgeFormatError, Recipient, header_length

__all__ = ["EvidenceSink", "RecoveredFile", "SealResult", "recover_ciphertext", "storage_error"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SealResult:
    """What was written for one segment. ``plain_*`` are ``None`` only after recovery."""

    plain_sha256: str | None
    plain_bytes: int | None
    cipher_sha256: str
    cipher_bytes: int
    chunks: int
    encrypted: bool


@dataclass(frozen=True, slots=True)
class RecoveredFile:
    """A crashed segment after truncation to its last complete chunk."""

    cipher_sha256: str
    cipher_bytes: int
    original_bytes: int
    chunks: int


def storage_error(exc: OSError, what: str) -> StorageError:
    """Map an ``OSError`` to the product's storage exception (keeps ours unchanged)."""
    if isinstance(exc, StorageError):
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"{what}: storage full ({exc.strerror})")
    if exc.errno == errno.EROFS:
        return StorageReadOnly(f"{what}: storage is read-only")
    return StorageWriteError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}")


class EvidenceSink:
    """Write-only, non-seekable binary stream that seals what passes through it."""

    def __init__(self, out: BinaryIO, recipients: Sequence[Recipient], *, encrypt: bool = True,
                 name: str = "segment") -> None:
        if encrypt and not recipients:
            raise EvidenceError("encryption is on but no recipients are configured")
        self._out = out
        self._name = name
        self._enc = AgeEncryptor(recipients) if encrypt else None
        self._plain = hashlib.sha256()
        self._cipher = hashlib.sha256()
        self._plain_bytes = 0
        self._cipher_bytes = 0
        self._chunks = 0
        self._error: StorageError | None = None
        self._result: SealResult | None = None
        self._file_closed = False
        if self._enc is not None:
            self._emit(self._enc.header())

    # --- file-object protocol used by PyAV ------------------------------------------------
    def writable(self) -> bool:
        """Always true: this is a write-only stream."""
        return True

    def readable(self) -> bool:
        """Always false: nothing is read back."""
        return False

    def seekable(self) -> bool:
        """Always false: the muxer must write fragmented MP4 front to back."""
        return False

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._result is not None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Hash, encrypt and append ``data``; returns ``len(data)``."""
        self._check()
        view = bytes(data)
        self._plain.update(view)
        self._plain_bytes += len(view)
        if self._enc is None:
            self._emit(view)
        else:
            sealed = self._enc.update(view)
            if sealed:
                self._chunks += len(sealed) // ENCRYPTED_CHUNK_SIZE
                self._emit(sealed)
        return len(view)

    def flush(self) -> None:
        """Push written bytes to the OS (durability is :meth:`sync`)."""
        self._check()
        self._guard(self._out.flush)

    def sync(self) -> None:
        """Flush and fsync every complete chunk written so far."""
        self._check()
        self._guard(self._fsync)

    def finish(self) -> SealResult:
        """Write the last (final) chunk and return the seal, *without* fsync: the store
        decides what must be durable before the media is (idempotent; writes are refused
        from now on)."""
        if self._result is not None:
            return self._result
        self._check()
        if self._enc is not None:
            self._emit(self._enc.finalize())
            self._chunks += 1
        self._guard(self._out.flush)
        self._result = SealResult(
            self._plain.hexdigest(), self._plain_bytes, self._cipher.hexdigest(),
            self._cipher_bytes, self._chunks, self._enc is not None)
        return self._result

    def close(self) -> SealResult:
        """Finish (see :meth:`finish`), fsync and close the file; returns the seal (idempotent)."""
        result = self.finish()
        if not self._file_closed:
            if self._error is not None:
                raise self._error
            self._guard(self._fsync)
            self._guard(self._out.close)
            self._file_closed = True
        return result

    def abort(self) -> None:
        """Close the file without finalizing (after an error); the journal drives recovery."""
        with contextlib.suppress(OSError):
            self._out.close()
        if self._error is None:
            self._error = StorageWriteError(errno.EIO, f"{self._name}: sink aborted")

    # --- internals -------------------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self._result is not None:
            raise ValueError(f"{self._name}: write to a closed evidence sink")

    def _emit(self, data: bytes) -> None:
        self._cipher.update(data)
        self._cipher_bytes += len(data)
        view = memoryview(data)
        while view:
            n = self._write_some(view)
            view = view[n:]

    def _write_some(self, view: memoryview) -> int:
        try:
            n = self._out.write(view)
        except OSError as exc:
            self._error = storage_error(exc, self._name)
            raise self._error from exc
        if n is None:  # only a non-blocking raw file does this; evidence files never are
            self._error = StorageWriteError(errno.EAGAIN, f"{self._name}: write would block")
            raise self._error
        return n

    def _fsync(self) -> None:
        self._out.flush()
        fsync = getattr(self._out, "fsync", None)  # storage files may police fsync themselves
        if callable(fsync):
            fsync()
        else:
            os.fsync(self._out.fileno())

    def _guard(self, op: Callable[[], _T]) -> _T:
        try:
            return op()
        except OSError as exc:
            self._error = storage_error(exc, self._name)
            raise self._error from exc


def recover_ciphertext(path: Path, *, encrypted: bool = True) -> RecoveredFile:
    """Cut a crashed encrypted segment to its last complete age chunk and fsync it.

    The header must be complete, otherwise the file is cut to zero bytes. Returns the SHA-256
    and size of what remains; the plaintext hash stays unknown (the device cannot decrypt).
    An unencrypted segment (fragmented MP4 stays playable when cut) is only hashed.
    """
    path = Path(path)
    with open(path, "r+b") as f:
        data = f.read()
        try:
            head = header_length(data) if encrypted else None
        except AgeFormatError:
            head = None
        if not encrypted:
            keep, chunks = len(data), 0
        elif head is None:
            keep, chunks = 0, 0
        else:
            chunks = (len(data) - head) // ENCRYPTED_CHUNK_SIZE
            keep = head + chunks * ENCRYPTED_CHUNK_SIZE
        if keep != len(data):
            f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return RecoveredFile(hashlib.sha256(data[:keep]).hexdigest(), keep, len(data), chunks)
