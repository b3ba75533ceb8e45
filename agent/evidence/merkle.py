"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

The log over segment manifests and events is a Certificate-Transparency style tree, so the
back office can check with standard algorithms that the device only ever appended
(consistency proofs) and that a given segment is in the log (inclusion proofs).

Leaf hash ``SHA256(0x00 || data)``, interior node ``SHA256(0x01 || left || right)``, the tree
of ``n`` leaves splits at the largest power of two below ``n``; the empty tree hashes to
``SHA256("")``. Proof generation works on the list of leaf hashes; verification follows
RFC 9162 §2.1.3.2 and §2.1.4.2 literally, because a verifier that is "equivalent" is exactly
where forgeries slip through.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import overload

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "LeafHashes",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 hash of one leaf's data."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash of a list of *leaf hashes* (not leaf data)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree made of all of ``leaves`` (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} outside tree of size {len(leaves)}")
    return _path(index, leaves)


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves[:k]), root_of(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root_of(leaves[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the first ``old_size`` leaves are a prefix of ``leaves`` (RFC 9162 §2.1.4.1)."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} outside 0..{n}")
    if old_size in (0, n):
        return []
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_of(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root_of(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_of(leaves[:k])]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``(size, root)``."""
    if index < 0 or index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows tree ``(old_size, old_root)`` is a prefix of the new tree."""
    if old_size < 0 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class CompactRange:
    """The O(log n) right frontier of an append-only tree, for a constant-cost root per append.

    Holds the roots of the perfect subtrees that make up the tree, largest first; appending
    merges equal-height neighbours like a binary counter. Not thread-safe: the owning
    :class:`~agent.evidence.log.EvidenceLog` serialises appends under its lock.
    """

    def __init__(self) -> None:
        self._size = 0
        self._nodes: list[tuple[int, bytes]] = []  # (height, hash), heights strictly falling

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        height, h = 0, leaf
        while self._nodes and self._nodes[-1][0] == height:
            _, left = self._nodes.pop()
            h = node_hash(left, h)
            height += 1
        self._nodes.append((height, h))
        self._size += 1

    def root(self) -> bytes:
        """Root hash of the tree so far (RFC 6962 shape: fold the frontier right to left)."""
        if not self._nodes:
            return EMPTY_ROOT
        r = self._nodes[-1][1]
        for _, h in reversed(self._nodes[:-1]):
            r = node_hash(h, r)
        return r


class LeafHashes(Sequence[bytes]):
    """The leaf hashes of a log, 32 bytes each in one buffer.

    A log keeps every leaf hash for its proofs, for the life of the process: as a list of
    ``bytes`` that is ~73 bytes per entry (the object and the list's pointer), here 32. A
    slice is a view on the same buffer (no copy), so the recursive proof functions above
    cost no more than on a list. Appending while a view exists is safe (views hold the
    buffer and their bounds, never a memoryview)."""

    __slots__ = ("_buf", "_start", "_stop")
    SIZE = 32

    def __init__(self, buf: bytearray | None = None, start: int = 0,
                 stop: int | None = None) -> None:
        self._buf = bytearray() if buf is None else buf
        self._start = start
        self._stop = stop  # None: the buffer's end (a growing log)

    def append(self, h: bytes) -> None:
        """Add a leaf hash (only on the log itself, not on a view)."""
        if len(h) != self.SIZE or self._start or self._stop is not None:
            raise ValueError("append a 32-byte hash to the whole log")
        self._buf += h

    def _bounds(self) -> tuple[int, int]:
        stop = len(self._buf) // self.SIZE if self._stop is None else self._stop
        return self._start, stop

    def __len__(self) -> int:
        start, stop = self._bounds()
        return stop - start

    @overload
    def __getitem__(self, i: int) -> bytes: ...

    @overload
    def __getitem__(self, i: slice) -> LeafHashes: ...

    def __getitem__(self, i: int | slice) -> bytes | LeafHashes:
        start, stop = self._bounds()
        if isinstance(i, slice):
            a, b, step = i.indices(stop - start)
            if step != 1:
                raise ValueError("leaf hashes slice with step 1 only")
            return LeafHashes(self._buf, start + a, start + max(a, b))
        n = stop - start
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"leaf {i} outside 0..{n - 1}")
        k = (start + i) * self.SIZE
        return bytes(self._buf[k:k + self.SIZE])

    def __iter__(self) -> Iterator[bytes]:
        start, stop = self._bounds()
        for k in range(start, stop):
            yield bytes(self._buf[k * self.SIZE:(k + 1) * self.SIZE])
