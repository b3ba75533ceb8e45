"""The device's Ed25519 signing key: generated on the device, never leaves it.

Files under ``<data_dir>/keys/``: ``device.key`` (PKCS#8 PEM, mode 0600, created with that
mode so it is never briefly readable by others), ``device.pub`` (SubjectPublicKeyInfo PEM,
what the fleet registers and ``openssl`` reads), and ``retired/`` holding the public half of
every earlier key, so segments signed before a rotation still verify.

Nothing in this module logs or prints private key material.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from agent.atomic import atomic_write, fsync_dir
from hw.errors import EvidenceError, KeyMissing

__all__ = [
    "DeviceKey",
    "KeyRotation",
    "endorsement_valid",
    "fingerprint",
    "load_public_keys",
    "public_key_from_text",
    "rotation_message",
]

KEY_NAME = "device.key"
PUB_NAME = "device.pub"
RETIRED_DIR = "retired"


def fingerprint(public: bytes) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    return hashlib.sha256(public).hexdigest()


def next_key_path(path: Path) -> Path:
    """Where a rotation keeps the successor of the key at ``path`` until it is announced."""
    return path.with_name(path.name + ".next")


def _private_pem(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


def _pub_pem(public: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_from_text(text: str) -> bytes:
    """Raw public key from a PEM block or a base64 (raw 32-byte) string."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise EvidenceError("public key is not Ed25519")
        return key.public_bytes_raw()
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise EvidenceError(f"public key {text[:20]!r}… is neither PEM nor base64") from None
    if len(raw) != 32:
        raise EvidenceError("base64 public key must decode to 32 bytes")
    return raw


def load_public_keys(keys_dir: Path) -> dict[str, bytes]:
    """Current and retired public keys found in a ``keys`` directory, by fingerprint."""
    out: dict[str, bytes] = {}
    files = [keys_dir / PUB_NAME, *sorted((keys_dir / RETIRED_DIR).glob("*.pub"))]
    for f in files:
        if f.is_file():
            raw = public_key_from_text(f.read_text())
            out[fingerprint(raw)] = raw
    return out


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """What a key rotation changed; :meth:`event_fields` is the log event's payload.

    ``endorsement`` is the old key's signature over :func:`rotation_message`: it lets anyone
    who trusts only the old key (the one registered with the fleet, the one a defence expert
    was given) learn the new one from the log alone -- the checkpoint the old key signed over
    the announcement is replaced by the next one, so it cannot be that proof."""

    old_public: bytes
    new_public: bytes
    endorsement: bytes = b""

    def event_fields(self) -> dict[str, Any]:
        """Fields for the ``key_rotation`` log event (public material only)."""
        fields = {
            "old_fingerprint": fingerprint(self.old_public),
            "new_fingerprint": fingerprint(self.new_public),
            "new_key": base64.b64encode(self.new_public).decode(),
        }
        if self.endorsement:
            fields["endorsement"] = base64.b64encode(self.endorsement).decode()
        return fields


ROTATION_DOMAIN: Final = b"bodycam-key-rotation/1\n"


def rotation_message(old_public: bytes, new_public: bytes) -> bytes:
    """What the old key signs to endorse its successor: a domain tag (so no other signature
    the device makes can be passed off as one) and both raw public keys."""
    return ROTATION_DOMAIN + old_public + new_public


def endorsement_valid(old_public: bytes, new_public: bytes, signature: bytes) -> bool:
    """Does ``signature`` by ``old_public`` endorse ``new_public`` as its successor?"""
    try:
        Ed25519PublicKey.from_public_bytes(old_public).verify(
            signature, rotation_message(old_public, new_public))
    except (InvalidSignature, ValueError):
        return False
    return True


class DeviceKey:
    """An Ed25519 private key loaded from the device's key file. Immutable; thread-safe."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self._public = private.public_key().public_bytes_raw()

    def __repr__(self) -> str:
        return f"DeviceKey(fingerprint={self.fingerprint_short})"

    @classmethod
    def generate(cls, path: Path) -> DeviceKey:
        """Create a new key at ``path`` (0600) and its ``.pub`` beside it.

        Refuses to overwrite an existing key: replacing one is a rotation (:meth:`rotate`, or
        :mod:`agent.evidence.key_rotation` on a device with a log), which keeps the old public key.
        """
        path = Path(path)
        if path.exists():
            raise EvidenceError(f"{path}: a device key already exists; rotate it explicitly")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        private = Ed25519PrivateKey.generate()
        key = cls(private)
        atomic_write(path.with_name(PUB_NAME), _pub_pem(key.public_bytes), mode=0o644)
        atomic_write(path, _private_pem(private), mode=0o600)
        return key

    @classmethod
    def load(cls, path: Path) -> DeviceKey:
        """Load the key; :class:`KeyMissing` if absent, refuse one readable by group/other."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyMissing(
                f"no device key at {path}: evidence cannot be signed; "
                "run 'bodycam keys init' on the device") from None
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise EvidenceError(
                f"{path}: device key is accessible to group/other "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); expected 0600")
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise EvidenceError(f"{path}: not an Ed25519 private key")
        return cls(private)

    @classmethod
    def rotate(cls, path: Path) -> tuple[DeviceKey, KeyRotation]:
        """Retire the current key (public half kept in ``retired/``) and switch to a new one at
        once: for a device with no evidence log to announce it in. A device with a log rotates
        in two steps around the announcement (:mod:`agent.evidence.key_rotation`)."""
        new, rotation = cls.prepare_next(path)
        cls.commit_next(path)
        return new, rotation

    @classmethod
    def prepare_next(cls, path: Path) -> tuple[DeviceKey, KeyRotation]:
        """Generate the successor of the key at ``path`` into ``<key>.next`` (0600, durable),
        leaving the current key in place: until the rotation is announced (signed by the
        current key) the successor is not the device's key, and a crash must not make it so.
        A ``.next`` left by an unannounced attempt is replaced."""
        path = Path(path)
        old = cls.load(path)
        private = Ed25519PrivateKey.generate()
        new = cls(private)
        atomic_write(next_key_path(path), _private_pem(private), mode=0o600)
        fsync_dir(path.parent)
        endorsement = old.sign(rotation_message(old.public_bytes, new.public_bytes))
        return new, KeyRotation(old.public_bytes, new.public_bytes, endorsement)

    @classmethod
    def commit_next(cls, path: Path) -> DeviceKey:
        """Make ``<key>.next`` the device key: the old public half goes to ``retired/`` first (so
        what it signed stays checkable), then the key file is replaced in one rename, then
        ``device.pub`` follows (a crash before it leaves a stale one, which
        :func:`agent.evidence.key_rotation.finish_interrupted_rotation` rewrites)."""
        path = Path(path)
        old, new = cls.load(path), cls.load(next_key_path(path))
        retired = path.parent / RETIRED_DIR
        retired.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        atomic_write(retired / f"{stamp}_{old.fingerprint_short}.pub", _pub_pem(old.public_bytes))
        fsync_dir(retired)
        os.replace(next_key_path(path), path)
        fsync_dir(path.parent)
        atomic_write(path.with_name(PUB_NAME), _pub_pem(new.public_bytes), mode=0o644)
        return new

    @property
    def public_bytes(self) -> bytes:
        """Raw 32-byte public key."""
        return self._public

    @property
    def public_b64(self) -> str:
        """Standard base64 of the raw public key (as it appears in manifests)."""
        return base64.b64encode(self._public).decode()

    @property
    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM of the public key."""
        return _pub_pem(self._public)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key, hex."""
        return fingerprint(self._public)

    @property
    def fingerprint_short(self) -> str:
        """First 16 hex digits of :attr:`fingerprint`, for logs and file names."""
        return self.fingerprint[:16]

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature over ``data``."""
        return self._private.sign(data)
