"""Each segment's C2PA Content Credential as a reader would find it: the bench's C2PA column.

A unit with ``[evidence] c2pa`` writes ``<stem>.c2pa`` beside every sealed segment (docs/
C2PA.md). The bench reports, per segment of the main recording, what the reference library
says of it: ``valid``, ``invalid`` with the reason, or ``absent`` (no sidecar: the feature is
off, or the segment was recovered after a crash and has no plaintext hash to bind).

* With the decrypted segment (the bench has the agency identity) the check is the full one any
  reader makes, :func:`agent.c2pa.validity.c2pa_status`: signature, chain to the trust anchors,
  hash binding over the plaintext, and the credential names the segment's evidence manifest.
* Without it, the station's check, :func:`agent.c2pa.binding.check_binding`: the same, except
  the binding is compared with the manifest's signed ``plain_sha256`` instead of recomputed.

Trust anchors: ``--c2pa-ca`` (the agency CA), else the simulator's test CA in the unit's data
dir (``state/c2pa-test-ca/ca.crt``). Without either, a credential's chain is not checked and
the reason says so. The C2PA library is imported only when some segment has a sidecar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.evidence.journal import MANIFEST_SUFFIX, sidecar
from agent.evidence.layout import CREDENTIAL_SUFFIX
from agent.evidence.manifest import parse_envelope

__all__ = ["TEST_CA", "c2pa_rows", "segment_credential", "trust_anchors"]

TEST_CA = Path("state") / "c2pa-test-ca" / "ca.crt"
_MAX_ANCHORS = 1 << 20


def trust_anchors(data_dir: Path, given: Path | None) -> bytes | None:
    """``given`` (the agency CA), else the simulator's test CA, else None."""
    for path in (given, data_dir / TEST_CA):
        if path is not None and path.is_file():
            with open(path, "rb") as f:
                return f.read(_MAX_ANCHORS)
    return None


def segment_credential(media: Path, manifest: dict[str, Any], plain: Path | None,
                       anchors: bytes | None) -> tuple[str, str]:
    """(state, reason) of the credential beside ``media`` (``plain``: its decrypted copy)."""
    cred = sidecar(media, CREDENTIAL_SUFFIX)
    if not cred.is_file():
        return "absent", "no .c2pa sidecar beside the segment"
    try:
        evidence_sha = parse_envelope(sidecar(media, MANIFEST_SUFFIX).read_bytes()).sha256
    except Exception as exc:  # a broken manifest is verify's finding, not the bench's crash
        return "invalid", f"the segment's manifest is unreadable: {exc}"
    from agent.c2pa.claim import media_format

    fmt = media_format(manifest)
    if plain is not None and anchors:
        from agent.c2pa.validity import c2pa_status

        return c2pa_status(plain, anchors, credential=cred, media_format=fmt,
                           evidence_manifest_sha256=evidence_sha)
    from agent.c2pa.binding import MAX_SIDECAR_BYTES, check_binding

    with open(cred, "rb") as f:
        data = f.read(MAX_SIDECAR_BYTES + 1)
    state, reason = check_binding(data, device_id=str(manifest.get("device_id")),
                                  evidence_manifest_sha256=evidence_sha,
                                  plain_sha256=manifest.get("file", {}).get("plain_sha256"),
                                  trust_anchors=anchors, media_format=fmt)
    if state == "valid" and plain is None:
        reason += " (media not decrypted: binding compared with the signed manifest)"
    return state, reason


def c2pa_rows(segments: list[Any]) -> list[dict[str, Any]]:
    """The report's per-segment rows (``series["segments"]``)."""
    return [{"seq": int(s.manifest.get("seq", i)), "file": s.media_path.name,
             "c2pa": s.c2pa[0], "c2pa_reason": s.c2pa[1]} for i, s in enumerate(segments)]
