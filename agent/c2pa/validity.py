"""Is a decrypted segment's Content Credential valid? The verifier's and the lab bench's call.

``c2pa_status(segment, trust_anchors)`` asks the C2PA reference library (c2pa-rs through
c2pa-python) to validate the credential exactly as any other C2PA reader would: claim
signature, certificate profile, chain to ``trust_anchors`` (and to nothing else), every hashed
assertion, and the ``c2pa.hash.data`` hard binding over the segment's bytes. It returns

* ``("valid", …)``   -- the library's state is ``Trusted``: signed by a certificate that chains
  to a given anchor, and the media is bit-for-bit what was signed;
* ``("invalid", reason)`` -- anything else the library found (``reason`` lists its failure
  codes, e.g. ``assertion.dataHash.mismatch``, ``signingCredential.untrusted``), an unreadable
  manifest store, or an evidence-manifest hash other than the one expected;
* ``("absent", reason)`` -- no sidecar ``<stem>.c2pa`` and no manifest embedded in the file.

It never raises for bad input: a damaged credential is a finding, not a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, Literal

import c2pa

from .claim import ASSERTION_LABEL
from .sidecar import credential_path

__all__ = ["MAX_CREDENTIAL_BYTES", "State", "c2pa_status", "read_credential"]

State = Literal["valid", "invalid", "absent"]
MAX_CREDENTIAL_BYTES = 1 << 20
_FORMATS = {".mp4": "video/mp4", ".m4a": "audio/mp4", ".jpg": "image/jpeg",
            ".jpeg": "image/jpeg"}


def c2pa_status(segment: Path | BinaryIO, trust_anchors: bytes | str | Iterable[bytes], *,
                credential: bytes | Path | None = None, media_format: str | None = None,
                evidence_manifest_sha256: str | None = None) -> tuple[State, str]:
    """Validate the credential of a decrypted segment (a path, or a seekable binary stream).

    ``credential``: the sidecar's bytes or path; by default ``<stem>.c2pa`` beside a path.
    ``evidence_manifest_sha256``: if given, the credential must name exactly this evidence
    manifest (the ``manifest_sha256`` of the segment's log leaf).
    """
    anchors = _pem(trust_anchors)
    if not anchors.strip():
        return "invalid", "no trust anchors given: a credential cannot be trusted against nothing"
    fmt = media_format or _format_of(segment)
    try:
        store = _credential_bytes(segment, credential)
    except OSError as exc:
        return "invalid", f"credential unreadable: {exc.strerror or exc}"
    except ValueError as exc:
        return "invalid", str(exc)
    try:
        if isinstance(segment, Path | str):
            with open(segment, "rb") as f:
                report = _validate(fmt, f, store, anchors)
        else:
            report = _validate(fmt, segment, store, anchors)
    except OSError as exc:
        return "invalid", f"segment unreadable: {exc.strerror or exc}"
    if report is None:
        return "absent", "no C2PA manifest (no sidecar, nothing embedded)"
    return _judge(report, evidence_manifest_sha256)


def read_credential(segment: Path, trust_anchors: bytes) -> dict[str, Any] | None:
    """The active manifest as the library reports it (for reports and tests), or None."""
    with open(segment, "rb") as f:
        report = _validate(_format_of(segment), f, _credential_bytes(segment, None),
                           _pem(trust_anchors))
    return None if report is None else report.get("manifest")


def _validate(fmt: str, stream: BinaryIO, store: bytes | None, anchors: str
              ) -> dict[str, Any] | None:
    settings = {"verify": {"verify_trust": True, "remote_manifest_fetch": False},
                "trust": {"trust_anchors": anchors}}
    try:
        context = c2pa.Context.from_dict(settings)
        reader = c2pa.Reader(fmt, stream, manifest_data=store, context=context)
    except c2pa.C2paError as exc:
        text = str(exc)
        if store is None and "ManifestNotFound" in type(exc).__name__ + text:
            return None
        return {"error": text or type(exc).__name__}
    try:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
        try:
            manifest = reader.get_active_manifest()
        except KeyError:  # the binding's way of saying "no active manifest" (a damaged store)
            manifest = None
        return {"state": state, "results": results, "manifest": manifest}
    except (c2pa.C2paError, ValueError) as exc:  # ValueError: the binding's JSON decoding
        return {"error": str(exc) or type(exc).__name__}
    finally:
        reader.close()


def _judge(report: dict[str, Any], expected: str | None) -> tuple[State, str]:
    if "error" in report:
        return "invalid", f"manifest store unreadable: {report['error'][:200]}"
    failures = sorted({str(item.get("code")) for item in
                       (report["results"].get("activeManifest") or {}).get("failure", [])})
    if report["manifest"] is None:
        return "invalid", ", ".join(["no active manifest", *failures])
    if report["state"] != "Trusted" or failures:
        why = ", ".join(failures) or f"validation state {report['state']}"
        return "invalid", why
    if expected is not None:
        named = _named_evidence(report.get("manifest"))
        if named != expected:
            return "invalid", (f"credential names evidence manifest {str(named)[:16]}…, "
                               f"not {expected[:16]}…")
    return "valid", "signature, certificate chain and hash binding verified"


def _named_evidence(manifest: Any) -> str | None:
    if not isinstance(manifest, dict):
        return None
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and assertion.get("label") == ASSERTION_LABEL:
            data = assertion.get("data")
            if isinstance(data, dict):
                value = data.get("evidence_manifest_sha256")
                return value if isinstance(value, str) else None
    return None


def _credential_bytes(segment: Path | BinaryIO, credential: bytes | Path | None) -> bytes | None:
    if isinstance(credential, bytes):
        data = credential
    else:
        if credential is None:
            if not isinstance(segment, Path | str):
                return None
            credential = credential_path(Path(segment))
            if not credential.exists():
                return None
        with open(credential, "rb") as f:
            data = f.read(MAX_CREDENTIAL_BYTES + 1)
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise ValueError(f"credential larger than {MAX_CREDENTIAL_BYTES} bytes")
    return data


def _format_of(segment: Path | BinaryIO) -> str:
    if isinstance(segment, Path | str):
        return _FORMATS.get(Path(segment).suffix.lower(), "video/mp4")
    return "video/mp4"


def _pem(anchors: bytes | str | Iterable[bytes]) -> str:
    if isinstance(anchors, str):
        return anchors
    if isinstance(anchors, bytes):
        return anchors.decode("ascii", "replace")
    return "".join(a.decode("ascii", "replace") for a in anchors)

