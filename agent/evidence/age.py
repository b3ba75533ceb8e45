"""age v1 (https://age-encryption.org/v1) encryption and decryption, streaming.

Segments are encrypted as they are written, to the agency's X25519 recipients, in the
standard format so that the stock ``age -d -i agency.key`` decrypts them; the device holds
only public keys and cannot read its own recordings back.

Format summary: a text header (version line, one ``-> X25519`` stanza per recipient
wrapping the 16-byte file key, ``--- `` line with an HMAC over the header), then a 16-byte
nonce and the STREAM payload: 64 KiB plaintext chunks sealed with ChaCha20-Poly1305 under
a key derived from the file key and that nonce, nonce = 11-byte big-endian counter ‖ last
flag. Exactly one chunk carries the last flag; it may be full-size, and it may be empty
only when the whole payload is empty — which is why :class:`AgeEncryptor` holds a full
chunk back until it knows whether more data follows.

Neither class is thread-safe; one sink owns one encryptor.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hw.errors import EvidenceError

from .bech32 import bech32_decode, bech32_encode

__all__ = [
    "CHUNK_SIZE",
    "ENCRYPTED_CHUNK_SIZE",
    "AgeDecryptor",
    "AgeEncryptor",
    "AgeFormatError",
    "Identity",
    "Recipient",
    "header_length",
]

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
NONCE_SIZE = 16
_VERSION_LINE = b"age-encryption.org/v1\n"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_MAX_HEADER = 64 * 1024  # far beyond any header we accept; stops unbounded buffering


class AgeFormatError(EvidenceError, ValueError):
    """An age file, recipient or identity is malformed, or does not authenticate."""


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    if b"=" in text or b"\n" in text or b"\r" in text:
        raise AgeFormatError("non-canonical base64 in age header")
    try:
        raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise AgeFormatError("invalid base64 in age header") from None
    if _b64(raw) != text:
        raise AgeFormatError("non-canonical base64 in age header")
    return raw


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(ikm)


@dataclass(frozen=True, slots=True)
class Recipient:
    """An X25519 recipient (``age1…``): an agency public key."""

    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> Recipient:
        """Parse an ``age1…`` string; raises :class:`AgeFormatError` naming the problem."""
        try:
            hrp, data = bech32_decode(text.strip())
        except ValueError as exc:
            raise AgeFormatError(f"recipient {text!r}: {exc}") from None
        if hrp != "age" or len(data) != 32 or text.strip().lower() != text.strip():
            raise AgeFormatError(f"recipient {text!r} is not an age1… X25519 public key")
        return cls(data)

    def __str__(self) -> str:
        return bech32_encode("age", self.public_key)

    def wrap(self, file_key: bytes) -> bytes:
        """The ``-> X25519`` stanza (with body line) carrying ``file_key`` for this recipient."""
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self.public_key))
        wrap_key = _hkdf(shared, share + self.public_key, _X25519_INFO)
        body = ChaCha20Poly1305(wrap_key).encrypt(b"\x00" * 12, file_key, None)
        return b"-> X25519 " + _b64(share) + b"\n" + _b64(body) + b"\n"


@dataclass(frozen=True, slots=True)
class Identity:
    """An X25519 identity (``AGE-SECRET-KEY-…``): held by the agency, never by the device."""

    secret: bytes

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity (tests and back-office tooling)."""
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, text: str) -> Identity:
        """Parse an ``AGE-SECRET-KEY-…`` string."""
        try:
            hrp, data = bech32_decode(text.strip())
        except ValueError as exc:
            raise AgeFormatError(f"identity: {exc}") from None
        if hrp != "age-secret-key-" or len(data) != 32:
            raise AgeFormatError("identity is not an AGE-SECRET-KEY-… X25519 key")
        return cls(data)

    @classmethod
    def from_file(cls, text: str) -> list[Identity]:
        """All identities in an ``age-keygen`` style file (comments and blanks skipped)."""
        out = [cls.parse(line) for line in text.splitlines()
               if line.strip() and not line.lstrip().startswith("#")]
        if not out:
            raise AgeFormatError("identity file holds no AGE-SECRET-KEY-… line")
        return out

    def __str__(self) -> str:
        return bech32_encode("age-secret-key-", self.secret).upper()

    @property
    def recipient(self) -> Recipient:
        """The matching public recipient."""
        key = X25519PrivateKey.from_private_bytes(self.secret)
        return Recipient(key.public_key().public_bytes_raw())

    def unwrap(self, args: Sequence[bytes], body: bytes) -> bytes | None:
        """The file key if this ``X25519`` stanza is for us, else ``None``."""
        if len(args) != 2 or args[0] != b"X25519":
            return None
        share = _unb64(args[1])
        if len(share) != 32 or len(body) != 32:
            raise AgeFormatError("malformed X25519 stanza")
        key = X25519PrivateKey.from_private_bytes(self.secret)
        shared = key.exchange(X25519PublicKey.from_public_bytes(share))
        if shared == b"\x00" * 32:
            raise AgeFormatError("X25519 stanza has a low-order share")
        own = key.public_key().public_bytes_raw()
        wrap_key = _hkdf(shared, share + own, _X25519_INFO)
        try:
            return ChaCha20Poly1305(wrap_key).decrypt(b"\x00" * 12, body, None)
        except InvalidTag:
            return None


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class AgeEncryptor:
    """Streaming age v1 encryption to one or more recipients.

    ``header()`` once, then ``update()`` any number of times (returns only complete sealed
    chunks), then ``finalize()`` (returns the last chunk). Fewer than 64 KiB + one held-back
    chunk of plaintext are buffered.
    """

    def __init__(self, recipients: Iterable[Recipient]) -> None:
        recips = list(recipients)
        if not recips:
            raise AgeFormatError("at least one recipient is required")
        self._file_key = os.urandom(16)
        self._recipients = recips
        nonce = os.urandom(NONCE_SIZE)
        self._aead = ChaCha20Poly1305(_hkdf(self._file_key, nonce, b"payload"))
        self._nonce = nonce
        self._buf = bytearray()
        self._counter = 0
        self._header_done = False
        self._finished = False

    def header(self) -> bytes:
        """The header and payload nonce; must be written before any chunk."""
        if self._header_done:
            raise AgeFormatError("header already produced")
        self._header_done = True
        head = _VERSION_LINE + b"".join(r.wrap(self._file_key) for r in self._recipients)
        head += b"---"
        mac = hmac.new(_hkdf(self._file_key, b"", b"header"), head, sha256).digest()
        return head + b" " + _b64(mac) + b"\n" + self._nonce

    def update(self, plain: bytes) -> bytes:
        """Feed plaintext; returns the sealed chunks that are now known not to be last."""
        if self._finished or not self._header_done:
            raise AgeFormatError("update() outside header()..finalize()")
        self._buf += plain
        out = bytearray()
        # Keep strictly more than one chunk's worth before sealing: a chunk that ends exactly
        # at the buffer's end might turn out to be the last one.
        while len(self._buf) > CHUNK_SIZE:
            out += self._seal(bytes(self._buf[:CHUNK_SIZE]), last=False)
            del self._buf[:CHUNK_SIZE]
        return bytes(out)

    def finalize(self) -> bytes:
        """Seal the final chunk (flagged last); no further calls are allowed."""
        if self._finished or not self._header_done:
            raise AgeFormatError("finalize() outside header()..finalize()")
        self._finished = True
        last = self._seal(bytes(self._buf), last=True)
        self._buf.clear()
        return last

    def _seal(self, chunk: bytes, *, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._counter, last), chunk, None)
        self._counter += 1
        return sealed


def header_length(data: bytes) -> int | None:
    """Length of header + payload nonce at the start of ``data``, or ``None`` if incomplete.

    Needs no key: recovery uses it to find the chunk boundaries of a crashed segment.
    """
    if not data.startswith(_VERSION_LINE[: len(data)]):
        raise AgeFormatError("not an age v1 file")
    pos = len(_VERSION_LINE)
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            if len(data) > _MAX_HEADER:
                raise AgeFormatError("age header too long")
            return None
        if data.startswith(b"--- ", pos):
            total = end + 1 + NONCE_SIZE
            return total if len(data) >= total else None
        pos = end + 1


def _parse_header(head: bytes) -> tuple[list[tuple[list[bytes], bytes]], bytes, bytes]:
    """Split a header (through the MAC line) into stanzas, MAC'd bytes and MAC."""
    lines = head.split(b"\n")[:-1]
    if not lines or lines[0] + b"\n" != _VERSION_LINE:
        raise AgeFormatError("not an age v1 file")
    stanzas: list[tuple[list[bytes], bytes]] = []
    i = 1
    while i < len(lines) and lines[i].startswith(b"-> "):
        args = lines[i][3:].split(b" ")
        body = b""
        i += 1
        while True:
            if i >= len(lines):
                raise AgeFormatError("age stanza body unterminated")
            line = lines[i]
            i += 1
            if len(line) > 64:
                raise AgeFormatError("age stanza body line too long")
            body += _unb64(line) if line else b""
            if len(line) < 64:
                break
        stanzas.append((args, body))
    if i != len(lines) - 1 or not lines[i].startswith(b"--- "):
        raise AgeFormatError("age header has no MAC line")
    mac = _unb64(lines[i][4:])
    mac_input = head[: head.rindex(b"\n--- ") + 4]
    return stanzas, mac_input, mac


class AgeDecryptor:
    """Streaming age v1 decryption with X25519 identities.

    Strict mode raises on any truncation or tampering. Tolerant mode (for crashed segments)
    returns the plaintext of every complete, authenticated chunk and sets ``truncated``
    instead of raising when the file ends without its last chunk; tampering still raises.
    """

    def __init__(self, identities: Iterable[Identity], *, tolerant: bool = False) -> None:
        self._identities = list(identities)
        self._tolerant = tolerant
        self._buf = bytearray()
        self._aead: ChaCha20Poly1305 | None = None
        self._counter = 0
        self._done = False
        self.truncated = False

    def update(self, data: bytes) -> bytes:
        """Feed ciphertext; returns plaintext of chunks known not to be the last."""
        if self._done:
            if data:
                raise AgeFormatError("data after the last age chunk")
            return b""
        self._buf += data
        if self._aead is None and not self._read_header():
            return b""
        out = bytearray()
        while len(self._buf) > ENCRYPTED_CHUNK_SIZE:
            out += self._open(bytes(self._buf[:ENCRYPTED_CHUNK_SIZE]), last=False)
            del self._buf[:ENCRYPTED_CHUNK_SIZE]
        return bytes(out)

    def finalize(self) -> bytes:
        """End of input: open the final chunk (or, tolerant, keep what authenticated)."""
        if self._done:
            return b""
        if self._aead is None:
            if self._tolerant:
                self.truncated, self._done = True, True
                return b""
            raise AgeFormatError("age file truncated inside its header")
        chunk, self._buf = bytes(self._buf), bytearray()
        self._done = True
        if len(chunk) < TAG_SIZE or (len(chunk) == TAG_SIZE and self._counter > 0):
            return self._truncated("age file truncated: last chunk missing")
        try:
            return self._open(chunk, last=True)
        except AgeFormatError:
            if len(chunk) != ENCRYPTED_CHUNK_SIZE:
                return self._truncated("age file truncated or last chunk corrupted")
        # A full-size chunk that is not flagged last: the file was cut at a chunk boundary.
        plain = self._open(chunk, last=False)
        return plain + self._truncated("age file truncated at a chunk boundary")

    def _truncated(self, message: str) -> bytes:
        if not self._tolerant:
            raise AgeFormatError(message)
        self.truncated = True
        return b""

    def _read_header(self) -> bool:
        length = header_length(bytes(self._buf[:_MAX_HEADER + NONCE_SIZE + 1]))
        if length is None:
            return False
        head, nonce = bytes(self._buf[: length - NONCE_SIZE]), bytes(
            self._buf[length - NONCE_SIZE : length])
        stanzas, mac_input, mac = _parse_header(head)
        file_key = self._unwrap(stanzas)
        expected = hmac.new(_hkdf(file_key, b"", b"header"), mac_input, sha256).digest()
        if not hmac.compare_digest(expected, mac):
            raise AgeFormatError("age header MAC mismatch (header altered)")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        del self._buf[:length]
        return True

    def _unwrap(self, stanzas: list[tuple[list[bytes], bytes]]) -> bytes:
        for args, body in stanzas:
            for ident in self._identities:
                key = ident.unwrap(args, body)
                if key is not None:
                    if len(key) != 16:
                        raise AgeFormatError("wrapped file key has the wrong length")
                    return key
        raise AgeFormatError("no identity matches any recipient of this file")

    def _open(self, chunk: bytes, *, last: bool) -> bytes:
        assert self._aead is not None
        try:
            plain = self._aead.decrypt(_nonce(self._counter, last), chunk, None)
        except InvalidTag:
            raise AgeFormatError(f"age chunk {self._counter} does not authenticate") from None
        if last and not plain and self._counter > 0:
            raise AgeFormatError("empty last chunk after data")
        self._counter += 1
        return plain
