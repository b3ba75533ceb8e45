"""The tamper suite, run on a copy of the unit's own output.

Each case makes one change a forger might make to a copy of the data directory, runs
:func:`agent.evidence.verify.verify` on it, and records whether verification failed with a
finding that names the problem. The unit's data directory is never touched: copies are made
of hard links, and every tampered file is *replaced* (unlink, then write), never edited in
place, so the original inode keeps its bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.evidence.age import Identity
from agent.evidence.manifest import parse_envelope
from agent.evidence.verify import verify

__all__ = ["TamperResult", "run_tamper_suite"]


@dataclass(frozen=True, slots=True)
class TamperResult:
    """What one tamper case did and what verify said."""

    case: str
    target: str
    expected: tuple[str, ...]  # verify must report at least one of these failure codes
    codes: tuple[str, ...]  # failure codes verify reported
    detected: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The result as report.json records it."""
        return {"case": self.case, "target": self.target, "expected": list(self.expected),
                "codes": list(self.codes), "detected": self.detected, "detail": self.detail}


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    _replace(path, bytes(data))


def _media_flip(seg: Path, _: bytes | None) -> str:
    media = _media_of(seg)
    _flip(media, media.stat().st_size // 2)
    return media.name


def _manifest_flip(seg: Path, _: bytes | None) -> str:
    data = seg.read_bytes()
    at = data.find(b'"frames":')
    at = at + len(b'"frames":') if at >= 0 else len(data) // 2
    while at < len(data) and not data[at:at + 1].isdigit():
        at += 1
    while data[at + 1:at + 2].isdigit():
        at += 1  # the last digit: flipping a leading 1 to 0 would make the JSON invalid
    _flip(seg, at)  # one digit of the frame count: still valid JSON, no longer what was signed
    return seg.name


def _delete(seg: Path, _: bytes | None) -> str:
    seq = parse_envelope(seg.read_bytes()).manifest["seq"]
    _media_of(seg).unlink()
    seg.unlink()
    return f"seq {seq}"  # verify names a missing segment by its sequence number


def _truncate(seg: Path, _: bytes | None) -> str:
    media = _media_of(seg)
    _replace(media, media.read_bytes()[:-100])
    return media.name


def _replay(seg: Path, old_checkpoint: bytes | None) -> str:
    root = seg.parent.parent.parent
    assert old_checkpoint is not None
    _replace(root / "log" / "checkpoint", old_checkpoint)
    return "log/checkpoint"


def _media_of(manifest: Path) -> Path:
    return manifest.with_name(manifest.name.replace(".manifest.json", ".mp4.age"))


_CASES: tuple[tuple[str, tuple[str, ...], Callable[[Path, bytes | None], str]], ...] = (
    ("bit flip in media", ("media_altered", "decrypt_failed"), _media_flip),
    ("bit flip in manifest", ("forged_signature", "manifest_unreadable"), _manifest_flip),
    ("segment deleted", ("segment_missing", "sequence_gap"), _delete),
    ("media truncated", ("media_altered",), _truncate),
    ("old checkpoint replayed", ("checkpoint_stale", "log_truncated"), _replay),
)


def run_tamper_suite(data_dir: Path, victim: Path, *, identity: Sequence[Identity],
                     old_checkpoint: bytes | None) -> list[TamperResult]:
    """Run every case against a fresh copy of ``data_dir``; ``victim`` is a manifest in it."""
    rel = victim.relative_to(data_dir)
    out: list[TamperResult] = []
    for name, expected, act in _CASES:
        if act is _replay and old_checkpoint is None:
            out.append(TamperResult(name, "log/checkpoint", expected, (), False,
                                    "not run: no earlier checkpoint was captured during the run"))
            continue
        with tempfile.TemporaryDirectory(prefix="bodycam-tamper-") as tmp:
            copy = Path(tmp) / "unit"
            shutil.copytree(data_dir, copy, copy_function=os.link,
                            ignore=shutil.ignore_patterns("ctl.sock", "*.lock", "lock"))
            target = act(copy / rel, old_checkpoint)
            report = verify(copy, identity=identity)
            codes = tuple(sorted({f.code for f in report.failures}))
            hit = [f for f in report.failures if f.code in expected]
            named = any(target in f.where or target in f.message for f in hit) or target.startswith(
                "log/")
            detected = (not report.ok) and bool(hit) and named
            detail = "; ".join(f"{f.code}: {f.message}" for f in hit[:2]) or "verify passed"
            out.append(TamperResult(name, target, expected, codes, detected, detail))
    return out
