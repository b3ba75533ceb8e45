"""One segment's files between its open and its seal, and its manifest's unsigned fields.

The seal writes the signed envelope into a temporary file created empty at open (an atomic
write split in time, so its name is already durable when the envelope is fsynced), then
renames it to ``.manifest.json``; recovery finds a complete envelope in such a file, finishes
the rename, or checks whether the media is the one a manifest names (see
:mod:`agent.evidence.store` for the seal's steps). These helpers are that file handling, and
the manifest dictionary a seal or a recovery signs, kept apart from the store's sequencing and
locking so each reads alone. None of them deletes anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write, write_all, write_durable
from hw.errors import EvidenceError

from .age import Recipient
from .journal import MANIFEST_SUFFIX, Journal, sidecar
from .manifest import FORMAT, ClockInfo, GpsSummary, MediaInfo, Timestamp, parse_envelope
from .sink import SealResult

__all__ = ["create_file", "draft_manifest", "ensure_manifest", "envelope_temp", "envelope_temps",
           "file_matches", "fill_file", "sealed_envelope"]


def envelope_temp(media: Path) -> Path:
    """The manifest's temporary file, created at open and filled at seal (an atomic write
    split in time: the name ``agent.atomic.atomic_write`` would use, so verify knows it)."""
    return media.with_name(f".{sidecar(media, MANIFEST_SUFFIX).name}.tmp-{os.getpid()}")


def envelope_temps(media: Path) -> list[Path]:
    """Temporary manifest files of ``media`` left by any process (a crash, then a restart)."""
    return sorted(media.parent.glob(f".{sidecar(media, MANIFEST_SUFFIX).name}.tmp-*"))


def create_file(path: Path, data: bytes) -> None:
    """Create ``path`` (never replacing a file) holding ``data``, not fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def fill_file(path: Path, data: bytes) -> None:
    """Write ``data`` into the existing empty file ``path`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        write_durable(fd, data)
    finally:
        os.close(fd)


def sealed_envelope(media: Path) -> bytes | None:
    """The complete signed envelope a seal left in a temporary file, if any."""
    for temp in envelope_temps(media):
        data = temp.read_bytes()
        try:
            parse_envelope(data)
        except EvidenceError:
            continue  # empty (opened, never sealed) or torn by a power cut
        return data
    return None


def ensure_manifest(journal: Journal) -> None:
    """Finish step 5 of an interrupted seal: ``.manifest.json`` durably holds the envelope."""
    assert journal.envelope is not None
    path = sidecar(journal.media, MANIFEST_SUFFIX)
    try:
        same = path.read_bytes() == journal.envelope
    except FileNotFoundError:
        same = False
    if not same:
        atomic_write(path, journal.envelope)


def file_matches(media: Path, file: Mapping[str, Any]) -> bool:
    """Whether ``media`` has exactly the ciphertext hash and size a manifest's ``file`` names."""
    try:
        with open(media, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        return bool(digest == file["cipher_sha256"] and os.path.getsize(media)
                    == file["cipher_bytes"])
    except OSError:
        return False


def draft_manifest(journal: Journal, result: SealResult, *, device_id: str,
                   recipients: Sequence[Recipient], end: Timestamp | None,
                   media: MediaInfo | None, gps: GpsSummary, bookmarks: Sequence[Any],
                   matter: Mapping[str, Any] | None, flags: Sequence[str],
                   clock: ClockInfo | None) -> dict[str, Any]:
    """The manifest of ``journal``'s segment before it is chained (``prev_leaf``) and signed."""
    info = journal.info
    all_flags = list(dict.fromkeys([*info.flags, *flags]))
    if info.preroll:
        all_flags.append("preroll")
    if not result.encrypted:
        all_flags.append("unencrypted")
    return {
        "format": FORMAT, "device_id": device_id,
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
                 "recipients": [str(r) for r in recipients] if result.encrypted else [],
                 "plain_sha256": result.plain_sha256, "plain_bytes": result.plain_bytes,
                 "cipher_sha256": result.cipher_sha256, "cipher_bytes": result.cipher_bytes},
        "prev_leaf": None,
        "flags": list(dict.fromkeys(all_flags)),
        "bookmarks": [dict(b) for b in bookmarks],
    }
