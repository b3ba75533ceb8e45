"""The evidence desk's view of a station: what it holds, per recording.

The index knows segments (device, sequence, hashes, receipt); the signed manifests in the store
know the rest (officer, matter, start and end, checklist marks). A :class:`RecordingView` joins
the two for one recording, and says plainly whether every segment is still as it was received,
whether it is under legal hold, and which of its segments were deleted at the end of retention.
Manifests are read bounded and parsed like any untrusted file: a damaged one makes its segment
``changed``, never a traceback. Each segment also shows the state of its device-signed C2PA
credential as the station checked it at upload (``valid``, ``invalid`` with the reason, or
``absent``; STATION-API §4a).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.evidence.inventory import UnsafeFile, read_bounded
from agent.evidence.journal import MANIFEST_SUFFIX, sidecar
from agent.evidence.manifest import parse_envelope
from hw.errors import VerificationError

from .index import ABSENT_CREDENTIAL, CredentialRow, Index, SegmentRow
from .ingest import MAX_FINALISE_BYTES
from .uploads import sha256_file

__all__ = ["RecordingView", "SegmentView", "find_recording", "recordings"]


@dataclass(frozen=True, slots=True)
class SegmentView:
    """One stored segment: its index row, its manifest (None if unreadable), its state."""

    row: SegmentRow
    media: Path
    manifest_path: Path
    manifest: dict[str, Any] | None
    state: str  # verified | changed | missing-from-store | deleted
    c2pa: dict[str, Any] = field(default_factory=lambda: dict(ABSENT_CREDENTIAL))


@dataclass
class RecordingView:
    """One recording as the station holds it."""

    device_id: str
    recording_id: str
    segments: list[SegmentView] = field(default_factory=list)
    hold: tuple[str, str, str] | None = None  # (reason, by, utc)

    @property
    def manifests(self) -> list[dict[str, Any]]:
        """The readable manifests, in segment order."""
        return [s.manifest for s in self.segments if s.manifest is not None]

    def _first(self, key: str) -> Any:
        return next((m.get(key) for m in self.manifests if m.get(key) is not None), None)

    @property
    def officer_id(self) -> str | None:
        v = self._first("officer_id")
        return str(v) if v is not None else None

    @property
    def matter_codes(self) -> list[str]:
        """Every matter code the recording's manifests name, in order of first appearance."""
        codes: list[str] = []
        for m in self.manifests:
            code = (m.get("matter") or {}).get("code") if isinstance(m.get("matter"), dict) else None
            if isinstance(code, str) and code not in codes:
                codes.append(code)
        return codes

    @property
    def start_utc(self) -> str | None:
        ms = self.manifests
        return str(ms[0]["start"]["utc"]) if ms and isinstance(ms[0].get("start"), dict) else None

    @property
    def end_utc(self) -> str | None:
        ms = self.manifests
        return str(ms[-1]["end"]["utc"]) if ms and isinstance(ms[-1].get("end"), dict) else None

    @property
    def cipher_bytes(self) -> int:
        return sum(s.row.cipher_bytes for s in self.segments)

    @property
    def state(self) -> str:
        """``verified`` if every segment is; else the worst segment state."""
        states = {s.state for s in self.segments}
        for worst in ("changed", "missing-from-store", "deleted"):
            if worst in states:
                return worst
        return "verified"

    def to_json(self) -> dict[str, Any]:
        """The listing's row (``station list --json``)."""
        from agent.matters.coverage import recording_coverage

        try:
            cov: dict[str, Any] | None = (recording_coverage(self.manifests).to_json()
                                          if self.manifests else None)
        except (ValueError, KeyError, TypeError, ArithmeticError):
            cov = None
        return {"device_id": self.device_id, "recording_id": self.recording_id,
                "officer_id": self.officer_id, "matters": self.matter_codes,
                "start_utc": self.start_utc, "end_utc": self.end_utc,
                "segments": len(self.segments), "cipher_bytes": self.cipher_bytes,
                "state": self.state,
                "hold": ({"reason": self.hold[0], "by": self.hold[1], "utc": self.hold[2]}
                         if self.hold else None),
                "coverage": cov,
                "receipts": [{"device_seq": s.row.device_seq, "stored_utc": s.row.stored_utc,
                              "receipt": json.loads(s.row.receipt), "state": s.state,
                              "c2pa": s.c2pa} for s in self.segments]}


def _view(store_root: Path, row: SegmentRow, deleted: bool, check: bool,
          credential: CredentialRow | None = None) -> SegmentView:
    view = _plain_view(store_root, row, deleted, check)
    if credential is not None:
        view.c2pa.update(credential.to_json())
    return view


def _plain_view(store_root: Path, row: SegmentRow, deleted: bool, check: bool) -> SegmentView:
    media = store_root / row.device_id / row.path
    manifest_path = sidecar(media, MANIFEST_SUFFIX)
    if deleted:
        return SegmentView(row, media, manifest_path, None, "deleted")
    if not manifest_path.is_file() and not manifest_path.is_symlink():
        return SegmentView(row, media, manifest_path, None, "missing-from-store")
    try:
        signed = parse_envelope(read_bounded(manifest_path, MAX_FINALISE_BYTES))
    except (OSError, UnsafeFile, VerificationError):
        return SegmentView(row, media, manifest_path, None, "changed")
    if signed.sha256 != row.manifest_sha256:
        return SegmentView(row, media, manifest_path, None, "changed")
    if not media.is_file():
        return SegmentView(row, media, manifest_path, signed.manifest, "missing-from-store")
    if check:
        try:
            same = sha256_file(media) == (row.cipher_sha256, row.cipher_bytes)
        except OSError:
            same = False
        if not same:
            return SegmentView(row, media, manifest_path, signed.manifest, "changed")
    return SegmentView(row, media, manifest_path, signed.manifest, "verified")


def recordings(index: Index, store_root: Path, *, check: bool = False) -> list[RecordingView]:
    """Every recording the index knows, oldest first (by start, then id)."""
    deleted = index.deletions()
    holds = index.holds()
    credentials = index.credentials()
    by_rec: dict[tuple[str, str], RecordingView] = {}
    rows: dict[tuple[str, str], list[SegmentRow]] = defaultdict(list)
    for row in index.segments():
        rows[(row.device_id, row.recording_id)].append(row)
    for (device, rid), segs in rows.items():
        view = RecordingView(device, rid, hold=holds.get(rid))
        for row in sorted(segs, key=lambda r: (r.seq, r.device_seq)):
            view.segments.append(_view(store_root, row, (device, row.device_seq) in deleted,
                                       check, credentials.get((device, row.device_seq))))
        by_rec[(device, rid)] = view
    return sorted(by_rec.values(), key=lambda v: (v.start_utc or "", v.recording_id))


def find_recording(index: Index, store_root: Path, recording_id: str) -> RecordingView:
    """The recording whose id is, or starts with, ``recording_id`` (at least 8 hex digits);
    LookupError if there is none or the prefix is ambiguous."""
    rid = recording_id.lower()
    if len(rid) < 8 or any(c not in "0123456789abcdef" for c in rid):
        raise LookupError(f"{recording_id!r} is not a recording id (at least 8 hex digits)")
    found = [v for v in recordings(index, store_root) if v.recording_id.startswith(rid)]
    if not found:
        raise LookupError(f"the station holds no recording {recording_id}")
    if len(found) > 1:
        raise LookupError(f"{recording_id} names {len(found)} recordings; give more digits")
    return found[0]
