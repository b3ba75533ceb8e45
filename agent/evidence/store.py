"""The evidence store: the one API the recorder uses to write evidence.

``open_segment`` → the muxer writes into ``OpenSegment.sink`` → ``seal`` (sign the manifest,
log it, checkpoint). ``recover`` seals whatever a crash left open. ``evict`` is the only code
path in the product that deletes media, and only for segments a collection station receipted.

Acknowledgement is proof, not a flag (DESIGN §3): :meth:`EvidenceStore.accept_receipt` takes a
station's signed receipt, checks it names exactly a sealed segment of this device (ciphertext
and manifest hashes as logged) and is signed by a configured station key, and appends an
``acknowledged`` event quoting the receipt to the log. The registry of acknowledged segments is
*derived from the log* at open -- there is no side file an attacker could edit -- and every
``eviction`` event cites the index of the ``acknowledged`` entry that permitted it.

Crash safety of :meth:`EvidenceStore.seal`, step by step (a journal without a logged
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

Recovery writes every file durably before its next step (the old sequence).

Locking: ``_lock`` (an ``RLock``) serialises every state change — device sequence numbers,
the journals, the log append and the acknowledgement registry (derived from the log) — so
that a manifest's ``prev_leaf`` is the leaf immediately before its own. The sink itself belongs to the writer
thread; ``seal`` closes it, so call ``seal`` once the writer has stopped writing. A timer
thread (``evidence-settle``) runs :meth:`settle` under ``_lock`` about a second after a seal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from agent.atomic import atomic_write, fsync_dir
from agent.recording.side_channel import SideChannel
from hw.errors import EvidenceError, ReceiptRejected, StorageError, VerificationError

from .age import Recipient
from .canonical import canonical_json, parse_canonical
from .ids import DEVICE_ID_RULE, is_device_id
from .journal import (
    JOURNAL_SUFFIX,
    MANIFEST_SUFFIX,
    Journal,
    media_name,
    recording_dir_name,
    sidecar,
)
from .key_rotation import rotate_and_log
from .keys import KEY_NAME, DeviceKey
from .log import AppendResult, EvidenceLog, origin_for
from .manifest import (
    FORMAT,
    ClockInfo,
    GpsSummary,
    MediaInfo,
    SegmentInfo,
    SignedManifest,
    Timestamp,
    parse_envelope,
    sign_manifest,
)
from .receipt import Receipt
from .sink import EvidenceSink, SealResult, recover_ciphertext, storage_error

__all__ = ["Acknowledgement", "EvidenceStore", "OpenSegment", "RetentionViolation", "utc_now"]

_T = TypeVar("_T")
_MAX_ORIGIN_BYTES = 1024
_LEGACY_ACKS = "acks.json"
_SETTLE_AFTER_S = 1.0

log = logging.getLogger(__name__)


class RetentionViolation(EvidenceError, PermissionError):
    """Deleting this segment is not allowed: no station receipt acknowledges it."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Where a segment's ``acknowledged`` entry sits in the log and which receipt it quotes."""

    ack_index: int
    receipt_sha256: str


@dataclass(frozen=True, slots=True)
class _Sealed:
    """What the log says about one sealed segment (what a receipt must match, and where its
    leaf is, for inclusion proofs)."""

    cipher_sha256: str
    manifest_sha256: str
    index: int


def utc_now() -> str:
    """Current UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class OpenSegment:
    """A segment being written: give ``sink`` to the muxer, then pass this to ``seal``."""

    info: SegmentInfo
    device_seq: int
    media_path: Path
    sink: EvidenceSink
    journal: Journal


def _default_open_append(path: Path) -> BinaryIO:
    return open(path, "ab", buffering=0)


class EvidenceStore:
    """Segments, manifests, the log and the acknowledgement registry under one data dir."""

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
        self._sealed: dict[int, _Sealed] = {}
        self._acks: dict[int, Acknowledgement] = {}
        self._scan_log()
        self._next_seq = self._scan_next_seq()
        self._warn_legacy_acks()

    # --- public API ------------------------------------------------------------------------
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
        :meth:`recover`)."""
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
                _create_file(_envelope_temp(media), b"")  # step 0 of a seal
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
            self._write(lambda: _fill_file(_envelope_temp(journal.media), signed.envelope()))
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

    def recover(self) -> list[SignedManifest]:
        """Seal every segment a crash left unsealed (flagged ``recovered``, maybe ``truncated``)."""
        out: list[SignedManifest] = []
        with self._lock:
            open_paths = {s.journal.path for s in self._open.values()}
            for path in sorted(self._recordings.glob(f"*/*{JOURNAL_SUFFIX}")):
                if path not in open_paths:
                    journal = Journal.read(path)
                    envelope = _sealed_envelope(journal.media)
                    if envelope is not None:  # the seal got past its first fsync
                        journal.envelope = envelope
                        journal.manifest = parse_envelope(envelope).manifest
                    signed = self._recover_one(journal)
                    if signed is not None:
                        out.append(signed)
                    temps = _envelope_temps(journal.media)
                    for temp in temps:  # the manifest is durable now; the copy goes
                        self._write(temp.unlink)
                    if temps:
                        self._write(functools.partial(fsync_dir, path.parent))
        return out

    def log_event(self, kind: str, **fields: Any) -> AppendResult:
        """Append an event (``boot``, ``clock_step``, ``low_battery_shutdown``, …) to the log."""
        entry = {"utc": self._clock(), **fields, "kind": "event", "type": kind}
        with self._lock:
            return self._write(lambda: self._log.append(entry))

    def rotate_key(self) -> DeviceKey:
        """Retire the device key and switch to a new one; the rotation is logged (old key)."""
        path = self._root / "keys" / KEY_NAME
        with self._lock:
            new, _ = self._write(lambda: rotate_and_log(self._log, path, utc=self._clock()))
            self._key = new
            return new

    def leaf_index(self, device_seq: int) -> int | None:
        """The log index of a sealed segment's entry (None if it is not sealed)."""
        with self._lock:
            sealed = self._sealed.get(device_seq)
            return sealed.index if sealed is not None else None

    def accept_receipt(self, receipt: Receipt, *, origin: Mapping[str, Any]) -> int:
        """Log a station's receipt for one sealed segment; returns the ``acknowledged`` index.

        Refused with :class:`ReceiptRejected` naming why when no station key is configured,
        the signature does not verify against one, the receipt is for another device, the
        segment is open or not sealed in the log (a future ``device_seq``), or its ciphertext or
        manifest hash differs from the log's. A refused receipt leaves no trace in the log.
        A second valid receipt for an acknowledged segment changes nothing (same index).
        ``origin`` (who delivered it: ``{"via": "mqtt", "command_id": …}``) is logged as is.
        """
        where = _checked_origin(origin)
        with self._lock:
            if not self._station_keys:
                raise ReceiptRejected("no station keys are configured ([offload] station_keys): "
                                      "no receipt can be trusted, so none is accepted")
            try:
                receipt.verify(self._station_keys)
            except VerificationError as exc:
                raise ReceiptRejected(str(exc)) from None
            seq = receipt.device_seq
            if receipt.device_id != self._device_id:
                raise ReceiptRejected(f"receipt is for device {receipt.device_id!r}, "
                                      f"this is {self._device_id!r}")
            if seq in self._open:
                raise ReceiptRejected(f"segment {seq} is still being recorded")
            sealed = self._sealed.get(seq)
            if sealed is None:
                raise ReceiptRejected(f"segment {seq} is not sealed in the evidence log")
            problem = receipt.matches(device_id=self._device_id, device_seq=seq,
                                      cipher_sha256=sealed.cipher_sha256,
                                      manifest_sha256=sealed.manifest_sha256)
            if problem is not None:
                raise ReceiptRejected(f"segment {seq}: {problem}")
            known = self._acks.get(seq)
            if known is not None:
                return known.ack_index
            entry = {"kind": "event", "type": "acknowledged", "utc": self._clock(),
                     "device_seq": seq, "cipher_sha256": sealed.cipher_sha256,
                     "manifest_sha256": sealed.manifest_sha256, "receipt": receipt.to_json(),
                     "receipt_sha256": receipt.sha256, "origin": where}
            result = self._write(lambda: self._log.append(entry))
            self._acks[seq] = Acknowledgement(result.index, receipt.sha256)
            return result.index

    def acknowledged(self, device_seq: int) -> bool:
        """Whether a station receipt for segment ``device_seq`` is in the log."""
        with self._lock:
            return device_seq in self._acks

    def acknowledgement(self, device_seq: int) -> Acknowledgement | None:
        """The logged acknowledgement of segment ``device_seq``, if any."""
        with self._lock:
            return self._acks.get(device_seq)

    def evict(self, segment_path: Path) -> int:
        """Delete a receipted segment's media (manifest kept); returns bytes freed.

        The eviction is logged before the file goes, citing the ``acknowledged`` entry (its log
        index and receipt hash). Raises :class:`RetentionViolation` for a segment that has no
        logged receipt, is open or unsealed, or whose manifest is not the one receipted.
        """
        media = Path(segment_path)
        with self._lock:
            try:
                signed = parse_envelope(sidecar(media, MANIFEST_SUFFIX).read_bytes())
            except (OSError, EvidenceError) as exc:
                raise RetentionViolation(f"{media}: no readable sealed manifest ({exc})") from None
            seq = signed.manifest["device_seq"]
            if signed.manifest["file"]["name"] != media.name or seq in self._open:
                raise RetentionViolation(f"{media}: not the sealed file of its manifest")
            ack = self._acks.get(seq)
            if ack is None:
                raise RetentionViolation(
                    f"{media}: segment {seq} not acknowledged by a station receipt; not deleted")
            sealed = self._sealed[seq]
            cipher = signed.manifest["file"]["cipher_sha256"]
            if (signed.sha256, cipher) != (sealed.manifest_sha256, sealed.cipher_sha256):
                raise RetentionViolation(
                    f"{media}: manifest differs from the one segment {seq}'s receipt names")
            size = media.stat().st_size
            self.log_event("eviction", device_seq=seq, path=self._rel(media),
                           manifest_sha256=signed.sha256, cipher_sha256=cipher,
                           ack_index=ack.ack_index, receipt_sha256=ack.receipt_sha256)
            media.unlink()  # the one deletion of media in the product (see module docstring)
            fsync_dir(media.parent)
            return size

    # --- internals -------------------------------------------------------------------------
    def _manifest(self, journal: Journal, result: SealResult, *, end: Timestamp | None,
                  media: MediaInfo | None, gps: GpsSummary, bookmarks: Sequence[Any],
                  matter: Mapping[str, Any] | None, flags: Sequence[str],
                  clock: ClockInfo | None) -> dict[str, Any]:
        info = journal.info
        all_flags = list(dict.fromkeys([*info.flags, *flags]))
        if info.preroll:
            all_flags.append("preroll")
        if not result.encrypted:
            all_flags.append("unencrypted")
        return {
            "format": FORMAT, "device_id": self._device_id,
            "officer_id": info.officer_id, "unit": info.unit,
            "recording_id": info.recording_id, "seq": info.seq,
            "device_seq": journal.device_seq, "boot_id": info.boot_id,
            "start": info.start.to_json(),
            "end": end.to_json() if end else {"utc": None, "mono_us": None},
            "clock": (clock or info.clock).to_json(),
            "gps": gps.to_json(),
            "matter": dict(matter) if matter is not None else None,
            "media": (media or MediaInfo()).to_json(),
            "file": {"name": journal.media.name, "encrypted": result.encrypted,
                     "recipients": [str(r) for r in self._recipients] if result.encrypted
                     else [],
                     "plain_sha256": result.plain_sha256, "plain_bytes": result.plain_bytes,
                     "cipher_sha256": result.cipher_sha256, "cipher_bytes": result.cipher_bytes},
            "prev_leaf": None,
            "flags": list(dict.fromkeys(all_flags)),
            "bookmarks": [dict(b) for b in bookmarks],
        }

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
        self._sealed.setdefault(journal.device_seq,
                                _Sealed(entry["cipher_sha256"], signed.sha256, appended.index))
        if sealing:
            manifest_path = sidecar(journal.media, MANIFEST_SUFFIX)
            self._write(lambda: os.replace(_envelope_temp(journal.media), manifest_path))
            self._write(journal.path.unlink)  # a journal, never media
            self._unsettled_dirs.add(journal.path.parent)
            self._schedule_settle()
        else:
            self._write(lambda: self._drop_journal(journal.path))
        if self.after_seal is not None:
            self.after_seal(journal.media, signed)
        return signed

    def _recover_one(self, journal: Journal) -> SignedManifest | None:
        logged = self._logged_manifest(journal)
        if logged is not None:  # crashed after the log append: only the journal is left
            if journal.envelope is not None:  # crashed in step 5 of a seal: finish it
                self._write(lambda: _ensure_manifest(journal))
            self._write(lambda: self._drop_journal(journal.path))
            return None
        if not journal.media.exists():
            self.log_event("recovered_segment", device_seq=journal.device_seq,
                           path=self._rel(journal.media), missing=True)
            self._write(lambda: self._drop_journal(journal.path))
            return None
        flags = ["recovered"]
        m = journal.manifest
        if m is not None and _file_matches(journal.media, m["file"]):
            manifest = dict(m)
        else:
            rec = self._write(lambda: recover_ciphertext(journal.media,
                                                         encrypted=journal.encrypted))
            result = SealResult(None, None, rec.cipher_sha256, rec.cipher_bytes, rec.chunks,
                                journal.encrypted)
            flags.append("truncated")
            manifest = self._manifest(journal, result, end=None, media=None, gps=GpsSummary(),
                                      bookmarks=(), matter=None, flags=(), clock=None)
            if m is not None:  # keep what the seal knew about the segment, not the hashes
                manifest.update({k: m[k] for k in ("end", "clock", "gps", "matter", "media",
                                                   "bookmarks")})
        manifest["flags"] = list(dict.fromkeys([*manifest["flags"], *flags]))
        self.log_event("recovered_segment", device_seq=journal.device_seq,
                       path=self._rel(journal.media), truncated="truncated" in flags,
                       cipher_bytes=manifest["file"]["cipher_bytes"])
        journal.manifest = manifest
        return self._commit(journal)

    def _logged_manifest(self, journal: Journal) -> str | None:
        envelope = sidecar(journal.media, MANIFEST_SUFFIX)
        try:
            if journal.envelope is not None:  # a sealed journal holds the envelope itself
                digest = parse_envelope(journal.envelope).sha256
            elif envelope.exists():
                digest = parse_envelope(envelope.read_bytes()).sha256
            else:
                return None
        except EvidenceError:
            return None
        for _, data in self._log.entries():
            entry = parse_canonical(data)
            if entry.get("kind") == "segment" and entry.get("manifest_sha256") == digest:
                return digest
        return None

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

    def _scan_log(self) -> None:
        """Sealed segments and their acknowledgements, as the log records them.

        An ``acknowledged`` entry counts only if it names a segment logged before it with the
        same hashes: the log is signed and append-only, so this is the registry's only source.
        """
        for index, data in self._log.entries():
            entry = parse_canonical(data)
            seq = entry.get("device_seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                continue
            if entry.get("kind") == "segment":
                self._sealed.setdefault(seq, _Sealed(str(entry.get("cipher_sha256")),
                                                     str(entry.get("manifest_sha256")), index))
            elif entry.get("type") == "acknowledged" and seq not in self._acks:
                sealed = self._sealed.get(seq)
                if sealed is not None and (entry.get("cipher_sha256"),
                                           entry.get("manifest_sha256")) == (
                        sealed.cipher_sha256, sealed.manifest_sha256):
                    self._acks[seq] = Acknowledgement(index, str(entry.get("receipt_sha256")))

    def _warn_legacy_acks(self) -> None:
        path = self._root / "state" / _LEGACY_ACKS
        if path.exists():
            log.warning("%s is ignored: a list of sequence numbers proves nothing; only station "
                        "receipts in the evidence log make a segment evictable", path)

    def _scan_next_seq(self) -> int:
        top = max(self._sealed, default=-1)
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


def _envelope_temp(media: Path) -> Path:
    """The manifest's temporary file, created at open and filled at seal (an atomic write
    split in time: the name ``agent.atomic.atomic_write`` would use, so verify knows it)."""
    return media.with_name(f".{sidecar(media, MANIFEST_SUFFIX).name}.tmp-{os.getpid()}")


def _envelope_temps(media: Path) -> list[Path]:
    """Temporary manifest files of ``media`` left by any process (a crash, then a restart)."""
    return sorted(media.parent.glob(f".{sidecar(media, MANIFEST_SUFFIX).name}.tmp-*"))


def _create_file(path: Path, data: bytes) -> None:
    """Create ``path`` (never replacing a file) holding ``data``, not fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _fill_file(path: Path, data: bytes) -> None:
    """Write ``data`` into the existing empty file ``path`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sealed_envelope(media: Path) -> bytes | None:
    """The complete signed envelope a seal left in a temporary file, if any."""
    for temp in _envelope_temps(media):
        data = temp.read_bytes()
        try:
            parse_envelope(data)
        except EvidenceError:
            continue  # empty (opened, never sealed) or torn by a power cut
        return data
    return None


def _ensure_manifest(journal: Journal) -> None:
    """Finish step 5 of an interrupted seal: ``.manifest.json`` durably holds the envelope."""
    assert journal.envelope is not None
    path = sidecar(journal.media, MANIFEST_SUFFIX)
    try:
        same = path.read_bytes() == journal.envelope
    except FileNotFoundError:
        same = False
    if not same:
        atomic_write(path, journal.envelope)


def _checked_origin(origin: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``origin`` that is canonical-JSON-safe and small (it goes into the log)."""
    out = dict(origin)
    try:
        size = len(canonical_json(out))
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"origin not loggable: {exc}") from None
    if size > _MAX_ORIGIN_BYTES:
        raise EvidenceError(f"origin larger than {_MAX_ORIGIN_BYTES} bytes")
    return out


def _file_matches(media: Path, file: Mapping[str, Any]) -> bool:
    try:
        with open(media, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return bool(digest == file["cipher_sha256"] and os.path.getsize(media)
                    == file["cipher_bytes"])
    except OSError:
        return False
