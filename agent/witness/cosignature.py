"""C2SP signed-note verifier keys and tlog-cosignature/v1 (Ed25519) cosignatures.

A device's signature on its own checkpoint proves nothing against the device: whoever holds
its key can sign a rewritten history. A *cosignature* is a witness's statement that, at the
time it names, this checkpoint was the largest consistent tree it had seen for the log
(https://c2sp.org/tlog-cosignature). Byte for byte:

* key id = ``SHA-256(name ‖ 0x0A ‖ 0x04 ‖ Ed25519 public key)[:4]`` (0x01 for a device's
  plain note signature, as in :mod:`agent.evidence.checkpoint`);
* signed message = ``"cosignature/v1\\n" + "time <unix seconds>\\n" + checkpoint body``;
* signature line = ``— <name> base64(key id ‖ timestamp (u64 big-endian) ‖ signature)``;
* verifier key (vkey) = ``<name>+<hex key id>+base64(type byte ‖ public key)``
  (https://c2sp.org/signed-note#verifier-keys).

Parsing is strict and bounded: every error is a :class:`CosignatureInvalid`, never another
exception, because cosignatures arrive from the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .refusals import CosignatureInvalid

__all__ = [
    "DASH",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURE_LINES",
    "TYPE_COSIGNATURE",
    "TYPE_ED25519",
    "Cosignature",
    "Cosigner",
    "VerifierKey",
    "add_cosignatures",
    "cosignature_message",
    "note_key_id",
    "split_note",
    "verified_cosignatures",
]

TYPE_ED25519 = 0x01
TYPE_COSIGNATURE = 0x04
DASH = "\u2014"
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURE_LINES = 64  # signed-note: accept at least 16
MAX_TIMESTAMP = (1 << 63) - 1
_LABEL = b"cosignature/v1\n"
_TS = struct.Struct(">Q")
_COSIG_BLOB = 4 + 8 + 64


def note_key_id(name: str, key_type: int, public: bytes) -> bytes:
    """The 4-byte signed-note key id ``SHA-256(name ‖ 0x0A ‖ type ‖ public)[:4]``."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public).digest()[:4]


def _check_name(name: str) -> str:
    if not name or len(name) > 256 or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise CosignatureInvalid(f"key name {name[:40]!r} is empty, too long, or has a space or '+'")
    return name


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A signed-note verifier key: who signs (name), how (type byte), with which public key."""

    name: str
    key_type: int
    public: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.key_type not in (TYPE_ED25519, TYPE_COSIGNATURE):
            raise CosignatureInvalid(f"signature type 0x{self.key_type:02x} is not supported")
        if len(self.public) != 32:
            raise CosignatureInvalid("an Ed25519 public key is 32 bytes")

    @classmethod
    def for_ed25519(cls, name: str, public: bytes) -> VerifierKey:
        """The vkey of a plain Ed25519 note signer (a device signing its checkpoints)."""
        return cls(name, TYPE_ED25519, public)

    @classmethod
    def for_cosigner(cls, name: str, public: bytes) -> VerifierKey:
        """The vkey of an Ed25519 cosignature/v1 witness."""
        return cls(name, TYPE_COSIGNATURE, public)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse ``name+hexid+base64(type‖key)``; the id must match the one computed."""
        if len(text) > 512:
            raise CosignatureInvalid("verifier key is too long")
        parts = text.strip().split("+", 2)  # base64 may itself hold "+"
        if len(parts) != 3 or len(parts[1]) != 8:
            raise CosignatureInvalid("verifier key is not name+hex key id+base64 key")
        try:
            kid = bytes.fromhex(parts[1])
            blob = base64.b64decode(parts[2], validate=True)
        except (ValueError, binascii.Error):
            raise CosignatureInvalid("verifier key id is not hex or key is not base64") from None
        if not blob:
            raise CosignatureInvalid("verifier key has no key material")
        key = cls(parts[0], blob[0], blob[1:])
        if key.key_id != kid or parts[1] != kid.hex():
            raise CosignatureInvalid(f"verifier key id {parts[1]} does not match its name and key")
        return key

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id signature lines carry."""
        return note_key_id(self.name, self.key_type, self.public)

    def __str__(self) -> str:
        blob = base64.b64encode(bytes([self.key_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"


def cosignature_message(body: bytes, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header, the time line, then the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureInvalid(f"timestamp {timestamp} outside 0..2^63-1")
    return _LABEL + b"time %d\n" % timestamp + body


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One witness's timestamped cosignature on one checkpoint body."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    def line(self) -> bytes:
        """The signature line, newline-terminated, to append to the note."""
        blob = self.key_id + _TS.pack(self.timestamp) + self.signature
        return f"{DASH} {self.name} {base64.b64encode(blob).decode()}\n".encode()

    def verify(self, body: bytes, vkey: VerifierKey) -> bool:
        """True when this is ``vkey``'s valid cosignature over checkpoint ``body``."""
        if vkey.key_type != TYPE_COSIGNATURE or (self.name, self.key_id) != (vkey.name, vkey.key_id):
            return False
        try:
            Ed25519PublicKey.from_public_bytes(vkey.public).verify(
                self.signature, cosignature_message(body, self.timestamp))
        except (InvalidSignature, ValueError, CosignatureInvalid):
            return False
        return True


class Cosigner:
    """A witness's Ed25519 cosigning key under its name. Immutable; thread-safe."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.vkey = VerifierKey.for_cosigner(name, private.public_key().public_bytes_raw())

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self.vkey.name

    def cosign(self, body: bytes, timestamp: int) -> Cosignature:
        """Cosign checkpoint ``body`` as of ``timestamp`` (must be non-zero, tlog-witness)."""
        if timestamp <= 0:
            raise CosignatureInvalid("a witness cosignature must carry a non-zero timestamp")
        sig = self._private.sign(cosignature_message(body, timestamp))
        return Cosignature(self.vkey.name, self.vkey.key_id, timestamp, sig)


def _parse_line(line: str) -> tuple[str, bytes]:
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != DASH:
        raise CosignatureInvalid(f"not a signature line: {line[:60]!r}")
    _check_name(parts[1])
    try:
        blob = base64.b64decode(parts[2], validate=True)
    except binascii.Error:
        raise CosignatureInvalid("signature is not base64") from None
    if len(blob) < 5:
        raise CosignatureInvalid("signature is shorter than a key id and one byte")
    return parts[1], blob


def split_note(note: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A signed note's text (with its final newline) and its ``(name, key id ‖ sig)`` lines.

    The text ends at the *last* blank line (signed-note); sizes and line counts are bounded.
    """
    if len(note) > MAX_NOTE_BYTES:
        raise CosignatureInvalid(f"note of {len(note)} bytes exceeds {MAX_NOTE_BYTES}")
    try:
        text = note.decode("utf-8")
    except UnicodeDecodeError:
        raise CosignatureInvalid("note is not UTF-8") from None
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise CosignatureInvalid("note holds a control character")
    cut = text.rfind("\n\n")
    if cut < 0 or not text.endswith("\n"):
        raise CosignatureInvalid("not a signed note: no blank line before signatures")
    lines = text[cut + 2 : -1].split("\n")
    if len(lines) > MAX_SIGNATURE_LINES:
        raise CosignatureInvalid(f"note carries more than {MAX_SIGNATURE_LINES} signatures")
    return text[: cut + 1].encode(), [_parse_line(line) for line in lines]


def parse_cosignature(name: str, blob: bytes) -> Cosignature | None:
    """The cosignature in a parsed line, or None when its blob is not cosignature/v1-sized."""
    if len(blob) != _COSIG_BLOB:
        return None
    (ts,) = _TS.unpack_from(blob, 4)
    return Cosignature(name, blob[:4], ts, blob[12:])


def verified_cosignatures(note: bytes, vkeys: Iterable[VerifierKey]) -> dict[str, Cosignature]:
    """The valid cosignatures on ``note`` by ``vkeys``, by witness name.

    Lines from unknown keys are ignored; a line that matches a known key's name and id but
    does not verify raises :class:`CosignatureInvalid` (signed-note: such a note is bad).
    """
    body, lines = split_note(note)
    known = {(k.name, k.key_id): k for k in vkeys if k.key_type == TYPE_COSIGNATURE}
    found: dict[str, Cosignature] = {}
    for name, blob in lines:
        vkey = known.get((name, blob[:4]))
        if vkey is None:
            continue
        cosig = parse_cosignature(name, blob)
        if cosig is None or not cosig.verify(body, vkey):
            raise CosignatureInvalid(f"cosignature by {name} does not verify")
        found[name] = cosig
    return found


def add_cosignatures(note: bytes, cosignatures: Sequence[Cosignature]) -> bytes:
    """``note`` with each cosignature line appended (a line already present is not repeated)."""
    split_note(note)  # it must be a signed note before we extend it
    out = note
    for c in cosignatures:
        line = c.line()
        if line not in out.split(b"\n\n")[-1].splitlines(keepends=True):
            out += line
    return out
