"""Does a device's ``.c2pa`` sidecar belong to the segment it came with? The station's check.

The collection station holds the ciphertext and the device-signed evidence manifest, never the
plaintext (it has no agency key), so it cannot recompute the credential's ``c2pa.hash.data``
over the decrypted file as :func:`~agent.c2pa.validity.c2pa_status` does. What it can check, and
what :func:`check_binding` checks, with the C2PA reference library doing the C2PA part:

1. the store is at most :data:`MAX_SIDECAR_BYTES` and parses as a C2PA manifest store;
2. the claim signature validates, every hashed assertion matches its claim reference, and
   (when the station has trust anchors) the signing certificate chains to one of them -- the
   library's only failure may be ``assertion.dataHash.mismatch``, which it must report because
   it is handed no media;
3. the hard binding is exactly one ``c2pa.hash.data`` over the whole file (no exclusions,
   SHA-256) whose value is the evidence manifest's ``file.plain_sha256``: the device signed, in
   its evidence manifest, the hash of the plaintext this credential binds -- so whoever later
   decrypts the segment validates the same credential with no further trust in the station;
4. the ``org.bodycam_agent.evidence`` assertion names exactly this segment's evidence manifest
   (``evidence_manifest_sha256``), and the certificate's subject CN is the device's id.

A credential of another segment fails 3 and 4, a forged or damaged one fails 1 or 2. The result
is ``("valid", why)`` or ``("invalid", reason)``; it never raises for bad input.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import c2pa

from .validity import State, _named_evidence

__all__ = ["EXPECTED_WITHOUT_MEDIA", "MAX_SIDECAR_BYTES", "check_binding"]

#: A device's sidecar is ~3.7-4.4 KB (one claim, three assertions, the device certificate);
#: an agency chain of a few intermediates adds ~1.5 KB each. 64 KiB is ten times the largest we
#: expect and bounds what one request may make the station hold and parse.
MAX_SIDECAR_BYTES = 64 << 10
#: The one failure the library must report when it is given the credential without the media.
EXPECTED_WITHOUT_MEDIA = "assertion.dataHash.mismatch"


def check_binding(store: bytes, *, device_id: str, evidence_manifest_sha256: str,
                  plain_sha256: str | None, trust_anchors: bytes | None = None,
                  media_format: str = "video/mp4") -> tuple[State, str]:
    """Checks 1-4 of the module docstring for one sidecar."""
    if len(store) > MAX_SIDECAR_BYTES:
        return "invalid", f"larger than {MAX_SIDECAR_BYTES} bytes"
    if not store:
        return "invalid", "empty"
    if plain_sha256 is None:
        return "invalid", "the segment's plaintext hash is unknown (recovered segment): " \
                          "nothing for a credential to bind"
    report = _read(store, media_format, trust_anchors)
    if isinstance(report, str):
        return "invalid", f"not a readable C2PA manifest store: {report[:200]}"
    success, failures, detailed, active = report
    unexpected = sorted(failures - {EXPECTED_WITHOUT_MEDIA})
    if unexpected:
        return "invalid", ", ".join(unexpected)
    if "claimSignature.validated" not in success:
        return "invalid", "the claim signature was not validated"
    if trust_anchors and "signingCredential.trusted" not in success:
        return "invalid", "signingCredential.untrusted"
    problem = (_hard_binding_problem(detailed, plain_sha256)
               or _evidence_problem(active, evidence_manifest_sha256)
               or _signer_problem(active, device_id))
    if problem:
        return "invalid", problem
    chain = ("certificate chained to the station's trust anchors" if trust_anchors
             else "issuer not checked (no trust anchors at the station)")
    return "valid", (f"claim signature and assertions verified, {chain}; hard binding is the "
                     "evidence manifest's plaintext SHA-256")


def _read(store: bytes, fmt: str, anchors: bytes | None
          ) -> str | tuple[set[str], set[str], dict[str, Any], dict[str, Any]]:
    settings: dict[str, Any] = {"verify": {"verify_trust": bool(anchors),
                                           "remote_manifest_fetch": False}}
    if anchors:
        settings["trust"] = {"trust_anchors": anchors.decode("ascii", "replace")}
    try:
        context = c2pa.Context.from_dict(settings)
        reader = c2pa.Reader(fmt, io.BytesIO(b""), manifest_data=store, context=context)
    except (c2pa.C2paError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    try:
        results = (reader.get_validation_results() or {}).get("activeManifest") or {}
        detailed = json.loads(reader.detailed_json())
        try:
            active = reader.get_active_manifest()
        except KeyError:
            active = None
    except (c2pa.C2paError, ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        reader.close()
    if not isinstance(active, dict) or not isinstance(detailed, dict):
        return "no active manifest"
    codes = {key: {str(item.get("code")) for item in results.get(key) or []
                   if isinstance(item, dict)} for key in ("success", "failure")}
    return codes["success"], codes["failure"], detailed, active


def _hard_binding_problem(detailed: dict[str, Any], plain_sha256: str) -> str | None:
    manifest = (detailed.get("manifests") or {}).get(detailed.get("active_manifest"))
    store = manifest.get("assertion_store") if isinstance(manifest, dict) else None
    if not isinstance(store, dict):
        return "no assertion store in the active manifest"
    bindings = sorted(k for k in store if str(k).startswith("c2pa.hash."))
    if bindings != ["c2pa.hash.data"]:
        return f"hard binding is {bindings or 'missing'}, not one c2pa.hash.data"
    data = store["c2pa.hash.data"]
    if not isinstance(data, dict) or data.get("alg", "sha256") != "sha256" or \
            data.get("exclusions"):
        return "c2pa.hash.data is not a SHA-256 over the whole file"
    try:
        value = base64.b64decode(str(data.get("hash")), validate=True).hex()
    except (binascii.Error, ValueError):
        return "c2pa.hash.data holds no hash"
    if value != plain_sha256:
        return (f"hard binding {value[:16]}… is not this segment's plaintext "
                f"{plain_sha256[:16]}… (another segment's credential?)")
    return None


def _evidence_problem(active: dict[str, Any], expected: str) -> str | None:
    named = _named_evidence(active)
    if named != expected:
        return (f"credential names evidence manifest {str(named)[:16]}…, not this segment's "
                f"{expected[:16]}…")
    return None


def _signer_problem(active: dict[str, Any], device_id: str) -> str | None:
    info = active.get("signature_info")
    cn = info.get("common_name") if isinstance(info, dict) else None
    if cn != device_id:
        return f"signed by {str(cn)[:64]!r}, not by device {device_id}"
    return None
