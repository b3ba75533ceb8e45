"""The device's C2PA signing identity: a private key made on the device and the agency's
X.509 certificate for it.

Why a second key beside ``keys/device.key``: the evidence key signs our own canonical JSON and
checkpoints (raw Ed25519, registered with the fleet); the C2PA key signs COSE claims that tools
nobody at the agency wrote will check against an X.509 chain. Keeping them apart means a flaw
in either protocol cannot be turned into a signature in the other, and the C2PA certificate
can be re-issued or revoked without touching the evidence log's key history.

Files (under the data directory's ``keys/``): ``c2pa.key`` (PKCS#8 PEM, 0600, never logged,
never leaves the device) and ``c2pa.crt`` (PEM: the device certificate first, then any
intermediate CA certificates; never the root, which readers hold as their trust anchor).

The certificate must meet the C2PA signing-certificate profile (C2PA 2.x §14.5, as c2pa-rs's
``check_end_entity_certificate_profile`` enforces): X.509 v3; Ed25519 or ECDSA P-256/384/521;
not a CA; key usage ``digitalSignature`` (critical); an extended key usage that C2PA accepts
(here ``id-kp-documentSigning`` and ``id-kp-emailProtection``) and never ``anyExtendedKeyUsage``;
an Authority Key Identifier; no issuer/subject unique IDs; not self-signed.
:func:`profile_problem` checks this on the device before the first signature, so a wrong
certificate is a loud configuration error, not a stream of untrusted credentials.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from agent.atomic import atomic_write

from .credential_error import ContentCredentialError

__all__ = [
    "C2PA_EKUS",
    "CERT_NAME",
    "KEY_NAME",
    "SigningIdentity",
    "generate_key",
    "profile_problem",
    "signing_request",
]

KEY_NAME = "c2pa.key"
CERT_NAME = "c2pa.crt"
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning (RFC 9336)
C2PA_EKUS = (DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION)
_ACCEPTED_EKUS = {*C2PA_EKUS, ObjectIdentifier("1.3.6.1.4.1.62558.2.1")}  # + c2pa-kp-claimSigning
_MAX_PEM = 64 * 1024

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def generate_key(path: Path, *, alg: str = "ed25519") -> PrivateKey:
    """Make a new signing key at ``path`` (0600, directory 0700); refuses to overwrite one."""
    path = Path(path)
    if path.exists():
        raise ContentCredentialError(f"{path}: a C2PA key exists; refusing to overwrite it")
    key: PrivateKey
    if alg == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "es256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ContentCredentialError(f"C2PA key algorithm {alg!r}: use ed25519 or es256")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), mode=0o600)
    return key


def signing_request(key: PrivateKey, device_id: str, organisation: str) -> bytes:
    """A PEM CSR for the agency CA (subject CN = device id, O = agency)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)])
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, algo)
    return csr.public_bytes(serialization.Encoding.PEM)


def profile_problem(cert: x509.Certificate, *, now: dt.datetime | None = None) -> str | None:
    """``None`` if ``cert`` may sign C2PA claims, else what is wrong (one sentence)."""
    when = now or dt.datetime.now(dt.UTC)
    if cert.version is not x509.Version.v3:
        return "not an X.509 v3 certificate"
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        return f"not valid now (valid {cert.not_valid_before_utc} .. {cert.not_valid_after_utc})"
    if cert.issuer == cert.subject:
        return "self-signed: a C2PA signer must be issued by a CA"
    pub = cert.public_key()
    if not isinstance(pub, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return "key is neither Ed25519 nor ECDSA"
    exts = cert.extensions
    problem = (_basic_problem(exts) or _key_usage_problem(exts) or _eku_problem(exts))
    if problem:
        return problem
    try:
        exts.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return "no Authority Key Identifier"
    return None


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    """A key and its certificate chain, ready to sign (the key never appears in ``repr``)."""

    alg: str  # "ed25519" | "es256"
    chain_pem: bytes
    key_pem: bytes = field(repr=False)

    @classmethod
    def load(cls, keys_dir: Path) -> SigningIdentity:
        """Read ``c2pa.key`` and ``c2pa.crt``; check key mode, match and certificate profile."""
        key_path, cert_path = Path(keys_dir) / KEY_NAME, Path(keys_dir) / CERT_NAME
        try:
            if key_path.stat().st_mode & 0o077:
                raise ContentCredentialError(f"{key_path}: readable by others; chmod 0600")
            key_pem, chain_pem = _read(key_path), _read(cert_path)
            key = serialization.load_pem_private_key(key_pem, password=None)
            chain = x509.load_pem_x509_certificates(chain_pem)
        except OSError as exc:
            raise ContentCredentialError(f"C2PA identity: {exc.strerror}: {exc.filename}") from None
        except ValueError as exc:
            raise ContentCredentialError(f"C2PA identity: unreadable key or certificate "
                                         f"({type(exc).__name__})") from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            alg = "ed25519"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            alg = "es256"
        else:
            raise ContentCredentialError(f"{key_path}: use an Ed25519 or P-256 key")
        leaf = chain[0]
        if _public_der(leaf.public_key()) != _public_der(key.public_key()):
            raise ContentCredentialError(f"{cert_path}: certificate is not for {key_path}")
        problem = profile_problem(leaf)
        if problem:
            raise ContentCredentialError(f"{cert_path}: unusable for C2PA: {problem}")
        return cls(alg, chain_pem, key_pem)

    def signer(self) -> c2pa.Signer:
        """A reference-library signer (no time-stamp authority: the device is often offline)."""
        info = c2pa.C2paSignerInfo(self.alg.encode(), self.chain_pem, self.key_pem, None)
        return c2pa.Signer.from_info(info)

    def certificate(self) -> x509.Certificate:
        """The device's own certificate (first in the chain)."""
        return x509.load_pem_x509_certificates(self.chain_pem)[0]


def _basic_problem(exts: x509.Extensions) -> str | None:
    try:
        if exts.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "a CA certificate cannot sign C2PA claims"
    except x509.ExtensionNotFound:
        pass
    return None


def _key_usage_problem(exts: x509.Extensions) -> str | None:
    try:
        ku = exts.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return "no key usage extension"
    if not ku.value.digital_signature:
        return "key usage lacks digitalSignature"
    if ku.value.key_cert_sign:
        return "key usage keyCertSign on an end-entity certificate"
    return None


def _eku_problem(exts: x509.Extensions) -> str | None:
    try:
        eku = set(exts.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return "no extended key usage"
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return "anyExtendedKeyUsage is not allowed"
    if not eku & _ACCEPTED_EKUS:
        return "no extended key usage that C2PA accepts (documentSigning, emailProtection)"
    return None


def _read(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read(_MAX_PEM + 1)
    if len(data) > _MAX_PEM:
        raise ContentCredentialError(f"{path}: larger than {_MAX_PEM} bytes")
    return data


def _public_der(key: object) -> bytes:
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return b""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)

