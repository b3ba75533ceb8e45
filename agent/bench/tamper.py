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
import struct
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.evidence.age import Identity
from agent.evidence.canonical import canonical_json
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


def _discard(path: Path) -> None:
    """Remove a file or folder of the temporary copy (never the unit's own directory)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _replace(path: Path, data: bytes) -> None:
    _discard(path)
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


def _fake_eviction(seg: Path, _: bytes | None) -> str:
    """Delete the media and append an unsigned, well-framed eviction entry for it."""
    signed = parse_envelope(seg.read_bytes())
    root = seg.parent.parent.parent
    media = _media_of(seg)
    _discard(media)
    entry = canonical_json({"kind": "event", "type": "eviction", "utc": signed.manifest[
        "start"]["utc"], "device_seq": signed.manifest["device_seq"],
        "path": media.relative_to(root).as_posix(), "manifest_sha256": signed.sha256,
        "cipher_sha256": signed.manifest["file"]["cipher_sha256"], "ack_index": 0,
        "receipt_sha256": "0" * 64})
    log = root / "log" / "entries.bin"
    _replace(log, log.read_bytes() + struct.pack(">II", len(entry), zlib.crc32(entry)) + entry)
    return media.name


def _shadow(seg: Path, _: bytes | None) -> str:
    """Alter the media, then put an untouched copy of the recording folder beside it."""
    folder = seg.parent
    shutil.copytree(folder, folder.with_name("zzzz_" + folder.name), copy_function=shutil.copy)
    _media_flip(seg, None)
    return _media_of(seg).name


def _old_log_beside(seg: Path, old_checkpoint: bytes | None) -> str:
    """Remove the log and leave a copy of it, under another name, for the verifier to find."""
    root = seg.parent.parent.parent
    shutil.copytree(root / "log", root / "a_log", copy_function=shutil.copy)
    _discard(root / "log")
    return "a_log"


def _symlinked_media(seg: Path, _: bytes | None) -> str:
    """Swap the media for a symbolic link to a file elsewhere."""
    media = _media_of(seg)
    outside = media.parent.parent.parent.parent / "outside.bin"
    shutil.copy(media, outside)
    _discard(media)
    media.symlink_to(outside)
    return media.name


def _media_of(manifest: Path) -> Path:
    return manifest.with_name(manifest.name.replace(".manifest.json", ".mp4.age"))


_CASES: tuple[tuple[str, tuple[str, ...], Callable[[Path, bytes | None], str]], ...] = (
    ("bit flip in media", ("media_altered", "decrypt_failed"), _media_flip),
    ("bit flip in manifest", ("forged_signature", "manifest_unreadable"), _manifest_flip),
    ("segment deleted", ("segment_missing", "sequence_gap"), _delete),
    ("media truncated", ("media_altered",), _truncate),
    ("old checkpoint replayed", ("checkpoint_stale", "log_truncated"), _replay),
    ("deletion dressed as an eviction", ("eviction_unsigned", "media_deleted"), _fake_eviction),
    ("tampered original, untouched shadow copy", ("media_altered",), _shadow),
    ("log removed, an old copy beside it", ("no_log", "misplaced"), _old_log_beside),
    ("media replaced by a symlink", ("symlink", "media_deleted"), _symlinked_media),
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
                ("log/", "a_log"))
            detected = (not report.ok) and bool(hit) and named
            detail = "; ".join(f"{f.code}: {f.message}" for f in hit[:2]) or "verify passed"
            out.append(TamperResult(name, target, expected, codes, detected, detail))
    return out
