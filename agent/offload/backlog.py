"""What the device still owes a collection station, read from the evidence log.

The log is the truth (DESIGN §3): a ``segment`` entry is owed until an ``acknowledged`` entry
for the same ``device_seq`` and hashes follows it. The ``key_rotation`` entries are collected
too: the station must be handed them before it can verify what the new key signs
(:mod:`.rotation_handover`). There is no queue file beside the log that
could drift from it -- :class:`Backlog` keeps only a cursor and re-reads new entries with
positioned reads (:meth:`EvidenceLog.entry`), so a restart rebuilds the same list.

Threading: one owner (the uploader thread); :meth:`snapshot` is safe from any thread because
it copies under ``_lock``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.evidence.canonical import parse_canonical
from agent.evidence.journal import MANIFEST_SUFFIX, sidecar

ROTATION_TYPE = "key_rotation"  # agent.evidence.key_rotation's entry type

__all__ = ["Backlog", "BacklogSummary", "PendingSegment"]


class EntrySource(Protocol):
    """The part of :class:`~agent.evidence.log.EvidenceLog` the backlog reads."""

    @property
    def size(self) -> int:
        """Entries in the log."""
        ...

    def entry(self, index: int) -> bytes:
        """The canonical JSON bytes of entry ``index``."""
        ...


@dataclass(frozen=True, slots=True)
class PendingSegment:
    """A sealed segment without a logged receipt: where it is and what it must hash to."""

    device_seq: int
    index: int  # its leaf in the device log
    media: Path
    cipher_sha256: str
    manifest_sha256: str
    cipher_bytes: int  # size on disk when first seen (0 if the media is missing)
    sealed_epoch: float  # when it was sealed: the sealed file's mtime (for offload_oldest_s)

    @property
    def manifest(self) -> Path:
        """The signed manifest envelope beside the media."""
        return sidecar(self.media, MANIFEST_SUFFIX)


@dataclass(frozen=True, slots=True)
class BacklogSummary:
    """Counts for status and telemetry."""

    segments: int
    bytes: int
    oldest_s: float | None


class Backlog:
    """Sealed segments without a receipt, oldest first, derived from the log."""

    def __init__(self, log: EntrySource, data_dir: Path) -> None:
        self._log = log
        self._root = Path(data_dir)
        self._cursor = 0
        self._pending: dict[int, PendingSegment] = {}
        self._rotations: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    def refresh(self, now_epoch: float | None = None) -> list[PendingSegment]:
        """Fold in entries appended since the last call; the pending list, oldest first."""
        now = time.time() if now_epoch is None else now_epoch
        size = self._log.size
        while self._cursor < size:
            data = self._log.entry(self._cursor)
            entry = parse_canonical(data)
            if entry.get("type") == ROTATION_TYPE:
                with self._lock:
                    self._rotations.append((self._cursor, data))
            self._fold(self._cursor, entry, now)
            self._cursor += 1
        return self.pending()

    def rotations(self) -> list[tuple[int, bytes]]:
        """Every ``key_rotation`` entry read so far, as ``(log index, exact bytes)``, oldest
        first: what the station must take before it can verify what the new key signs."""
        with self._lock:
            return list(self._rotations)

    def pending(self) -> list[PendingSegment]:
        """The pending segments, oldest (lowest ``device_seq``) first."""
        with self._lock:
            return [self._pending[k] for k in sorted(self._pending)]

    def summary(self, now_epoch: float | None = None) -> BacklogSummary:
        """Segments and bytes owed, and how long the oldest has waited since it was sealed --
        across restarts: a segment sealed yesterday and still owed is a day old, not as old
        as this boot (the wall clock is the one reading that survives a reboot; a clock step
        shifts the figure, never the evidence)."""
        now = time.time() if now_epoch is None else now_epoch
        with self._lock:
            items = list(self._pending.values())
        oldest = min((p.sealed_epoch for p in items), default=None)
        return BacklogSummary(len(items), sum(p.cipher_bytes for p in items),
                              None if oldest is None else max(0.0, now - oldest))

    def _fold(self, index: int, entry: dict[str, object], now: float) -> None:
        seq = entry.get("device_seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        with self._lock:
            if entry.get("kind") == "segment" and seq not in self._pending:
                path = str(entry.get("path", ""))
                media = self._root / path
                try:
                    st = media.stat()
                    size, sealed = st.st_size, min(st.st_mtime, now)
                except OSError:
                    size, sealed = 0, now
                self._pending[seq] = PendingSegment(
                    seq, index, media, str(entry.get("cipher_sha256")),
                    str(entry.get("manifest_sha256")), size, sealed)
            elif entry.get("type") == "acknowledged":
                known = self._pending.get(seq)
                if known is not None and (entry.get("cipher_sha256"),
                                          entry.get("manifest_sha256")) == (
                        known.cipher_sha256, known.manifest_sha256):
                    del self._pending[seq]
