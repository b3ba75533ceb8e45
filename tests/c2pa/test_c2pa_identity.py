"""The device's C2PA signing identity: key on the device (0600), certificate from the agency CA
with the profile C2PA readers require; a wrong certificate is refused before it signs."""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.c2pa import (
    ContentCredentialError,
    ContentCredentials,
    SigningIdentity,
    TestCA,
    c2pa_status,
    generate_key,
    profile_problem,
    signing_request,
)
from agent.c2pa.claim import definition_for
from agent.c2pa.native import sign_data_hashed
from agent.c2pa.port import after_seal_port


def _identity(tmp_path: Path, ca: TestCA, alg: str = "ed25519") -> SigningIdentity:
    keys = tmp_path / "keys"
    key = generate_key(keys / "c2pa.key", alg=alg)
    (keys / "c2pa.crt").write_bytes(ca.issue(signing_request(key, "BC-0001", "Agency")))
    return SigningIdentity.load(keys)


def test_key_is_private_and_never_shown(tmp_path: Path) -> None:
    """The key file is 0600 in a 0700 folder, is never overwritten, and repr hides it."""
    ca = TestCA.create(tmp_path / "ca")
    identity = _identity(tmp_path, ca)
    key_file = tmp_path / "keys" / "c2pa.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    assert b"PRIVATE" not in repr(identity).encode()
    with pytest.raises(ContentCredentialError, match="refusing to overwrite"):
        generate_key(key_file)
    os.chmod(key_file, 0o644)
    with pytest.raises(ContentCredentialError, match="readable by others"):
        SigningIdentity.load(tmp_path / "keys")


def test_issued_certificate_meets_the_c2pa_profile(tmp_path: Path) -> None:
    """The test CA issues what C2PA requires: not a CA, digitalSignature (critical),
    documentSigning/emailProtection EKU, AKI; the CA's own certificate is refused as a signer."""
    ca = TestCA.create(tmp_path / "ca")
    cert = _identity(tmp_path, ca).certificate()
    assert profile_problem(cert) is None
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    eku = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36") in eku
    assert profile_problem(ca.cert) is not None  # self-signed CA
    assert "not valid now" in str(profile_problem(cert, now=dt.datetime(2000, 1, 1,
                                                                        tzinfo=dt.UTC)))


@pytest.mark.parametrize("change, problem", [
    ("no_eku", "no extended key usage"),
    ("any_eku", "anyExtendedKeyUsage"),
    ("server_eku", "no extended key usage that C2PA accepts"),
    ("ca", "CA certificate"),
    ("no_aki", "Authority Key Identifier"),
])
def test_wrong_certificates_are_refused_before_signing(tmp_path: Path, change: str,
                                                       problem: str) -> None:
    """A certificate C2PA readers would reject is a loud error at load, naming the problem."""
    ca = TestCA.create(tmp_path / "ca")
    key = generate_key(tmp_path / "keys" / "c2pa.key")
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "BC-0001")]))
         .issuer_name(ca.cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=change == "ca", path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                      False), critical=True))
    ekus = {"any_eku": [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
            "server_eku": [ExtendedKeyUsageOID.SERVER_AUTH]}.get(
        change, [ExtendedKeyUsageOID.EMAIL_PROTECTION])
    if change != "no_eku":
        b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if change != "no_aki":
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)  # type: ignore[arg-type]
    cert = b.sign(ca.key, None)
    (tmp_path / "keys" / "c2pa.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ContentCredentialError, match=problem):
        SigningIdentity.load(tmp_path / "keys")


def test_certificate_for_another_key_is_refused(tmp_path: Path) -> None:
    """c2pa.crt must certify c2pa.key, not some other key."""
    ca = TestCA.create(tmp_path / "ca")
    generate_key(tmp_path / "keys" / "c2pa.key")
    other = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "keys" / "c2pa.crt").write_bytes(ca.issue(signing_request(other, "X", "A")))
    with pytest.raises(ContentCredentialError, match="not for"):
        SigningIdentity.load(tmp_path / "keys")


def test_es256_identity_signs_trusted_credentials(tmp_path: Path) -> None:
    """ECDSA P-256 (ES256) works as well as Ed25519, under an ES256 CA."""
    ca = TestCA.create(tmp_path / "ca", alg="es256")
    identity = _identity(tmp_path, ca, alg="es256")
    media = os.urandom(5000)
    import hashlib
    manifest = {"format": "bodycam-segment/1", "device_id": "BC-0001", "device_seq": 0,
                "recording_id": "r" * 32, "seq": 0, "start": {"utc": "2026-11-27T10:00:00Z"},
                "end": {"utc": None}, "clock": {"source": "none", "est_error_ms": None},
                "file": {"name": "a.mp4.age", "plain_sha256": hashlib.sha256(media).hexdigest(),
                         "cipher_sha256": "0" * 64, "encrypted": True},
                "media": {"video": {"codec": "h264"}}}
    store = sign_data_hashed(definition_for(manifest, "e" * 64), identity.signer(),
                             hashlib.sha256(media).digest())
    assert c2pa_status(io.BytesIO(media), ca.pem, credential=store) == (
        "valid", "signature, certificate chain and hash binding verified")


def test_port_needs_a_certificate_unless_test_ca_is_allowed(tmp_path: Path) -> None:
    """A device without keys/c2pa.crt fails at start; the simulator makes a test CA instead."""
    with pytest.raises(ContentCredentialError, match="c2pa"):
        after_seal_port(tmp_path, "BC-0001", test_ca=False)
    port = after_seal_port(tmp_path, "BC-0001", test_ca=True)
    assert isinstance(port, ContentCredentials)
    assert (tmp_path / "state" / "c2pa-test-ca" / "ca.crt").exists()
    assert isinstance(after_seal_port(tmp_path, "BC-0001", test_ca=False), ContentCredentials)


def test_recovered_segment_without_plaintext_hash_gets_no_credential(tmp_path: Path) -> None:
    """No plaintext hash (a crash-recovered segment) → no hard binding → refused, named."""
    from agent.evidence.manifest import SignedManifest
    port = after_seal_port(tmp_path, "BC-0001", test_ca=True)
    signed = SignedManifest({"file": {"name": "a.mp4.age", "plain_sha256": None}}, {})
    with pytest.raises(ContentCredentialError, match="plaintext hash unknown"):
        port.issue(tmp_path / "a.mp4.age", signed)
