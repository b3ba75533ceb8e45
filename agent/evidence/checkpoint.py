"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies inside C2SP ``signed-note``s.

A checkpoint commits to the whole log (origin, size, root). The device signs one after every
append and sends it to the back office, which then witnesses the log: any later checkpoint
must be consistent with it, so a rollback, a fork or an altered entry becomes provable.

Text format (https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note)::

    <origin>\\n<size>\\n<base64 root>\\n
    \\n
    — <key name> <base64(key id[4] ‖ Ed25519 signature)>\\n

The signature is over the body (the first three lines including the final newline); the key
id is ``SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`` (0x01 = Ed25519).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hw.errors import VerificationError

from .keys import DeviceKey

__all__ = ["Checkpoint", "SignedCheckpoint", "key_id", "parse_signed_checkpoint", "sign_checkpoint"]

_DASH = "\u2014"


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log state: ``size`` leaves with Merkle ``root``, under ``origin``."""

    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        """The checkpoint note body that is signed."""
        if not self.origin or "\n" in self.origin:
            raise ValueError("checkpoint origin must be one non-empty line")
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n".encode()


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint with its signatures as ``(key name, key id, signature)`` triples."""

    checkpoint: Checkpoint
    signatures: tuple[tuple[str, bytes, bytes], ...]
    text: bytes

    def verify(self, public_keys: Iterable[bytes]) -> bytes:
        """Return the public key whose signature verifies; raise VerificationError if none."""
        body = self.checkpoint.body()
        for pub in public_keys:
            for name, kid, sig in self.signatures:
                if kid != key_id(name, pub):
                    continue
                try:
                    Ed25519PublicKey.from_public_bytes(pub).verify(sig, body)
                except InvalidSignature:
                    continue
                return pub
        raise VerificationError("checkpoint signature does not verify with any trusted key")


def sign_checkpoint(cp: Checkpoint, key: DeviceKey, *, name: str | None = None) -> bytes:
    """The signed-note text of ``cp`` signed by ``key`` under key name ``name``."""
    name = name or cp.origin
    if not name or any(c in name for c in " +\n"):
        raise ValueError(f"signed-note key name {name!r} must not contain space, '+' or newline")
    body = cp.body()
    blob = key_id(name, key.public_bytes) + key.sign(body)
    return body + f"\n{_DASH} {name} {base64.b64encode(blob).decode()}\n".encode()


def parse_signed_checkpoint(text: bytes) -> SignedCheckpoint:
    """Parse a signed checkpoint (signatures are parsed, not yet verified)."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("checkpoint is not UTF-8") from None
    body, sep, sigs = decoded.partition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise VerificationError("checkpoint is not a signed note (no blank line / signatures)")
    lines = body.split("\n")
    if (len(lines) < 3 or not (lines[1].isascii() and lines[1].isdigit())
            or (lines[1] != "0" and lines[1][0] == "0")):
        raise VerificationError("checkpoint body is not origin / size / root")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise VerificationError("checkpoint root is not base64") from None
    if len(root) != 32:
        raise VerificationError("checkpoint root is not a SHA-256 hash")
    signatures: list[tuple[str, bytes, bytes]] = []
    for line in sigs[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise VerificationError(f"malformed signature line {line!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise VerificationError("signature is not base64") from None
        if len(blob) != 4 + 64:
            continue  # not an Ed25519 signature: another algorithm, ignore as the spec says
        signatures.append((parts[1], blob[:4], blob[4:]))
    cp = Checkpoint(lines[0], int(lines[1]), root)
    if len(lines) != 3 or cp.body() != (body + "\n").encode():
        raise VerificationError("checkpoint body has extension lines or is not canonical")
    return SignedCheckpoint(cp, tuple(signatures), text)
