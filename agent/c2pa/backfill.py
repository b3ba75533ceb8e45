"""Credentials that a power cut prevented: issued at the next start.

The credential is written after the segment's log leaf (``EvidenceStore._commit`` calls the
after-seal port last), so a power cut in that window -- about one fsync long -- leaves a sealed,
logged segment without ``<stem>.c2pa``. At start, after crash recovery, :func:`issue_missing`
looks at the segments logged since the last ``boot`` event (the previous run's and this start's
recoveries: the only ones that can be in that window) and issues what is missing.

It signs only what the log committed to: the manifest on disk must hash to the leaf's
``manifest_sha256``; anything else is skipped with a warning (``bodycam verify`` reports it).
Segments sealed before ``[evidence] c2pa`` was turned on are not credentialed retroactively:
that would be a burst of signing at start, when the recorder must be ready at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.evidence.canonical import parse_canonical
from agent.evidence.journal import MANIFEST_SUFFIX, sidecar
from agent.evidence.manifest import SignedManifest, parse_envelope
from hw.errors import EvidenceError

from .sidecar import credential_path

__all__ = ["issue_missing"]

_MAX_ENVELOPE = 4 << 20

log = logging.getLogger(__name__)


def issue_missing(port: Callable[[Path, SignedManifest], None], data_dir: Path,
                  entries: Iterable[tuple[int, bytes]]) -> int:
    """Issue credentials for segments logged after the last ``boot`` event that have none."""
    pending: list[dict[str, object]] = []
    for _, data in entries:
        entry = parse_canonical(data)
        if entry.get("kind") == "event" and entry.get("type") == "boot":
            pending.clear()
        elif entry.get("kind") == "segment":
            pending.append(entry)
    issued = 0
    for entry in pending:
        media = Path(data_dir) / str(entry.get("path"))
        if credential_path(media).exists() or not media.exists():
            continue
        try:
            envelope = sidecar(media, MANIFEST_SUFFIX)
            if envelope.stat().st_size > _MAX_ENVELOPE:
                raise EvidenceError("manifest larger than any we write")
            signed = parse_envelope(envelope.read_bytes())
        except (OSError, EvidenceError) as exc:
            log.warning("no credential for %s: manifest unreadable (%s)", media.name, exc)
            continue
        if signed.sha256 != entry.get("manifest_sha256"):
            log.warning("no credential for %s: its manifest is not the one logged", media.name)
            continue
        if signed.manifest.get("file", {}).get("plain_sha256") is None:
            continue  # recovered without its plaintext hash: nothing to bind
        port(media, signed)
        issued += credential_path(media).exists()
    return issued
