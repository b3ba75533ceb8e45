"""The uploader's backlog, derived from the log: what is owed, and how long it has waited.

Instant: a list of canonical log entries stands in for the evidence log (the backlog reads
only its size and entries), and real files stand in for the sealed media.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.evidence.canonical import canonical_json
from agent.offload.backlog import Backlog

NOW = 1_800_000_000.0  # a fixed wall-clock reading


class Entries:
    """A log that is a list of entries."""

    def __init__(self) -> None:
        self.items: list[bytes] = []

    @property
    def size(self) -> int:
        return len(self.items)

    def entry(self, index: int) -> bytes:
        return self.items[index]

    def add(self, **entry: object) -> None:
        self.items.append(canonical_json(entry))


def sealed(root: Path, seq: int, *, age_s: float) -> dict[str, object]:
    """A sealed segment file, last written ``age_s`` before NOW; its log entry."""
    rel = f"rec/{seq:04d}.mp4.age"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * (100 + seq))
    os.utime(path, (NOW - age_s, NOW - age_s))
    return {"kind": "segment", "device_seq": seq, "path": rel, "cipher_sha256": f"c{seq}",
            "manifest_sha256": f"m{seq}"}


def test_the_oldest_owed_segment_is_as_old_as_its_seal_not_as_this_boot(tmp_path: Path) -> None:
    """A segment sealed an hour before the agent (re)started is reported an hour old at once:
    the age counts from the seal (the sealed file's time), not from when the backlog first
    read its log entry."""
    log = Entries()
    log.add(**sealed(tmp_path, 0, age_s=3600))
    log.add(**sealed(tmp_path, 1, age_s=60))
    backlog = Backlog(log, tmp_path)
    backlog.refresh(now_epoch=NOW)
    s = backlog.summary(now_epoch=NOW)
    assert (s.segments, s.bytes) == (2, 100 + 101)
    assert s.oldest_s == 3600


def test_an_acknowledged_segment_leaves_and_the_age_follows_the_next(tmp_path: Path) -> None:
    """A receipt for exactly that segment (both hashes) takes it off; a receipt naming other
    hashes does not; the age is then the next owed segment's."""
    log = Entries()
    log.add(**sealed(tmp_path, 0, age_s=3600))
    log.add(**sealed(tmp_path, 1, age_s=60))
    log.add(type="acknowledged", device_seq=0, cipher_sha256="c0", manifest_sha256="other")
    backlog = Backlog(log, tmp_path)
    assert [p.device_seq for p in backlog.refresh(now_epoch=NOW)] == [0, 1]
    log.add(type="acknowledged", device_seq=0, cipher_sha256="c0", manifest_sha256="m0")
    assert [p.device_seq for p in backlog.refresh(now_epoch=NOW)] == [1]
    assert backlog.summary(now_epoch=NOW).oldest_s == 60


def test_missing_media_is_owed_with_no_bytes_and_aged_from_when_it_was_read(tmp_path: Path) -> None:
    """A logged segment whose file is gone still counts (the station must hear of it), with
    0 bytes; with no file time to read, its age starts when the backlog read its entry."""
    log = Entries()
    log.add(kind="segment", device_seq=5, path="rec/gone.mp4.age", cipher_sha256="c",
            manifest_sha256="m")
    backlog = Backlog(log, tmp_path)
    backlog.refresh(now_epoch=NOW)
    s = backlog.summary(now_epoch=NOW + 30)
    assert (s.segments, s.bytes, s.oldest_s) == (1, 0, 30)
