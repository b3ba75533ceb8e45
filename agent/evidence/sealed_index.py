"""The store's index of sealed segments and their acknowledgements, as the evidence log says.

What a station receipt and an eviction are checked against: for each sealed segment (by
``device_seq``) its ciphertext and manifest SHA-256 and the index of its log leaf (for
inclusion proofs), and for each acknowledged one the ``acknowledged`` entry's index and the
receipt's hash. It is *derived from the log* when the store opens -- there is no side file an
attacker could edit (DESIGN §3) -- and kept in step with each append.

Its own module because it is the one part of the store that grows with the device's whole
life, one entry per segment ever sealed, so its size per entry is a design figure
(``scripts/soak_memory.py``): digests are kept as their 32 raw bytes, not as 64-character hex
strings (about 280 bytes per sealed segment instead of 375, see :class:`SealedSegment`).

Not thread-safe: the store's lock guards it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .canonical import parse_canonical

__all__ = ["Acknowledgement", "SealedIndex", "SealedSegment", "digest_bytes"]

_NO_DIGEST = b""  # a log entry whose hash is not SHA-256 hex: it matches nothing


def digest_bytes(value: Any) -> bytes:
    """The 32 bytes of a lowercase SHA-256 hex string as the store writes it; ``b""`` for
    anything else, which equals no digest (a malformed entry never matches a receipt)."""
    if not isinstance(value, str) or len(value) != 64:
        return _NO_DIGEST
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return _NO_DIGEST
    return raw if raw.hex() == value else _NO_DIGEST


@dataclass(frozen=True, slots=True)
class SealedSegment:
    """What the log says about one sealed segment: what a receipt must match, and where its
    leaf is. Raw digests: two 33-byte objects instead of two 113-byte ``str``."""

    cipher: bytes    # SHA-256 of the media file (ciphertext)
    manifest: bytes  # SHA-256 of the signed manifest envelope
    index: int       # its leaf in the log

    @property
    def cipher_sha256(self) -> str:
        """The ciphertext hash as hex, as logs, manifests and receipts carry it."""
        return self.cipher.hex()

    @property
    def manifest_sha256(self) -> str:
        """The manifest hash as hex, as logs and receipts carry it."""
        return self.manifest.hex()

    def names(self, cipher_sha256: Any, manifest_sha256: Any) -> bool:
        """Whether these hex hashes are exactly this segment's (never for a malformed one)."""
        if _NO_DIGEST in (self.cipher, self.manifest):
            return False
        return (digest_bytes(cipher_sha256), digest_bytes(manifest_sha256)) == (
            self.cipher, self.manifest)


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Where a segment's ``acknowledged`` entry sits in the log and which receipt it quotes."""

    ack_index: int
    receipt: bytes  # SHA-256 of the receipt

    @property
    def receipt_sha256(self) -> str:
        """The receipt's hash as hex, as the ``acknowledged`` and ``eviction`` entries carry it."""
        return self.receipt.hex()


class SealedIndex:
    """Sealed segments and acknowledgements by ``device_seq``; the first log entry wins. Also
    where the log's ``key_rotation`` entries are (``rotations``: their log indices), found by
    the same reading of the log at open, so nobody reads the whole log again for them."""

    def __init__(self) -> None:
        self._sealed: dict[int, SealedSegment] = {}
        self._acks: dict[int, Acknowledgement] = {}
        self.rotations: list[int] = []

    @classmethod
    def from_log(cls, entries: Iterable[tuple[int, bytes]]) -> SealedIndex:
        """The index of a log's ``(index, canonical JSON)`` entries.

        An ``acknowledged`` entry counts only if it names a segment logged before it with the
        same hashes: the log is signed and append-only, so this is the registry's only source.
        """
        out = cls()
        for index, data in entries:
            entry = parse_canonical(data)
            if entry.get("type") == "key_rotation":
                out.rotations.append(index)
            seq = entry.get("device_seq")
            if not isinstance(seq, int) or isinstance(seq, bool):
                continue
            if entry.get("kind") == "segment":
                out.add_segment(seq, cipher_sha256=entry.get("cipher_sha256"),
                                manifest_sha256=entry.get("manifest_sha256"), index=index)
            elif entry.get("type") == "acknowledged" and out.acknowledgement(seq) is None:
                sealed = out.get(seq)
                if sealed is not None and sealed.names(entry.get("cipher_sha256"),
                                                       entry.get("manifest_sha256")):
                    out.acknowledge(seq, index, entry.get("receipt_sha256"))
        return out

    def add_segment(self, device_seq: int, *, cipher_sha256: Any, manifest_sha256: Any,
                    index: int) -> None:
        """Record a segment's log entry (hex hashes as logged); a second one for the same
        ``device_seq`` changes nothing."""
        if device_seq not in self._sealed:
            self._sealed[device_seq] = SealedSegment(digest_bytes(cipher_sha256),
                                                     digest_bytes(manifest_sha256), index)

    def get(self, device_seq: int) -> SealedSegment | None:
        """The sealed segment ``device_seq``, if the log has it."""
        return self._sealed.get(device_seq)

    def last_seq(self) -> int:
        """The highest sealed ``device_seq`` (-1 when none is)."""
        return max(self._sealed, default=-1)

    def acknowledge(self, device_seq: int, ack_index: int, receipt_sha256: Any) -> Acknowledgement:
        """Record the ``acknowledged`` entry at ``ack_index``; returns it."""
        ack = Acknowledgement(ack_index, digest_bytes(receipt_sha256))
        self._acks[device_seq] = ack
        return ack

    def acknowledgement(self, device_seq: int) -> Acknowledgement | None:
        """The logged acknowledgement of segment ``device_seq``, if any."""
        return self._acks.get(device_seq)
