"""What a station receipt permits: acknowledging a sealed segment, then evicting its media.

Acknowledgement is proof, not a flag (DESIGN §3): a station's signed receipt is accepted only
if it names exactly a sealed segment of this device (ciphertext and manifest hashes as logged)
and is signed by a configured station key; it is then logged, quoted whole, in an
``acknowledged`` event. Eviction -- the only deletion of media in the product -- is allowed
only for a segment with such an entry, and its ``eviction`` event cites that entry's index and
receipt hash.

Its own module so that these rules read, and are tested, apart from how the store writes
files: here are the checks and the log entries they produce; the store applies them under its
lock (:meth:`agent.evidence.store.EvidenceStore.accept_receipt` and ``evict``), appending the
entry before anything is deleted. Every refusal names its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Container, Mapping
from pathlib import Path
from typing import Any

from hw.errors import EvidenceError, ReceiptRejected, VerificationError

from .canonical import canonical_json
from .journal import MANIFEST_SUFFIX, sidecar
from .manifest import parse_envelope
from .receipt import Receipt
from .sealed_index import SealedIndex, SealedSegment

__all__ = ["RetentionViolation", "acknowledged_entry", "checked_origin", "eviction_fields",
           "sealed_for_receipt", "warn_legacy_acks"]

_MAX_ORIGIN_BYTES = 1024
_LEGACY_ACKS = Path("state") / "acks.json"

log = logging.getLogger(__name__)


class RetentionViolation(EvidenceError, PermissionError):
    """Deleting this segment is not allowed: no station receipt acknowledges it."""


def checked_origin(origin: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``origin`` that is canonical-JSON-safe and small (it goes into the log)."""
    out = dict(origin)
    try:
        size = len(canonical_json(out))
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"origin not loggable: {exc}") from None
    if size > _MAX_ORIGIN_BYTES:
        raise EvidenceError(f"origin larger than {_MAX_ORIGIN_BYTES} bytes")
    return out


def sealed_for_receipt(receipt: Receipt, *, station_keys: Collection[bytes], device_id: str,
                       open_seqs: Container[int], index: SealedIndex) -> SealedSegment:
    """The sealed segment ``receipt`` acknowledges, or :class:`ReceiptRejected` saying why:
    no station key is configured, the signature does not verify against one, the receipt is
    for another device, the segment is open or not sealed in the log, or its ciphertext or
    manifest hash differs from the log's."""
    if not station_keys:
        raise ReceiptRejected("no station keys are configured ([offload] station_keys): "
                              "no receipt can be trusted, so none is accepted")
    try:
        receipt.verify(station_keys)
    except VerificationError as exc:
        raise ReceiptRejected(str(exc)) from None
    seq = receipt.device_seq
    if receipt.device_id != device_id:
        raise ReceiptRejected(f"receipt is for device {receipt.device_id!r}, "
                              f"this is {device_id!r}")
    if seq in open_seqs:
        raise ReceiptRejected(f"segment {seq} is still being recorded")
    sealed = index.get(seq)
    if sealed is None:
        raise ReceiptRejected(f"segment {seq} is not sealed in the evidence log")
    problem = receipt.matches(device_id=device_id, device_seq=seq,
                              cipher_sha256=sealed.cipher_sha256,
                              manifest_sha256=sealed.manifest_sha256)
    if problem is not None:
        raise ReceiptRejected(f"segment {seq}: {problem}")
    return sealed


def acknowledged_entry(receipt: Receipt, sealed: SealedSegment, *, utc: str,
                       origin: dict[str, Any]) -> dict[str, Any]:
    """The ``acknowledged`` log event quoting ``receipt`` for ``sealed``."""
    return {"kind": "event", "type": "acknowledged", "utc": utc,
            "device_seq": receipt.device_seq, "cipher_sha256": sealed.cipher_sha256,
            "manifest_sha256": sealed.manifest_sha256, "receipt": receipt.to_json(),
            "receipt_sha256": receipt.sha256, "origin": origin}


def eviction_fields(media: Path, *, index: SealedIndex, open_seqs: Container[int],
                    rel: Callable[[Path], str]) -> dict[str, Any]:
    """The fields of the ``eviction`` event that permits deleting ``media``, or
    :class:`RetentionViolation` when its segment has no logged receipt, is open or unsealed, or
    its manifest is not the one receipted. ``rel`` names ``media`` in the log."""
    try:
        signed = parse_envelope(sidecar(media, MANIFEST_SUFFIX).read_bytes())
    except (OSError, EvidenceError) as exc:
        raise RetentionViolation(f"{media}: no readable sealed manifest ({exc})") from None
    seq = signed.manifest["device_seq"]
    if signed.manifest["file"]["name"] != media.name or seq in open_seqs:
        raise RetentionViolation(f"{media}: not the sealed file of its manifest")
    ack = index.acknowledgement(seq)
    sealed = index.get(seq)
    if ack is None or sealed is None:
        raise RetentionViolation(
            f"{media}: segment {seq} not acknowledged by a station receipt; not deleted")
    cipher = signed.manifest["file"]["cipher_sha256"]
    if not sealed.names(cipher, signed.sha256):
        raise RetentionViolation(
            f"{media}: manifest differs from the one segment {seq}'s receipt names")
    return {"device_seq": seq, "path": rel(media), "manifest_sha256": signed.sha256,
            "cipher_sha256": cipher, "ack_index": ack.ack_index,
            "receipt_sha256": ack.receipt_sha256}


def warn_legacy_acks(data_dir: Path) -> None:
    """Say so when an old ``state/acks.json`` is present: it is ignored, never trusted."""
    path = data_dir / _LEGACY_ACKS
    if path.exists():
        log.warning("%s is ignored: a list of sequence numbers proves nothing; only station "
                    "receipts in the evidence log make a segment evictable", path)
