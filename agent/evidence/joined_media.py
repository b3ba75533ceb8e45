"""Reading a court bundle's joined MP4: its packets per stream, and its Content Credential.

Check 6 of ``bodycam verify BUNDLE`` (:mod:`.bundle`) is the only one that opens media: the
joined MP4 must hold exactly the decrypted segments' packets (counted by demuxing with PyAV,
not decoding), and its station-signed C2PA Content Credential must validate and list every
segment (read with the ``c2pa`` library). Kept apart from the bundle's file, signature, receipt
and proof checks, which need neither library: both are imported only when a bundle has a joined
MP4 to read. :func:`count_packets` raises what PyAV raises for an unreadable file (the caller
names it a finding); the credential check returns its finding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Finding", "count_packets", "joined_credential_finding"]

Finding = tuple[str, str, str, str]  # (level fail|warn|ok, code, where, message), as BundleReport


def count_packets(path: Path) -> dict[str, int]:
    """Compressed packets per stream kind (``video``, ``audio``), by demuxing, not decoding."""
    import av

    counts: dict[str, int] = {}
    with av.open(str(path)) as src:
        for packet in src.demux():
            if packet.size == 0:  # the demuxer's end-of-stream flush packet
                continue
            counts[packet.stream.type] = counts.get(packet.stream.type, 0) + 1
    return counts


def joined_credential_finding(path: Path, claimed: dict[str, Any]) -> Finding:
    """Check 6b: the station's Content Credential embedded in the joined MP4 is intact (claim
    signature, hash binding) and names every segment as an ingredient, each one the marker
    says had a device credential with that credential. Whether the station's signing
    certificate chains to an agency CA is not judged here: the bundle holds no CA
    (``agent.c2pa.c2pa_status`` with the agency CA does that). The one finding, as
    (level, code, where, message) for the bundle report."""
    import c2pa

    settings = {"verify": {"verify_trust": False, "remote_manifest_fetch": False}}
    try:
        with open(path, "rb") as f, c2pa.Reader("video/mp4", f,
                                                context=c2pa.Context.from_dict(settings)) as rd:
            state = rd.get_validation_state()
            results = rd.get_validation_results() or {}
            manifest = rd.get_active_manifest() or {}
    except (c2pa.C2paError, OSError, ValueError, KeyError) as exc:
        return ("fail", "joined_c2pa_invalid", path.name, f"unreadable: {str(exc)[:200]}")
    failures = sorted({str(i.get("code")) for i in
                       (results.get("activeManifest") or {}).get("failure", [])})
    ingredients = manifest.get("ingredients") or []
    with_cred = sum(1 for i in ingredients if i.get("active_manifest"))
    if state not in ("Valid", "Trusted") or failures:
        return ("fail", "joined_c2pa_invalid", path.name,
                f"the station's Content Credential does not validate: {state} "
                f"{', '.join(failures)}")
    if (len(ingredients), with_cred) != (claimed.get("ingredients"),
                                         claimed.get("with_credentials")):
        return ("fail", "joined_c2pa_invalid", path.name,
                f"the credential names {len(ingredients)} ingredients ({with_cred} with a device "
                f"credential); the bundle says {claimed}")
    return ("ok", "joined_c2pa", path.name,
            f"station-signed Content Credential intact: {len(ingredients)} segment "
            f"ingredients, {with_cred} with the device's own credential (signer's "
            "certificate not checked against a CA here)")
