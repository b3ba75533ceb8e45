"""Writing segments crash-safely: open a segment, seal it (sign, log, checkpoint), settle.

The half of the evidence store that the recorder's every segment goes through, with the state
it shares with the rest (:class:`agent.evidence.store.EvidenceStore` extends it with
recovery, events, receipts and eviction): the log, the index of sealed segments, the open
segments, and the lock that serialises them. Its own module because the seal's crash safety
is a sequence of fsyncs to be read -- and changed -- as one piece.

Crash safety of :meth:`SegmentWriter.seal`, step by step (a journal without a logged
manifest means "recover"). Three fsyncs, each of a file whose name is already durable (an
fsync costs 5-50 ms on a microSD card; the seal used to take nine):

0. (at open) the manifest's temporary file ``.<manifest>.tmp-<pid>`` is created empty beside
   the journal, so the directory fsync the open does anyway makes its name durable;
1. finish the sink: the final age chunk is written, the hashes are known (no fsync yet);
2. sign the complete manifest (``prev_leaf`` = the log's last leaf, under ``_lock``) and write
   the envelope into the temporary file -- **fsync 1**. From here a crash recovers the whole
   segment if the media is complete, and a truncated one, flagged, if it is not: the
   envelope names the exact hashes the media must have;
3. fsync and close the media -- **fsync 2**;
4. append the log leaf -- **fsync 3** -- the commit point. The signed checkpoint is returned
   (and published) at once; the checkpoint *file* is written in :meth:`settle` (the log
   re-signs it at open if a crash left it behind -- the entries are the truth);
5. rename the temporary file to ``.manifest.json`` and remove the journal. Both are entries
   of one directory, made durable together by its next fsync (the next segment's open, or
   :meth:`settle`, which a timer runs about a second after the seal): after a crash the
   directory shows either the journal and the complete temporary envelope -- recovery finds
   the envelope in the log and finishes step 5 -- or the manifest and no journal.

Locking: ``_lock`` (an ``RLock``) serialises every state change — device sequence numbers,
the journals, the log append and the acknowledgement registry (derived from the log) — so
that a manifest's ``prev_leaf`` is the leaf immediately before its own. The sink itself
belongs to the writer thread; ``seal`` closes it, so call ``seal`` once the writer has stopped
writing. A timer thread (``evidence-settle``) runs :meth:`settle` under ``_lock`` about a
second after a seal.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from agent.atomic import atomic_write, fsync_dir
from agent.side_channel import SideChannel
from hw.errors import EvidenceError, StorageError

from .age import Recipient
from .ids import DEVICE_ID_RULE, is_device_id
from .journal import (
    JOURNAL_SUFFIX,
    MANIFEST_SUFFIX,
    Journal,
    media_name,
    recording_dir_name,
    sidecar,
)
from .keys import DeviceKey
from .log import EvidenceLog, origin_for
from .manifest import (
    ClockInfo,
    GpsSummary,
    MediaInfo,
    SegmentInfo,
    SignedManifest,
    Timestamp,
    sign_manifest,
)
from .retention_guard import warn_legacy_acks
from .sealed_index import SealedIndex
from .segment_files import create_file, draft_manifest, envelope_temp, fill_file
from .sink import EvidenceSink, SealResult, storage_error
from .utc import utc_now

__all__ = ["OpenSegment", "SegmentWriter", "utc_now"]

_T = TypeVar("_T")
_SETTLE_AFTER_S = 1.0

log = logging.getLogger(__name__)


@dataclass(slots=True)
class OpenSegment:
    """A segment being written: give ``sink`` to the muxer, then pass this to ``seal``."""

    info: SegmentInfo
    device_seq: int
    media_path: Path
    sink: EvidenceSink
    journal: Journal


def _default_open_append(path: Path) -> BinaryIO:
    """The media file, opened for unbuffered appends (tests inject failing files instead)."""
    return open(path, "ab", buffering=0)


class SegmentWriter:
    """Segments, their manifests and the log under one data dir: open, seal, settle."""

    def __init__(
        self,
        data_dir: Path,
        *,
        key: DeviceKey,
        recipients: Sequence[Recipient],
        encrypt: bool,
        device_id: str,
        open_append: Callable[[Path], BinaryIO] = _default_open_append,
        clock: Callable[[], str] = utc_now,
        station_keys: Sequence[bytes] = (),
        after_seal: Callable[[Path, SignedManifest], None] | None = None,
    ) -> None:
        if not is_device_id(device_id):
            raise EvidenceError(f"device id {device_id!r}: use {DEVICE_ID_RULE}")
        if encrypt and not recipients:
            raise EvidenceError("encryption is on but no age recipients are configured")
        self._root = Path(data_dir)
        self._key = key
        self._recipients = list(recipients)
        self._encrypt = encrypt
        self._device_id = device_id
        self._open_append = open_append
        self._clock = clock
        self._station_keys = frozenset(bytes(k) for k in station_keys)
        # Called once a segment is sealed and logged (Content Credentials, agent/c2pa): the
        # segment is evidence by then, so whatever it raises is logged and counted, not raised.
        self.after_seal = SideChannel("after-seal hook", after_seal) if after_seal else None
        self._lock = threading.RLock()
        self._recordings = self._root / "recordings"
        self._recordings.mkdir(parents=True, exist_ok=True)
        (self._root / "state").mkdir(exist_ok=True)
        self._log = EvidenceLog(self._root / "log", key, origin_for(device_id))
        self._open: dict[int, OpenSegment] = {}
        self._unsettled_dirs: set[Path] = set()  # seals renamed in, directory not yet fsynced
        self._settle_timer: threading.Timer | None = None
        self._index = SealedIndex.from_log(self._log.entries())
        self._next_seq = self._scan_next_seq()
        warn_legacy_acks(self._root)

    @property
    def log(self) -> EvidenceLog:
        """The append-only log (proofs and checkpoints for the back office)."""
        return self._log

    @property
    def data_dir(self) -> Path:
        """The data directory."""
        return self._root

    def close(self) -> None:
        """Settle sealed segments and release the log (open segments stay journalled for
        :meth:`agent.evidence.store.EvidenceStore.recover`)."""
        with self._lock:
            if self._settle_timer is not None:
                self._settle_timer.cancel()
                self._settle_timer = None
        with contextlib.suppress(StorageError, OSError):  # a failed settle is redone by recover
            self.settle()
        self._log.close()

    def settle(self) -> None:
        """Make the renames of recent seals durable (their directories' fsync) and write the
        checkpoint file; crash-safe if interrupted (see the module docstring)."""
        with self._lock:
            dirs, self._unsettled_dirs = self._unsettled_dirs, set()
            try:
                for d in sorted(dirs):
                    self._write(functools.partial(fsync_dir, d))
                self._write(self._log.flush_checkpoint)
            except StorageError:
                self._unsettled_dirs |= dirs
                raise

    def open_segment(self, info: SegmentInfo) -> OpenSegment:
        """Create the segment file and its journal; returns the sink to write into."""
        with self._lock:
            rec_dir = self._recording_dir(info)
            media = rec_dir / media_name(self._device_id, info, encrypted=self._encrypt)
            if media.exists() or sidecar(media, MANIFEST_SUFFIX).exists():
                raise EvidenceError(f"{media}: segment already exists; refusing to overwrite")
            journal = Journal(sidecar(media, JOURNAL_SUFFIX), media, self._next_seq,
                              self._encrypt, info)
            try:
                journal.write()
                create_file(envelope_temp(media), b"")  # step 0 of a seal
                out = self._open_append(media)
            except OSError as exc:
                raise storage_error(exc, str(media)) from exc
            sink = EvidenceSink(out, self._recipients, encrypt=self._encrypt, name=media.name)
            sink.sync()
            fsync_dir(rec_dir)  # the new names, and the renames of seals before in this folder
            self._unsettled_dirs.discard(rec_dir)
            if self._unsettled_dirs:
                self.settle()
            seg = OpenSegment(info, self._next_seq, media, sink, journal)
            self._open[seg.device_seq] = seg
            self._next_seq += 1
            return seg

    def seal(
        self,
        segment: OpenSegment,
        *,
        end: Timestamp,
        media: MediaInfo,
        gps: GpsSummary | None = None,
        bookmarks: Sequence[Mapping[str, Any]] = (),
        matter: Mapping[str, Any] | None = None,
        flags: Sequence[str] = (),
        clock: ClockInfo | None = None,
    ) -> SignedManifest:
        """Close, sign and log ``segment`` in three fsyncs; crash-safe at every step (module
        docstring). Its manifest file and the checkpoint file become durable in :meth:`settle`."""
        result = segment.sink.finish()
        manifest = self._manifest(segment.journal, result, end=end, media=media,
                                  gps=gps or GpsSummary(), bookmarks=bookmarks, matter=matter,
                                  flags=flags, clock=clock)
        journal = segment.journal
        with self._lock:
            journal.manifest = manifest
            signed = self._sign(manifest)
            self._write(lambda: fill_file(envelope_temp(journal.media), signed.envelope()))
            segment.sink.close()  # raises the storage error of a failed fsync itself
            signed = self._commit(journal, signed=signed)
            self._open.pop(segment.device_seq, None)
            return signed

    def abandon(self, segment: OpenSegment) -> None:
        """Give up on a segment whose sink failed (storage error): close the file, keep the
        journal, so :meth:`recover` seals what reached the disk once storage is healthy."""
        segment.sink.abort()
        with self._lock:
            self._open.pop(segment.device_seq, None)

    # --- internals -------------------------------------------------------------------------
    def _manifest(self, journal: Journal, result: SealResult, *, end: Timestamp | None,
                  media: MediaInfo | None, gps: GpsSummary, bookmarks: Sequence[Any],
                  matter: Mapping[str, Any] | None, flags: Sequence[str],
                  clock: ClockInfo | None) -> dict[str, Any]:
        return draft_manifest(journal, result, device_id=self._device_id,
                              recipients=self._recipients, end=end, media=media, gps=gps,
                              bookmarks=bookmarks, matter=matter, flags=flags, clock=clock)

    def _schedule_settle(self) -> None:
        """Settle about a second after a seal, on a timer thread: off the seal's path, soon
        enough that the checkpoint file is at most one entry behind for that long (``bodycam
        verify`` reads one missing signature as a crash during an append, more as tampering)."""
        if self._settle_timer is None:
            timer = threading.Timer(_SETTLE_AFTER_S, self._settle_in_background)
            timer.name, timer.daemon = "evidence-settle", True
            self._settle_timer = timer
            timer.start()

    def _settle_in_background(self) -> None:
        with self._lock:
            self._settle_timer = None
        try:
            self.settle()
        except (StorageError, OSError) as exc:  # recovery redoes it; the next seal retries
            log.warning("settling sealed segments failed: %s", exc)

    def _sign(self, manifest: dict[str, Any]) -> SignedManifest:
        """Chain ``manifest`` to the log's last leaf and sign it (under the lock)."""
        chained = dict(manifest)
        last = self._log.last_leaf()
        chained["prev_leaf"] = last.hex() if last else None
        return sign_manifest(chained, self._key)

    def _commit(self, journal: Journal, *, signed: SignedManifest | None = None) -> SignedManifest:
        """Log a segment, under the lock. ``signed`` (a seal): its envelope is fsynced in the
        manifest's temporary file; log it, rename it into place, drop the journal and leave
        the directory fsync to the next open or :meth:`settle`. Without (recovery): chain and
        sign, write the manifest atomically, log, drop the journal -- each step durable
        before the next."""
        assert journal.manifest is not None
        sealing = signed is not None
        if signed is None:
            signed = self._sign(journal.manifest)
            envelope = signed.envelope()
            self._write(lambda: atomic_write(sidecar(journal.media, MANIFEST_SUFFIX), envelope))
        manifest = signed.manifest
        entry = {"kind": "segment", "device_seq": journal.device_seq,
                 "recording_id": journal.info.recording_id, "seq": journal.info.seq,
                 "path": self._rel(journal.media), "manifest_sha256": signed.sha256,
                 "cipher_sha256": manifest["file"]["cipher_sha256"]}
        appended = self._write(lambda: self._log.append(entry, checkpoint=not sealing))
        self._index.add_segment(journal.device_seq, cipher_sha256=entry["cipher_sha256"],
                                manifest_sha256=signed.sha256, index=appended.index)
        if sealing:
            manifest_path = sidecar(journal.media, MANIFEST_SUFFIX)
            self._write(lambda: os.replace(envelope_temp(journal.media), manifest_path))
            self._write(journal.path.unlink)  # a journal, never media
            self._unsettled_dirs.add(journal.path.parent)
            self._schedule_settle()
        else:
            self._write(lambda: self._drop_journal(journal.path))
        if self.after_seal is not None:
            self.after_seal(journal.media, signed)
        return signed

    def _recording_dir(self, info: SegmentInfo) -> Path:
        suffix = f"_{self._device_id}_{info.recording_id[:8]}"
        existing = sorted(self._recordings.glob(f"*{suffix}"))
        if existing:
            return existing[0]
        path = self._recordings / recording_dir_name(self._device_id, info)
        self._write(path.mkdir)
        fsync_dir(self._recordings)
        return path

    def _drop_journal(self, path: Path) -> None:
        path.unlink()  # a journal, never media
        fsync_dir(path.parent)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self._root).as_posix()

    def _scan_next_seq(self) -> int:
        top = self._index.last_seq()
        for path in self._recordings.glob(f"*/*{JOURNAL_SUFFIX}"):
            with contextlib.suppress(EvidenceError):
                top = max(top, Journal.read(path).device_seq)
        return top + 1

    @staticmethod
    def _write(op: Callable[[], _T]) -> _T:
        try:
            return op()
        except StorageError:
            raise
        except OSError as exc:
            raise storage_error(exc, "evidence store") from exc
