"""The evidence store: the one API the recorder uses to write evidence.

``open_segment`` → the muxer writes into ``OpenSegment.sink`` → ``seal`` (sign the manifest,
log it, checkpoint). ``recover`` seals whatever a crash left open. ``evict`` is the only code
path in the product that deletes media, and only for segments a collection station receipted.

The store is assembled from parts with a job each: the crash-safe open/seal/settle sequence
and the state it shares (:mod:`~agent.evidence.segment_writer`, which this class extends),
what a receipt permits (:mod:`~agent.evidence.retention_guard`), the index of sealed segments
and acknowledgements derived from the log (:mod:`~agent.evidence.sealed_index`), one
segment's files and manifest fields (:mod:`~agent.evidence.segment_files`) and the key
rotation (:mod:`~agent.evidence.key_rotation`). Here: recovery after a crash, log events, and
applying the receipt rules -- each state change under the writer's ``_lock``.

Recovery writes every file durably before its next step (the seal's older, slower sequence):
a crash during recovery is recovered the same way at the next start.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.atomic import fsync_dir
from hw.errors import EvidenceError

from .canonical import parse_canonical
from .journal import JOURNAL_SUFFIX, MANIFEST_SUFFIX, Journal, sidecar
from .key_rotation import rotate_and_log
from .keys import KEY_NAME, DeviceKey
from .log import AppendResult
from .manifest import GpsSummary, SignedManifest, parse_envelope
from .receipt import Receipt
from .retention_guard import (
    RetentionViolation,
    acknowledged_entry,
    checked_origin,
    eviction_fields,
    sealed_for_receipt,
)
from .sealed_index import Acknowledgement
from .segment_files import ensure_manifest, envelope_temps, file_matches, sealed_envelope
from .segment_writer import OpenSegment, SegmentWriter, utc_now
from .sink import SealResult, recover_ciphertext

__all__ = ["Acknowledgement", "EvidenceStore", "OpenSegment", "RetentionViolation", "utc_now"]


class EvidenceStore(SegmentWriter):
    """Segments, manifests, the log and the acknowledgement registry under one data dir."""

    def recover(self) -> list[SignedManifest]:
        """Seal every segment a crash left unsealed (flagged ``recovered``, maybe ``truncated``)."""
        out: list[SignedManifest] = []
        with self._lock:
            open_paths = {s.journal.path for s in self._open.values()}
            for path in sorted(self._recordings.glob(f"*/*{JOURNAL_SUFFIX}")):
                if path not in open_paths:
                    journal = Journal.read(path)
                    envelope = sealed_envelope(journal.media)
                    if envelope is not None:  # the seal got past its first fsync
                        journal.envelope = envelope
                        journal.manifest = parse_envelope(envelope).manifest
                    signed = self._recover_one(journal)
                    if signed is not None:
                        out.append(signed)
                    temps = envelope_temps(journal.media)
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
            new, index = self._write(
                lambda: rotate_and_log(self._log, path, utc=self._clock()))
            self._key = new
            self._index.rotations.append(index)
            return new

    def key_rotations(self) -> list[bytes]:
        """The log's ``key_rotation`` entries (exact bytes), oldest first: what lets someone
        who trusts an older key trust the one signing now."""
        with self._lock:
            return [self._log.entry(i) for i in self._index.rotations]

    def leaf_index(self, device_seq: int) -> int | None:
        """The log index of a sealed segment's entry (None if it is not sealed)."""
        with self._lock:
            sealed = self._index.get(device_seq)
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
        where = checked_origin(origin)
        with self._lock:
            sealed = sealed_for_receipt(receipt, station_keys=self._station_keys,
                                        device_id=self._device_id, open_seqs=self._open,
                                        index=self._index)
            seq = receipt.device_seq
            known = self._index.acknowledgement(seq)
            if known is not None:
                return known.ack_index
            entry = acknowledged_entry(receipt, sealed, utc=self._clock(), origin=where)
            result = self._write(lambda: self._log.append(entry))
            self._index.acknowledge(seq, result.index, receipt.sha256)
            return result.index

    def acknowledged(self, device_seq: int) -> bool:
        """Whether a station receipt for segment ``device_seq`` is in the log."""
        with self._lock:
            return self._index.acknowledgement(device_seq) is not None

    def acknowledgement(self, device_seq: int) -> Acknowledgement | None:
        """The logged acknowledgement of segment ``device_seq``, if any."""
        with self._lock:
            return self._index.acknowledgement(device_seq)

    def evict(self, segment_path: Path) -> int:
        """Delete a receipted segment's media (manifest kept); returns bytes freed.

        The eviction is logged before the file goes, citing the ``acknowledged`` entry (its log
        index and receipt hash). Raises :class:`RetentionViolation` for a segment that has no
        logged receipt, is open or unsealed, or whose manifest is not the one receipted.
        """
        media = Path(segment_path)
        with self._lock:
            fields = eviction_fields(media, index=self._index, open_seqs=self._open, rel=self._rel)
            size = media.stat().st_size
            self.log_event("eviction", **fields)
            media.unlink()  # the one deletion of media in the product (see module docstring)
            fsync_dir(media.parent)
            return size

    # --- internals -------------------------------------------------------------------------
    def _recover_one(self, journal: Journal) -> SignedManifest | None:
        logged = self._logged_manifest(journal)
        if logged is not None:  # crashed after the log append: only the journal is left
            if journal.envelope is not None:  # crashed in step 5 of a seal: finish it
                self._write(lambda: ensure_manifest(journal))
            self._write(lambda: self._drop_journal(journal.path))
            return None
        if not journal.media.exists():
            self.log_event("recovered_segment", device_seq=journal.device_seq,
                           path=self._rel(journal.media), missing=True)
            self._write(lambda: self._drop_journal(journal.path))
            return None
        flags = ["recovered"]
        m = journal.manifest
        if m is not None and file_matches(journal.media, m["file"]):
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
