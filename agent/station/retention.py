"""Retention at the station: what may be deleted, and deleting it — never early, never held.

A recording is kept for its matter's ``retention_days`` (the longest of its matters; the
catalogue's default when it has none or a code the catalogue does not know) counted from the
recording's end (the last segment's signed ``end.utc``). A recording whose end cannot be read
from a verified manifest is never due: the station cannot show it is old enough. A recording
under legal hold (``bodycam station hold``) is never due.

Deleting (``--apply``) is the one place the write-once store loses a file. Steps per segment:

1. the hold is checked again (a hold placed since the listing wins: nothing is deleted);
2. the deletion is recorded first: one entry in the station's own signed log
   (:mod:`.stationlog`: recording, segments and their cipher hashes, matters, retention period,
   reason, who — an entry an index administrator cannot erase unseen; if it cannot be
   appended nothing is deleted), then a ``deletions`` row and a ``retention-delete`` event per
   segment, so no file ever disappears without a record; a crash after this step leaves a
   recorded deletion whose files are still present, and the next ``--apply`` finishes it
   (and logs that it did);
3. each file (media, manifest, credential) is made writable again and unlinked;
4. the directory is fsynced, and removed (parent fsynced) once empty.

The index rows (segment, receipt, proofs) stay: the history of what was held is not deleted.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent.atomic import fsync_dir
from agent.evidence.journal import sidecar
from agent.evidence.layout import CREDENTIAL_SUFFIX
from agent.evidence.utc import iso_utc, parse_utc
from agent.matters.catalogue import MatterCatalogue
from hw.errors import EvidenceError

from .desk import RecordingView
from .index import Index
from .stationlog import StationLog

__all__ = ["Due", "apply_retention", "due_recordings"]


@dataclass(frozen=True, slots=True)
class Due:
    """A recording's retention: until when it is kept, and whether it is due now."""

    view: RecordingView
    days: int
    keep_until: datetime | None  # None: its end is unknown
    due: bool
    why: str


def _judge(view: RecordingView, catalogue: MatterCatalogue, now: datetime) -> Due:
    codes = view.matter_codes
    days = max((catalogue.retention_days(c) for c in codes),
               default=catalogue.retention_days(None))
    if view.hold is not None:
        return Due(view, days, None, False, f"under legal hold: {view.hold[0]}")
    if all(s.state == "deleted" for s in view.segments):
        if any(s.media.exists() or s.manifest_path.exists() for s in view.segments):
            return Due(view, days, None, True, "finishing a recorded deletion")
        return Due(view, days, None, False, "already deleted")
    end = view.end_utc
    if end is None or any(s.state not in ("verified", "deleted") for s in view.segments):
        return Due(view, days, None, False, "end unknown or a segment unverified: kept")
    try:
        until = parse_utc(end) + timedelta(days=days)
    except ValueError:
        return Due(view, days, None, False, "end time unreadable: kept")
    if now < until:
        return Due(view, days, until, False, f"kept until {iso_utc(until, 0)}")
    matters = ", ".join(codes) or "no matter (default)"
    return Due(view, days, until, True, f"retention of {days} days for {matters} ended "
               f"{iso_utc(until, 0)}")


def due_recordings(views: list[RecordingView], catalogue: MatterCatalogue,
                   now: datetime) -> list[Due]:
    """Every recording's retention verdict, in listing order."""
    return [_judge(v, catalogue, now) for v in views]


def _unlink(path: Path) -> bool:
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, 0o644)
        os.unlink(path)
        return True
    return False


def apply_retention(index: Index, due: Due, *, by: str, utc: str, station_log: StationLog) -> int:
    """Delete a due recording's segments (module steps); the number of files removed."""
    if not due.due:
        raise ValueError(f"recording {due.view.recording_id} is not due: {due.why}")
    if due.view.recording_id in index.holds():  # step 2: a hold placed meanwhile wins
        raise ValueError(f"recording {due.view.recording_id} was put on hold meanwhile")
    try:
        station_log.append("retention-delete", {
            "recording_id": due.view.recording_id, "device_id": due.view.device_id,
            "segments": [{"device_seq": s.row.device_seq, "seq": s.row.seq, "path": s.row.path,
                          "cipher_sha256": s.row.cipher_sha256,
                          "manifest_sha256": s.row.manifest_sha256} for s in due.view.segments],
            "matters": due.view.matter_codes, "retention_days": due.days,
            "reason": due.why, "by": by, "utc": utc})
    except (EvidenceError, OSError) as exc:
        raise ValueError(f"recording {due.view.recording_id}: the station log could not record "
                         f"the deletion ({exc}); nothing was deleted") from None
    removed = 0
    for seg in due.view.segments:
        row = seg.row
        if index.record_deletion(row.device_id, row.device_seq, utc, due.why, by):
            index.event(utc, row.device_id, "retention-delete",
                        f"recording {row.recording_id} device_seq {row.device_seq} {row.path} "
                        f"by {by}: {due.why}")
        for path in (seg.media, seg.manifest_path, sidecar(seg.media, CREDENTIAL_SUFFIX)):
            removed += _unlink(path)
        fsync_dir(seg.media.parent)
    folder = due.view.segments[0].media.parent
    with contextlib.suppress(OSError):
        folder.rmdir()
        fsync_dir(folder.parent)
    return removed
