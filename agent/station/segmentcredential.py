"""A stored segment's device-signed C2PA credential: checked, kept write-once, its state indexed.

``PUT /v1/devices/<device>/segments/<device_seq>/c2pa`` (docs/STATION-API.md §4a) carries the
``<stem>.c2pa`` sidecar a device made at seal (agent/c2pa). It comes *after* the segment's
finalise, as a separate request, for three reasons: a refused credential gets its own 4xx
answer while the segment keeps its receipt (a credential is an addition, never a condition of
custody); a credential the device wrote after the upload began (live offload, or issued at the
next start after a power cut) still reaches the station; and a device without credentials
speaks the protocol unchanged.

Steps (in a worker thread):

1. the segment's signed evidence manifest is read back from the store (it was verified at
   finalise, and must still hash to the index's ``manifest_sha256``);
2. :func:`agent.c2pa.binding.check_binding` validates the sidecar with the C2PA reference
   library and checks it binds to this segment (plaintext hash, evidence manifest hash, the
   device's certificate), chaining the certificate to ``<station data>/keys/c2pa-trust.pem``
   when that file exists;
3. valid: linked beside the segment as ``<stem>.c2pa`` (0444, never replaced) and indexed
   ``valid`` -- final; invalid: the first refused copy is kept in ``.quarantine/``, the state
   ``invalid`` with its reason is indexed (unless a valid one is already held) and the request
   is refused with 422 ``c2pa-invalid``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.evidence.inventory import UnsafeFile, read_bounded
from agent.evidence.journal import MANIFEST_SUFFIX, sidecar
from agent.evidence.manifest import parse_envelope
from hw.errors import VerificationError

from .index import CredentialRow, SegmentRow
from .ingest import MAX_FINALISE_BYTES
from .refusal import Refused
from .service import StationService, utc_now

__all__ = ["TRUST_ANCHORS", "accept_credential", "record_too_large"]

TRUST_ANCHORS = "c2pa-trust.pem"  # in <station data>/keys/: the agency CA(s) for credentials
_MAX_ANCHORS = 1 << 20


def _anchors(data_dir: Path) -> bytes | None:
    path = data_dir / "keys" / TRUST_ANCHORS
    if not path.exists():
        return None
    try:
        return read_bounded(path, _MAX_ANCHORS)
    except (OSError, UnsafeFile) as exc:
        raise Refused(500, "c2pa-trust-unreadable", f"the station's {TRUST_ANCHORS} cannot be "
                      f"read ({exc}); nothing was recorded") from None


def record_too_large(svc: StationService, row: SegmentRow, declared: int | None,
                     limit: int) -> None:
    """Index a sidecar refused for its size (its bytes were never read)."""
    svc.index.record_credential(CredentialRow(
        row.device_id, row.device_seq, "invalid",
        f"larger than {limit} bytes" + (f" ({declared} declared)" if declared else ""),
        "", declared or 0, utc_now()))


def accept_credential(svc: StationService, row: SegmentRow, data: bytes
                      ) -> tuple[CredentialRow, bool]:
    """Module steps 1-3 for one sidecar; the indexed row and whether this call stored it.
    Raises :class:`Refused` (422 ``c2pa-invalid``) after recording an invalid one."""
    from agent.c2pa.binding import check_binding  # loads the C2PA library on first use
    from agent.c2pa.claim import media_format

    media = svc.store.root / row.device_id / row.path
    if svc.index.deleted(row.device_id, row.device_seq):
        raise Refused(410, "segment-gone", f"device_seq {row.device_seq} was deleted at the end "
                      "of retention: there is nothing to attach a credential to")
    try:
        signed = parse_envelope(read_bounded(sidecar(media, MANIFEST_SUFFIX), MAX_FINALISE_BYTES))
    except (OSError, UnsafeFile, VerificationError) as exc:
        raise Refused(500, "store-corrupt", f"the stored manifest of device_seq "
                      f"{row.device_seq} cannot be read ({exc})", alarm=True) from None
    if signed.sha256 != row.manifest_sha256:
        raise Refused(500, "store-corrupt", f"the stored manifest of device_seq "
                      f"{row.device_seq} is not the one received", alarm=True)
    sha = hashlib.sha256(data).hexdigest()
    manifest = signed.manifest
    state, reason = check_binding(data, device_id=row.device_id,
                                  evidence_manifest_sha256=row.manifest_sha256,
                                  plain_sha256=manifest["file"].get("plain_sha256"),
                                  trust_anchors=_anchors(svc.data_dir),
                                  media_format=media_format(manifest))
    utc = utc_now()
    if state != "valid":
        kept = svc.store.quarantine_credential(row.device_id, row.device_seq, data)
        held = svc.index.record_credential(CredentialRow(row.device_id, row.device_seq,
                                                         "invalid", reason, sha, len(data), utc))
        where = f"; kept at {kept}" if kept else ""
        svc.index.event(utc, row.device_id, "c2pa-refused",
                        f"device_seq {row.device_seq} sha256 {sha}: {reason}{where}")
        still = " (the valid one already held is kept)" if held.state == "valid" else ""
        raise Refused(422, "c2pa-invalid", f"Content Credential refused: {reason}; the segment "
                      f"stays stored with its receipt{still}")
    new = svc.store.place_credential(media, data)
    held = svc.index.record_credential(CredentialRow(row.device_id, row.device_seq, "valid",
                                                     reason, sha, len(data), utc))
    if held.sha256 != sha:  # another process stored a different valid one first
        raise Refused(409, "c2pa-conflict", "another valid credential is already held for "
                      "this segment; it is kept")
    if new:
        svc.index.event(utc, row.device_id, "c2pa-stored",
                        f"device_seq {row.device_seq} sha256 {sha} ({len(data)} bytes)")
    return held, new
