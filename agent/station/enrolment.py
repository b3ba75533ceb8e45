"""Registration of a device at the station, from the record its provisioning wrote.

``bodycam-provision`` writes ``bodycam-enrol.json`` on the boot partition: the device id, its
Ed25519 evidence key (raw base64 and PEM, with the SHA-256 fingerprint) and the certificate
signing request of its TLS client key. The station registers exactly that — never a key first
seen on an upload (no trust on first use): the evidence key checks manifests and checkpoints;
the TLS key from the request pins which certificate may speak for the device, so a certificate
the CA issued for the same name but another key is refused too.

Every field is checked against the others (PEM against base64, fingerprint against key, the
request's subject against the device id, the request's own signature) before anything is
stored; a record that disagrees with itself is refused whole.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agent.evidence.ids import is_device_id
from agent.evidence.inventory import UnsafeFile, read_bounded
from agent.evidence.keys import public_key_from_text
from hw.errors import ConfigError, EvidenceError

__all__ = ["RECORD_TYPE", "Enrolment", "Retirement", "parse_enrolment", "read_enrolment",
           "spki_sha256"]

RECORD_TYPE = "bodycam-enrolment-request/v1"
_MAX_RECORD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Retirement:
    """Where a rotated key's stretch of the device's log ends, as far as the station knows
    (:mod:`.keyspans`): ``end`` is the largest checkpoint size the key may sign, and its
    manifests are of entries below ``end``. ``proven``: ``end - 1`` is the rotation entry's own
    log index, proven when the device presented it; otherwise ``end`` is only a bound -- the
    size of the held checkpoint a later key signed (the rotation is inside it)."""

    end: int
    proven: bool


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A registered device: its id, evidence key and (if the record had one) TLS key pin."""

    device_id: str
    public_key: bytes           # raw Ed25519, 32 bytes
    tls_key_sha256: str | None  # SHA-256 of the TLS key's SubjectPublicKeyInfo DER, hex
    record: dict[str, Any]
    #: Keys the device rotated to since, each endorsed by one before it (the index fills it:
    #: :mod:`.devicekeys`); the enrolment record itself never names them.
    successors: tuple[bytes, ...] = ()
    #: One per key that endorsed a successor (``keys[:-1]``, in order): where its span ends,
    #: None while the station knows no bound (:mod:`.keyspans`).
    retirements: tuple[Retirement | None, ...] = ()

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every key the device may sign evidence with: the enrolled one, then its successors
        (segments sealed before a rotation still arrive signed by the old key) -- each within
        its span of the log (:attr:`retirements`, :mod:`.keyspans`)."""
        return (self.public_key, *self.successors)

    def retirement(self, key: bytes) -> Retirement | None:
        """Where ``key``'s span ends (None: in force, or no bound known yet)."""
        keys = self.keys
        i = keys.index(key) if key in keys else len(keys)
        return self.retirements[i] if i < len(self.retirements) else None

    @property
    def public_b64(self) -> str:
        """The evidence key as base64 (as manifests carry it)."""
        return base64.b64encode(self.public_key).decode()


def spki_sha256(public_key: Any) -> str:
    """SHA-256 (hex) of a public key's SubjectPublicKeyInfo DER: what pins a TLS key."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def read_enrolment(path: Path) -> Enrolment:
    """Read and check an enrolment record file; ConfigError naming what is wrong."""
    try:
        data = read_bounded(Path(path), _MAX_RECORD)
        doc = json.loads(data.decode("utf-8"))
    except (UnsafeFile, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"not a readable enrolment record ({exc})", source=str(path)) from None
    return parse_enrolment(doc, source=str(path))


def parse_enrolment(doc: Any, *, source: str = "<enrolment>") -> Enrolment:
    """Check an enrolment record (parsed JSON) for internal consistency."""
    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(message, key=key, source=source)

    if not isinstance(doc, dict):
        raise bad("", "an enrolment record is a JSON object")
    if doc.get("type") != RECORD_TYPE:
        raise bad("type", f"{str(doc.get('type'))[:60]!r} is not {RECORD_TYPE!r}")
    device_id = doc.get("device_id")
    if not isinstance(device_id, str) or not is_device_id(device_id):
        raise bad("device_id", f"{str(device_id)[:60]!r} is not a device id")
    try:
        raw = public_key_from_text(str(doc.get("public_key_ed25519_b64", "")))
    except EvidenceError as exc:
        raise bad("public_key_ed25519_b64", str(exc)) from None
    pem = doc.get("public_key_pem")
    if pem is not None:
        try:
            pem_raw = public_key_from_text(str(pem))
        except (EvidenceError, ValueError) as exc:
            raise bad("public_key_pem", f"not an Ed25519 public key ({exc})") from None
        if pem_raw != raw:
            raise bad("public_key_pem", "names another key than public_key_ed25519_b64")
    fp = doc.get("fingerprint_sha256")
    if fp is not None and fp != hashlib.sha256(raw).hexdigest():
        raise bad("fingerprint_sha256", "is not the SHA-256 of the evidence key")
    tls_pin = _csr_pin(doc.get("mqtt_csr_pem"), device_id, bad)
    return Enrolment(device_id, raw, tls_pin, dict(doc))


def _csr_pin(csr_pem: Any, device_id: str, bad: Any) -> str | None:
    if csr_pem is None:
        return None
    try:
        csr = x509.load_pem_x509_csr(str(csr_pem).encode())
    except ValueError as exc:
        raise bad("mqtt_csr_pem", f"not a PEM certificate request ({exc})") from None
    if not csr.is_signature_valid:
        raise bad("mqtt_csr_pem", "the request's own signature does not verify")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != device_id:
        raise bad("mqtt_csr_pem", f"the request's subject is not CN={device_id}")
    return spki_sha256(csr.public_key())
