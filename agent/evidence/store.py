"""The evidence store: the one API the recorder uses to write evidence.

``open_segment`` → the muxer writes into ``OpenSegment.sink`` → ``seal`` (sign the manifest,
log it, checkpoint). ``recover`` seals whatever a crash left open. ``evict`` is the only code
path in the product that deletes media, and only for segments the back office acknowledged.

Crash safety of :meth:`EvidenceStore.seal`, step by step (a journal without a logged
manifest means "recover"):

1. close the sink (last chunk written, fsynced);
2. rewrite the journal with the complete unsigned manifest (the media is now known whole);
3. sign; write ``.manifest.json`` atomically;
4. append the log leaf + signed checkpoint (durable);
5. remove the journal.

Locking: ``_lock`` (an ``RLock``) serialises every state change — device sequence numbers,
the journals, the log append and the acknowledgement registry — so that a manifest's
``prev_leaf`` is the leaf immediately before its own. The sink itself belongs to the writer
thread; ``seal`` closes it, so call ``seal`` once the writer has stopped writing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from agent.atomic import atomic_write, fsync_dir
from agent.errors import EvidenceError, StorageError

from .age import Recipient
from .canonical import canonical_json, parse_canonical
from .journal import (
    JOURNAL_SUFFIX,
    MANIFEST_SUFFIX,
    Journal,
    media_name,
    recording_dir_name,
    sidecar,
)
from .keys import DeviceKey
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
from .sink import EvidenceSink, SealResult, recover_ciphertext, storage_error

__all__ = ["EvidenceStore", "OpenSegment", "RetentionViolation", "utc_now"]

_T = TypeVar("_T")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")


class RetentionViolation(EvidenceError, PermissionError):
    """Deleting this segment is not allowed: the back office has not acknowledged it."""


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
    ) -> None:
        if not _DEVICE_ID.match(device_id):
            raise EvidenceError(f"device id {device_id!r}: use letters, digits, '.', '-'")
        if encrypt and not recipients:
            raise EvidenceError("encryption is on but no age recipients are configured")
        self._root = Path(data_dir)
        self._key = key
        self._recipients = list(recipients)
        self._encrypt = encrypt
        self._device_id = device_id
        self._open_append = open_append
        self._clock = clock
        self._lock = threading.RLock()
        self._recordings = self._root / "recordings"
        self._recordings.mkdir(parents=True, exist_ok=True)
        (self._root / "state").mkdir(exist_ok=True)
        self._log = EvidenceLog(self._root / "log", key, origin_for(device_id))
        self._open: dict[int, OpenSegment] = {}
        self._acks = self._load_acks()
        self._next_seq = self._scan_next_seq()

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
        """Release the log (open segments stay journalled for :meth:`recover`)."""
        self._log.close()

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
                out = self._open_append(media)
            except OSError as exc:
                raise storage_error(exc, str(media)) from exc
            sink = EvidenceSink(out, self._recipients, encrypt=self._encrypt, name=media.name)
            sink.sync()
            fsync_dir(rec_dir)
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
        """Close, sign, log and checkpoint ``segment``; crash-safe at every step."""
        result = segment.sink.close()
        manifest = self._manifest(segment.journal, result, end=end, media=media,
                                  gps=gps or GpsSummary(), bookmarks=bookmarks, matter=matter,
                                  flags=flags, clock=clock)
        with self._lock:
            segment.journal.manifest = manifest
            self._write(segment.journal.write)
            signed = self._commit(segment.journal)
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
                    signed = self._recover_one(Journal.read(path))
                    if signed is not None:
                        out.append(signed)
        return out

    def log_event(self, kind: str, **fields: Any) -> AppendResult:
        """Append an event (``boot``, ``clock_step``, ``low_battery_shutdown``, …) to the log."""
        entry = {"utc": self._clock(), **fields, "kind": "event", "type": kind}
        with self._lock:
            return self._write(lambda: self._log.append(entry))

    def rotate_key(self) -> DeviceKey:
        """Retire the device key and switch to a new one; the rotation is logged (old key)."""
        with self._lock:
            new, rotation = DeviceKey.rotate(self._root / "keys" / "device.key")
            self.log_event("key_rotation", **rotation.event_fields())
            self._key = new
            self._log.set_key(new)
            return new

    def acknowledge(self, device_seq: int) -> None:
        """Record that the back office holds segment ``device_seq`` (persisted atomically)."""
        with self._lock:
            if device_seq in self._acks:
                return
            self._acks.add(device_seq)
            doc = {"acknowledged": sorted(self._acks)}
            self._write(lambda: atomic_write(self._root / "state" / "acks.json",
                                             canonical_json(doc)))

    def acknowledged(self, device_seq: int) -> bool:
        """Whether the back office acknowledged segment ``device_seq``."""
        with self._lock:
            return device_seq in self._acks

    def evict(self, segment_path: Path) -> int:
        """Delete an acknowledged segment's media (manifest kept); returns bytes freed.

        The eviction is logged before the file goes. Raises :class:`RetentionViolation` for a
        segment that is unacknowledged, open or unsealed.
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
            if seq not in self._acks:
                raise RetentionViolation(
                    f"{media}: segment {seq} not acknowledged by the back office; not deleted")
            size = media.stat().st_size
            self.log_event("eviction", device_seq=seq, path=self._rel(media),
                           manifest_sha256=signed.sha256,
                           cipher_sha256=signed.manifest["file"]["cipher_sha256"])
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

    def _commit(self, journal: Journal) -> SignedManifest:
        """Steps 3-5 of a seal, under the lock: chain, sign, write, log, drop the journal."""
        assert journal.manifest is not None
        manifest = dict(journal.manifest)
        last = self._log.last_leaf()
        manifest["prev_leaf"] = last.hex() if last else None
        signed = sign_manifest(manifest, self._key)
        self._write(lambda: atomic_write(sidecar(journal.media, MANIFEST_SUFFIX),
                                         signed.envelope()))
        entry = {"kind": "segment", "device_seq": journal.device_seq,
                 "recording_id": journal.info.recording_id, "seq": journal.info.seq,
                 "path": self._rel(journal.media), "manifest_sha256": signed.sha256,
                 "cipher_sha256": manifest["file"]["cipher_sha256"]}
        self._write(lambda: self._log.append(entry))
        self._write(lambda: self._drop_journal(journal.path))
        return signed

    def _recover_one(self, journal: Journal) -> SignedManifest | None:
        logged = self._logged_manifest(journal)
        if logged is not None:  # crashed after the log append: only the journal is left
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
        if not envelope.exists():
            return None
        try:
            digest = parse_envelope(envelope.read_bytes()).sha256
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

    def _load_acks(self) -> set[int]:
        path = self._root / "state" / "acks.json"
        if not path.exists():
            return set()
        try:
            return {int(x) for x in parse_canonical(path.read_bytes())["acknowledged"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise EvidenceError(f"{path}: unreadable acknowledgement registry ({exc})") from None

    def _scan_next_seq(self) -> int:
        top = -1
        for _, data in self._log.entries():
            entry = parse_canonical(data)
            if entry.get("kind") == "segment":
                top = max(top, int(entry["device_seq"]))
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


def _file_matches(media: Path, file: Mapping[str, Any]) -> bool:
    try:
        with open(media, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return bool(digest == file["cipher_sha256"] and os.path.getsize(media)
                    == file["cipher_bytes"])
    except OSError:
        return False
