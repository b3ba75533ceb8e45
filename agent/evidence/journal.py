"""Segment journals: what is needed to seal a segment if the process dies first.

A journal ``<segment>.open.json`` is written (atomically) when a segment opens, and rewritten
with the complete unsigned manifest once the media file is closed. A journal found at
start-up therefore means "this segment was never sealed": stage ``open`` (the media may be
cut mid-chunk) or stage ``closed`` (the media is complete; only signing and logging are
missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write
from hw.errors import EvidenceError

from .canonical import canonical_json, parse_canonical
from .manifest import ClockInfo, SegmentInfo, Timestamp

__all__ = [
    "JOURNAL_SUFFIX",
    "MANIFEST_SUFFIX",
    "Journal",
    "compact_utc",
    "media_name",
    "recording_dir_name",
    "sidecar",
]

JOURNAL_SUFFIX = ".open.json"
MANIFEST_SUFFIX = ".manifest.json"
_UTC = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})\d{3}Z$")


def compact_utc(utc: str, *, millis: bool) -> str:
    """``2026-11-27T04:03:18.123456Z`` → ``20261127T040318.123Z`` (or ``…T040318Z``)."""
    m = _UTC.match(utc)
    if not m:
        raise ValueError(f"UTC time {utc!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    y, mo, d, h, mi, s, ms = m.groups()
    return f"{y}{mo}{d}T{h}{mi}{s}" + (f".{ms}Z" if millis else "Z")


def recording_dir_name(device_id: str, info: SegmentInfo) -> str:
    """``<YYYYmmddTHHMMSSZ>_<device_id>_<recording_id[:8]>`` (sorts chronologically)."""
    return f"{compact_utc(info.start.utc, millis=False)}_{device_id}_{info.recording_id[:8]}"


def media_name(device_id: str, info: SegmentInfo, *, encrypted: bool) -> str:
    """``<device_id>_<YYYYmmddTHHMMSS.fffZ>_<recording_id[:8]>_<seq:05d>.<ext>[.age]``."""
    stem = (f"{device_id}_{compact_utc(info.start.utc, millis=True)}_"
            f"{info.recording_id[:8]}_{info.seq:05d}")
    return stem + f".{info.extension}" + (".age" if encrypted else "")


def sidecar(media: Path, suffix: str) -> Path:
    """The manifest or journal path beside a media file."""
    name = media.name.removesuffix(".age").rsplit(".", 1)[0]  # drop .mp4 / .jpg
    return media.with_name(name + suffix)


@dataclass(slots=True)
class Journal:
    """The persisted state of one unsealed segment."""

    path: Path
    media: Path
    device_seq: int
    encrypted: bool
    info: SegmentInfo
    manifest: dict[str, Any] | None = None  # set once the media file is closed
    envelope: bytes | None = None  # the signed envelope a seal left beside it (EvidenceStore)

    def write(self) -> None:
        """Persist atomically."""
        i = self.info
        doc = {
            "format": "bodycam-journal/1", "media": self.media.name,
            "device_seq": self.device_seq, "encrypted": self.encrypted,
            "info": {"recording_id": i.recording_id, "seq": i.seq,
                     "start": i.start.to_json(), "clock": i.clock.to_json(),
                     "officer_id": i.officer_id, "unit": i.unit, "boot_id": i.boot_id,
                     "preroll": i.preroll, "flags": list(i.flags)},
            "manifest": self.manifest,
        }
        atomic_write(self.path, canonical_json(doc))

    @classmethod
    def read(cls, path: Path) -> Journal:
        """Load a journal; EvidenceError naming the file if it is unreadable."""
        try:
            doc = parse_canonical(path.read_bytes())
            i = doc["info"]
            info = SegmentInfo(
                recording_id=i["recording_id"], seq=i["seq"],
                start=Timestamp(**i["start"]), clock=ClockInfo(**i["clock"]),
                officer_id=i["officer_id"], unit=i["unit"], boot_id=i["boot_id"],
                preroll=i["preroll"], flags=tuple(i["flags"]))
            return cls(path, path.with_name(doc["media"]), doc["device_seq"],
                       doc["encrypted"], info, doc["manifest"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EvidenceError(f"{path}: unreadable segment journal ({exc})") from None
