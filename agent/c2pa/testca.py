"""A throw-away agency CA for the simulator, tests and benches -- never for a real device.

A real device makes its key (:func:`~agent.c2pa.credentials.generate_key`), sends the
:func:`~agent.c2pa.credentials.signing_request` at enrolment, and the agency CA returns the
certificate. The simulator has no agency, so :func:`ensure_sim_identity` plays both parts at run
time: it makes a CA under ``<data-dir>/state/c2pa-test-ca/`` (its key too, 0600: test use only)
and issues the device certificate with the extensions C2PA requires. Readers are told to trust
``ca.crt`` and nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from agent.atomic import atomic_write

from .credential_error import ContentCredentialError
from .credentials import (
    C2PA_EKUS,
    CERT_NAME,
    KEY_NAME,
    PrivateKey,
    SigningIdentity,
    generate_key,
    signing_request,
)

__all__ = ["TestCA", "ensure_sim_identity"]

_DAYS = 365


@dataclass(frozen=True, slots=True)
class TestCA:
    """A self-signed root that issues C2PA device certificates."""

    __test__ = False  # not a pytest test class

    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(cls, folder: Path, *, name: str = "bodycam test agency CA",
               alg: str = "ed25519") -> TestCA:
        """Make ``folder/ca.key`` (0600) and ``folder/ca.crt``; reuse them if present."""
        folder = Path(folder)
        if (folder / "ca.crt").exists():
            return cls.load(folder)
        key = generate_key(folder / "ca.key", alg=alg)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bodycam test agency")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, _digest(key)))
        atomic_write(folder / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert, key)

    @classmethod
    def load(cls, folder: Path) -> TestCA:
        """Read a CA made by :meth:`create`."""
        key = serialization.load_pem_private_key((Path(folder) / "ca.key").read_bytes(), None)
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise ContentCredentialError(f"{folder}/ca.key: not an Ed25519 or ECDSA key")
        return cls(x509.load_pem_x509_certificate((Path(folder) / "ca.crt").read_bytes()), key)

    @property
    def pem(self) -> bytes:
        """The root certificate: what a reader is told to trust."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, csr_pem: bytes, *, days: int = _DAYS) -> bytes:
        """A C2PA signing certificate (PEM) for a device's CSR."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ContentCredentialError("CSR signature does not verify")
        pub = csr.public_key()
        if not isinstance(pub, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise ContentCredentialError("CSR key is neither Ed25519 nor ECDSA")
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(csr.subject)
                .issuer_name(self.cert.subject).public_key(pub)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage(list(C2PA_EKUS)), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, _digest(self.key)))
        return cert.public_bytes(serialization.Encoding.PEM)


def ensure_sim_identity(data_dir: Path, device_id: str, *, alg: str = "ed25519"
                        ) -> tuple[SigningIdentity, bytes]:
    """The simulator's C2PA identity and the test CA's root PEM, made on first use."""
    keys = Path(data_dir) / "keys"
    ca = TestCA.create(Path(data_dir) / "state" / "c2pa-test-ca")
    if not (keys / CERT_NAME).exists():
        key = generate_key(keys / KEY_NAME, alg=alg) if not (keys / KEY_NAME).exists() else \
            _load_key(keys / KEY_NAME)
        cert = ca.issue(signing_request(key, device_id, "bodycam test agency"))
        atomic_write(keys / CERT_NAME, cert)
    return SigningIdentity.load(keys), ca.pem


def _load_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ContentCredentialError(f"{path}: not an Ed25519 or ECDSA key")
    return key


def _digest(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
