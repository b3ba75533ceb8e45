"""Partial uploads: the bytes of unfinished segments, in ``<store>/.incoming/<upload_id>.part``.

Crash-safety rules, in order:

1. a partial file is created empty with ``O_EXCL`` and its directory fsynced before the
   upload's URL is handed out;
2. a chunk is appended with ``os.write`` and the file fsynced *before* the new offset is
   reported, so an offset a client has seen is on disk; the offset is the file's size — there
   is no second record of it to disagree with;
3. a chunk whose ``Upload-Checksum`` does not match is cut off again (``ftruncate`` to where
   it started, fsync) before the refusal is sent;
4. only one request writes an upload at a time, across processes and machines: writers take
   a POSIX record lock (``lockf``, honoured by NFS and CephFS) on the partial file and a busy
   upload is refused, not waited for;
5. a partial file is never evidence: it moves into the store only after verification
   (:mod:`.store`), or into ``.quarantine/`` when it expires or is refused.

The SHA-256 of the bytes is computed as they arrive; the running state is cached per
process and, when another process or an earlier run wrote the prefix, recomputed from disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.atomic import fsync_dir

from .refusal import Refused

__all__ = ["INCOMING", "QUARANTINE", "UPLOAD_ID", "Incoming", "sha256_file"]

INCOMING = ".incoming"
QUARANTINE = ".quarantine"
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_READ = 1 << 20


def sha256_file(path: Path, limit: int | None = None) -> tuple[str, int]:
    """SHA-256 (hex) and length of a file's first ``limit`` bytes (all if None)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb", buffering=0) as f:
        while limit is None or n < limit:
            chunk = f.read(_READ if limit is None else min(_READ, limit - n))
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


class Incoming:
    """The partial files of one store. Thread-safe: ``_lock`` guards the hash cache only."""

    def __init__(self, store: Path) -> None:
        self.dir = store / INCOMING
        self.quarantine_dir = store / QUARANTINE
        for d in (self.dir, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        fsync_dir(store)
        self._lock = threading.Lock()
        self._hashes: dict[str, tuple[int, Any]] = {}

    def path(self, upload_id: str) -> Path:
        """The partial file of an upload (the id is checked: it names a file)."""
        if not UPLOAD_ID.match(upload_id):
            raise Refused(404, "no-such-upload", "not an upload id")
        return self.dir / f"{upload_id}.part"

    def create(self, upload_id: str) -> None:
        """Create the empty partial file durably (rule 1)."""
        fd = os.open(self.path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.dir)

    def size(self, upload_id: str) -> int | None:
        """The durable offset: the partial file's size (None if it is gone)."""
        try:
            return self.path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def writer(self, upload_id: str) -> Iterator[int]:
        """An exclusive, locked descriptor for appending (rule 4); 423 if someone writes."""
        try:
            fd = os.open(self.path(upload_id), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Refused(410, "upload-gone", "the upload's bytes are no longer here") from None
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    raise Refused(423, "upload-busy", "another request is writing this upload; "
                                  "retry after it ends") from None
                raise
            yield fd
        finally:
            os.close(fd)  # also drops the lock

    def hasher(self, upload_id: str, offset: int) -> Any:
        """A SHA-256 state over the first ``offset`` bytes (a copy; the cache is untouched)."""
        with self._lock:
            cached = self._hashes.get(upload_id)
            if cached is not None and cached[0] == offset:
                return cached[1].copy()
        h = hashlib.sha256()
        n = 0
        with open(self.path(upload_id), "rb", buffering=0) as f:
            while n < offset:
                chunk = f.read(min(_READ, offset - n))
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
        return h

    def remember(self, upload_id: str, offset: int, hasher: Any) -> None:
        """Cache the state after a durable append (or forget it when ``hasher`` is None)."""
        with self._lock:
            if hasher is None:
                self._hashes.pop(upload_id, None)
            else:
                self._hashes[upload_id] = (offset, hasher.copy())

    def running_sha256(self, upload_id: str, offset: int) -> str | None:
        """The hash computed while receiving, if this process received up to ``offset``."""
        with self._lock:
            cached = self._hashes.get(upload_id)
        return cached[1].hexdigest() if cached and cached[0] == offset else None

    def quarantine(self, upload_id: str) -> Path | None:
        """Move a partial file out of the way, kept (never deleted); None if already gone."""
        src = self.path(upload_id)
        dst = self.quarantine_dir / src.name
        try:
            os.rename(src, dst)
        except FileNotFoundError:
            return None
        fsync_dir(self.quarantine_dir)
        fsync_dir(self.dir)
        self.remember(upload_id, 0, None)
        return dst

    def discard(self, upload_id: str) -> None:
        """Remove a partial file whose bytes are now in the store (linked there)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(upload_id))
        self.remember(upload_id, 0, None)
