"""Checklist coverage: did a recording show what its matter requires, as one whole?

The seed requires every enforcement matter to be recorded as one whole, continuous process
with a list of things on the record. This module reads the manifests of a recording and
answers, in plain language and as JSON:

* which required checklist items of each matter were marked, when (media time from the
  start of the recording, segment and offset in it, UTC), and which are missing;
* whether the recording is continuous: segments ``0..n`` without holes, each segment
  starting where the previous ended (within one frame interval), no frames missing inside
  one, none ``truncated``, ``recovered`` or sealed after a ``fault`` (judged by
  :mod:`agent.matters.continuity`);
* when the matter changed, and whether (part of) the recording is uncategorised.

A mark counts for the matter that was active when it was made: changing the matter
mid-recording opens a new span (a ``matter:CODE`` bookmark), and a span's matter entry is
taken from the manifest sealed under it. Before a change inside the first segment the matter
is on record only if the change bookmark names it (``"previous": CODE``); otherwise that
stretch counts as uncategorised.

Manifests are read as data here; their signatures, hashes and the log are checked by
``bodycam verify``, which calls :func:`coverage_for_dir` beside its own checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from agent.evidence.utc import iso_utc, parse_utc
from agent.matters.catalogue import MatterCatalogue
from agent.matters.continuity import Discontinuity, continuity, segment_part

__all__ = [
    "Mark",
    "MatterChange",
    "MatterCoverage",
    "RecordingCoverage",
    "coverage_for_dir",
    "recording_coverage",
]

log = logging.getLogger(__name__)

_MANIFEST_SUFFIX: Final = ".manifest.json"


@dataclass(frozen=True, slots=True)
class Mark:
    """A checklist item marked during the recording."""

    item: str
    seq: int
    offset_us: int
    media_us: int
    utc: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"item": self.item, "seq": self.seq, "offset_us": self.offset_us,
                "media_us": self.media_us, "utc": self.utc}


@dataclass(frozen=True, slots=True)
class MatterChange:
    """The active matter changed while recording."""

    seq: int
    offset_us: int
    media_us: int
    utc: str | None
    previous: str | None
    matter: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"seq": self.seq, "offset_us": self.offset_us, "media_us": self.media_us,
                "utc": self.utc, "previous": self.previous, "matter": self.matter}


@dataclass(slots=True)
class MatterCoverage:
    """One matter of a recording: its required items, marked or missing."""

    code: str
    name_zh: str | None
    name_en: str | None
    required: tuple[str, ...] | None  # None: the manifests do not say (entry without checklist)
    spans: list[tuple[int, int]] = field(default_factory=list)  # media µs [start, end)
    marks: list[Mark] = field(default_factory=list)

    @property
    def marked(self) -> dict[str, Mark]:
        """First mark of each item."""
        out: dict[str, Mark] = {}
        for m in self.marks:
            out.setdefault(m.item, m)
        return out

    @property
    def missing(self) -> tuple[str, ...]:
        """Required items never marked while this matter was active."""
        marked = self.marked
        return tuple(i for i in self.required or () if i not in marked)

    @property
    def complete(self) -> bool:
        """Every required item was marked (False when the requirements are unknown)."""
        return self.required is not None and not self.missing

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"code": self.code, "name_zh": self.name_zh, "name_en": self.name_en,
                "required": list(self.required) if self.required is not None else None,
                "complete": self.complete, "missing": list(self.missing),
                "marked": {k: v.to_json() for k, v in self.marked.items()},
                "marks": [m.to_json() for m in self.marks],
                "spans_us": [list(s) for s in self.spans]}


@dataclass(slots=True)
class RecordingCoverage:
    """Checklist coverage and continuity of one recording."""

    recording_id: str
    segments: list[int]
    start_utc: str | None
    end_utc: str | None
    duration_us: int
    matters: list[MatterCoverage]
    changes: list[MatterChange]
    discontinuities: list[Discontinuity]
    uncategorised_us: int
    unassigned_marks: list[Mark]
    catalogue: MatterCatalogue | None = None

    @property
    def continuous(self) -> bool:
        """One whole: no hole, gap, overlap, lost frame or damaged segment."""
        return not self.discontinuities

    @property
    def uncategorised(self) -> bool:
        """No matter was assigned at any time of the recording."""
        return not self.matters

    @property
    def complete(self) -> bool:
        """Categorised, every matter's required items marked, and continuous."""
        return bool(self.matters) and all(m.complete for m in self.matters) and self.continuous

    def to_json(self) -> dict[str, Any]:
        """JSON form (for ``bodycam verify --json``)."""
        return {
            "recording_id": self.recording_id, "segments": list(self.segments),
            "start_utc": self.start_utc, "end_utc": self.end_utc,
            "duration_us": self.duration_us, "continuous": self.continuous,
            "complete": self.complete, "uncategorised": self.uncategorised,
            "uncategorised_us": self.uncategorised_us,
            "matters": [m.to_json() for m in self.matters],
            "changes": [c.to_json() for c in self.changes],
            "discontinuities": [d.to_json() for d in self.discontinuities],
            "unassigned_marks": [m.to_json() for m in self.unassigned_marks],
        }


# --- reading ------------------------------------------------------------------------------------
def coverage_for_dir(path: Path | str, *, catalogue: MatterCatalogue | None = None
                     ) -> list[RecordingCoverage]:
    """Coverage of every recording under ``path`` (a data directory, its ``recordings/``,
    or one recording's directory), ordered by start time.

    Unreadable manifests are skipped with a warning: ``bodycam verify`` reports them.
    """
    root = Path(path)
    if (root / "recordings").is_dir():
        root = root / "recordings"
    by_recording: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(root.rglob(f"*{_MANIFEST_SUFFIX}")):
        manifest = _read_manifest(f)
        if manifest is not None:
            by_recording.setdefault(str(manifest["recording_id"]), []).append(manifest)
    out = [recording_coverage(ms, catalogue=catalogue) for ms in by_recording.values()]
    out.sort(key=lambda c: (c.start_utc or "", c.recording_id))
    return out


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
        manifest = doc["manifest"]
        if not isinstance(manifest, dict) or not isinstance(manifest.get("seq"), int):
            raise TypeError("no integer seq")
        if not isinstance(manifest.get("recording_id"), str):
            raise TypeError("no recording_id")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: manifest not readable for coverage (%s)", path, exc)
        return None
    return manifest


# --- analysis -----------------------------------------------------------------------------------
def recording_coverage(manifests: Iterable[Mapping[str, Any]], *,
                       catalogue: MatterCatalogue | None = None) -> RecordingCoverage:
    """Coverage of one recording from its segment manifests (any order)."""
    segs = sorted(manifests, key=lambda m: int(m["seq"]))
    if not segs:
        raise ValueError("a recording needs at least one manifest")
    ids = {str(m["recording_id"]) for m in segs}
    if len(ids) != 1:
        raise ValueError(f"manifests of several recordings: {sorted(ids)}")
    t0 = _start_mono(segs[0])
    cov = RecordingCoverage(
        recording_id=ids.pop(), segments=[int(m["seq"]) for m in segs],
        start_utc=segment_part(segs[0], "start").get("utc"), end_utc=segment_part(segs[-1], "end").get("utc"),
        duration_us=max(0, _end_mono(segs[-1]) - t0) if t0 is not None else 0,
        matters=[], changes=[], discontinuities=continuity(segs),
        uncategorised_us=0, unassigned_marks=[], catalogue=catalogue)
    _walk_matters(segs, cov, t0 or 0)
    return cov


class _Span:
    """The matter active from ``start_us`` (media time) on; None = uncategorised."""

    def __init__(self, matter: MatterCoverage | None, start_us: int) -> None:
        self.matter = matter
        self.start_us = start_us


def _walk_matters(segs: Sequence[Mapping[str, Any]], cov: RecordingCoverage, t0: int) -> None:
    by_code: dict[str, MatterCoverage] = {}

    def coverage_of(code: str | None, from_index: int) -> MatterCoverage | None:
        if code is None:
            return None
        if code not in by_code:
            by_code[code] = _matter_coverage(code, segs[from_index:])
            cov.matters.append(by_code[code])
        return by_code[code]

    def close(span: _Span, end_us: int) -> None:
        if end_us <= span.start_us:
            return
        if span.matter is None:
            cov.uncategorised_us += end_us - span.start_us
        else:
            span.matter.spans.append((span.start_us, end_us))

    span: _Span | None = None
    for i, seg in enumerate(segs):
        seg_start = (_start_mono(seg) or t0) - t0
        marks = sorted((b for b in seg.get("bookmarks") or () if isinstance(b, dict)),
                       key=lambda b: int(b.get("mono_us", 0)))
        changes_here = [b for b in marks if str(b.get("label", "")).startswith("matter:")]
        if not changes_here or span is None:
            # Sealed under one matter; before a first change, the matter the change bookmark
            # names as ``previous`` (when it carries one), else not on record.
            code = _code(seg.get("matter")) if not changes_here else _previous(changes_here[0])
            if span is None or (span.matter.code if span.matter else None) != code:
                if span is not None:
                    close(span, seg_start)
                span = _Span(coverage_of(code, i), seg_start)
        for b in marks:
            at = int(b.get("mono_us", t0))
            media_us = at - t0
            label = str(b.get("label", ""))
            if label.startswith("matter:"):
                new_code = label.split(":", 1)[1].strip().upper()  # codes are upper-case
                previous = span.matter.code if span.matter else None
                cov.changes.append(MatterChange(int(seg["seq"]), int(b.get("offset_us", 0)),
                                                media_us, _utc_at(seg, at), previous, new_code))
                close(span, media_us)
                span = _Span(coverage_of(new_code, i), media_us)
            elif label.startswith("checklist:") and b.get("item"):
                mark = Mark(str(b["item"]), int(seg["seq"]), int(b.get("offset_us", 0)),
                            media_us, _utc_at(seg, at))
                (span.matter.marks if span.matter else cov.unassigned_marks).append(mark)
    if span is not None:
        close(span, cov.duration_us)


def _matter_coverage(code: str, later: Sequence[Mapping[str, Any]]) -> MatterCoverage:
    """The entry of ``code`` as the first manifest sealed under it records it."""
    entry = next((m["matter"] for m in later if _code(m.get("matter")) == code), None)
    if entry is None:
        return MatterCoverage(code, None, None, None)
    required = entry.get("required_items")
    return MatterCoverage(
        code, entry.get("name_zh"), entry.get("name_en"),
        tuple(str(r) for r in required) if isinstance(required, list) else None)


# --- small helpers ------------------------------------------------------------------------------
def _code(matter: Any) -> str | None:
    if isinstance(matter, Mapping) and isinstance(matter.get("code"), str):
        return str(matter["code"])
    return None


def _previous(bookmark: Mapping[str, Any]) -> str | None:
    prev = bookmark.get("previous")
    return prev if isinstance(prev, str) and prev else None


def _start_mono(seg: Mapping[str, Any]) -> int | None:
    v = segment_part(seg, "start").get("mono_us")
    return v if isinstance(v, int) else None


def _end_mono(seg: Mapping[str, Any]) -> int:
    """End of a segment; for a truncated one, its last bookmark or its start."""
    v = segment_part(seg, "end").get("mono_us")
    if isinstance(v, int):
        return v
    marks = [b.get("mono_us") for b in seg.get("bookmarks") or () if isinstance(b, dict)]
    return max([m for m in marks if isinstance(m, int)] + [_start_mono(seg) or 0])


def _utc_at(seg: Mapping[str, Any], mono_us: int) -> str | None:
    """UTC of a monotonic instant inside ``seg``, from the segment's start pair."""
    start = segment_part(seg, "start")
    utc, mono = start.get("utc"), start.get("mono_us")
    if not isinstance(utc, str) or not isinstance(mono, int):
        return None
    try:
        t = parse_utc(utc)
    except ValueError:
        return None
    return iso_utc(t + timedelta(microseconds=mono_us - mono))

