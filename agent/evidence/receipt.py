"""Receipts: a collection station's signed statement that it durably holds one segment.

A receipt is the only thing that may make a segment evictable on the device (DESIGN §3): a
bare "ack" proves nothing, because anyone who can publish a command could send it. A receipt
names the segment exactly — device, ``device_seq``, the SHA-256 of its ciphertext and of its
signed manifest — and is signed by a station key the device was configured to trust, so it
cannot be made for evidence that does not exist, nor by someone who merely reached the
device's command topic.

Wire form (canonical JSON, the same envelope shape as a segment manifest)::

    {"receipt": {"format": "bodycam-receipt/1", "station_id": …, "device_id": …,
                 "device_seq": N, "cipher_sha256": hex, "manifest_sha256": hex,
                 "utc": "YYYY-MM-DDTHH:MM:SS.ffffffZ"},
     "signature": {"alg": "ed25519", "key": <b64 raw public key>, "sig": <b64>}}

The signature covers ``canonical_json(receipt)`` exactly; ``openssl pkeyutl -verify -rawin``
checks it with stock tools (docs/EVIDENCE-FORMAT.md).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hw.errors import VerificationError

from .canonical import canonical_json

__all__ = ["RECEIPT_FORMAT", "Receipt", "Signer", "issue_receipt", "parse_receipt"]

RECEIPT_FORMAT = "bodycam-receipt/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
_FIELDS = frozenset({"format", "station_id", "device_id", "device_seq", "cipher_sha256",
                     "manifest_sha256", "utc"})


class Signer(Protocol):
    """What signs a receipt: an Ed25519 key (a station's; :class:`DeviceKey` qualifies)."""

    @property
    def public_b64(self) -> str:
        """Raw 32-byte public key, base64."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature of ``data``."""
        ...


@dataclass(frozen=True, slots=True)
class Receipt:
    """A parsed receipt; fields are validated, the signature only by :meth:`verify`."""

    body: dict[str, Any]
    signature: dict[str, str]

    @property
    def station_id(self) -> str:
        """Which station signed it."""
        return str(self.body["station_id"])

    @property
    def device_id(self) -> str:
        """The device whose segment it receipts."""
        return str(self.body["device_id"])

    @property
    def device_seq(self) -> int:
        """The segment's device sequence number."""
        return int(self.body["device_seq"])

    @property
    def cipher_sha256(self) -> str:
        """SHA-256 of the segment's ciphertext as the station stored it."""
        return str(self.body["cipher_sha256"])

    @property
    def manifest_sha256(self) -> str:
        """SHA-256 of the segment's signed manifest bytes (its log leaf's commitment)."""
        return str(self.body["manifest_sha256"])

    @property
    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers."""
        return canonical_json(self.body)

    @property
    def sha256(self) -> str:
        """SHA-256 of the signed bytes, hex (how log entries cite a receipt)."""
        return hashlib.sha256(self.signed_bytes).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The envelope as a JSON object (for MQTT payloads and log entries)."""
        return {"receipt": dict(self.body), "signature": dict(self.signature)}

    def verify(self, trusted: Iterable[bytes]) -> bytes:
        """Return the trusted station key that signed this; VerificationError otherwise."""
        key = _b64(self.signature.get("key"), "signature key")
        sig = _b64(self.signature.get("sig"), "signature")
        if key not in set(trusted):
            raise VerificationError("receipt signed by a key that is not a trusted station key")
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(sig, self.signed_bytes)
        except (InvalidSignature, ValueError):
            raise VerificationError("receipt signature does not verify") from None
        return key

    def matches(self, *, device_id: str, device_seq: int, cipher_sha256: str,
                manifest_sha256: str) -> str | None:
        """None if this receipt names exactly that segment, else what differs."""
        want = {"device_id": device_id, "device_seq": device_seq,
                "cipher_sha256": cipher_sha256, "manifest_sha256": manifest_sha256}
        for name, value in want.items():
            if self.body.get(name) != value:
                return f"receipt {name} does not match the segment"
        return None


def issue_receipt(key: Signer, *, station_id: str, device_id: str, device_seq: int,
                  cipher_sha256: str, manifest_sha256: str, utc: str) -> Receipt:
    """Sign a receipt (the station's side; tests use it with keys made at run time)."""
    body = {"format": RECEIPT_FORMAT, "station_id": station_id, "device_id": device_id,
            "device_seq": device_seq, "cipher_sha256": cipher_sha256,
            "manifest_sha256": manifest_sha256, "utc": utc}
    receipt = Receipt(_checked_body(body), {})
    sig = base64.b64encode(key.sign(receipt.signed_bytes)).decode()
    return Receipt(receipt.body, {"alg": "ed25519", "key": key.public_b64, "sig": sig})


def parse_receipt(doc: Any) -> Receipt:
    """Parse an envelope (a JSON object); VerificationError naming what is wrong."""
    if not isinstance(doc, dict) or set(doc) != {"receipt", "signature"}:
        raise VerificationError("a receipt is an object with exactly 'receipt' and 'signature'")
    body, sig = doc["receipt"], doc["signature"]
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519" or set(sig) != {"alg", "key",
                                                                                "sig"}:
        raise VerificationError("receipt signature block must be {alg: ed25519, key, sig}")
    if not all(isinstance(v, str) and len(v) <= 200 for v in sig.values()):
        raise VerificationError("receipt signature fields must be short strings")
    return Receipt(_checked_body(body), dict(sig))


def _checked_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise VerificationError(f"receipt body must hold exactly {sorted(_FIELDS)}")
    if body["format"] != RECEIPT_FORMAT:
        raise VerificationError(f"receipt format is not {RECEIPT_FORMAT}")
    seq = body["device_seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise VerificationError("receipt device_seq must be a non-negative integer")
    for name in ("station_id", "device_id"):
        if not isinstance(body[name], str) or not _ID.match(body[name]):
            raise VerificationError(f"receipt {name} is not a valid identifier")
    for name in ("cipher_sha256", "manifest_sha256"):
        if not isinstance(body[name], str) or not _HEX64.match(body[name]):
            raise VerificationError(f"receipt {name} must be 64 lowercase hex digits")
    if not isinstance(body["utc"], str) or not _UTC.match(body["utc"]):
        raise VerificationError("receipt utc must be YYYY-MM-DDTHH:MM:SS.ffffffZ")
    return dict(body)


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise VerificationError(f"receipt {what} is not base64") from None
