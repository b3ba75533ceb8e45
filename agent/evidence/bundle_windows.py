"""Holding each device key to its window of the log in a court bundle (check 2 of
:mod:`.bundle`).

A key is rotated because it may be in someone else's hands. Trusting every key the bundle's
rotations introduce for every manifest would let whoever holds a retired key sign a "segment"
logged after its retirement and have it pass; ``bodycam verify`` of a data directory rules
that out with each key's window of the log (:mod:`.key_windows`). A bundle can apply the same
windows only when it knows where each rotation is in the log: a rotation entry carries no
position of its own, and the bundle does not carry the device's whole log.

So ``keys/device-rotations.json`` (format ``bodycam-key-rotations/1``) may carry, beside the
rotation ``entries`` (their exact canonical bytes), a ``positions`` list of the same length:
for each entry either ``null`` (the station could not prove where it is) or
``{"log_index": r, "tree_size": N, "hashes": [...]}`` -- an RFC 9162 inclusion proof that
``SHA-256(0x00 ‖ entry)`` is leaf ``r`` of the bundle's newest checkpoint (the one its history
check ends at, which the device signed). Older bundles have no ``positions``; the format name
stays, since a reader that ignores them checks what it always did.

What is checked here:

1. the rotations are followed by the verifier's one rule (:func:`.rotation_trust.follow_windows`,
   in the file's order): a fork or forged endorsement fails and introduces nothing;
2. each position's proof leads to the newest checkpoint's root, and positions increase in the
   file's order -- else ``rotation_position_invalid`` (a failure: a position that does not prove
   itself must not move a window);
3. when every rotation has a proven position, the windows :func:`follow_windows` gave in file
   order are placed at those log indices (the rule itself -- old key up to ``r``, new key from
   ``r + 1`` -- is :mod:`.key_windows`' alone), and every segment whose log index its
   inclusion proof proved is held to them: a manifest signed by a key retired before its entry fails
   ``manifest_retired_key``, one signed by a key introduced later ``manifest_key_not_yet_valid``
   (verify's codes and words, :meth:`.key_windows.KeyWindows.outside`); so is the checkpoint
   each segment's inclusion proof leads to (``checkpoint_retired_key``: a retired key signs no
   checkpoint past the one over its own rotation, size ``r + 1``);
4. when any rotation has no position (a bundle from an older station, or a rotation the device
   presented without one), a warning ``key_windows_unapplied`` says the windows could not be
   applied: every key of the chain is then trusted for every segment, as before.

The station (agent/station/exporter.py) makes the proofs with :func:`rotation_position`: it
never holds the device's whole log, only the position the device proved when it presented the
rotation and the inclusion and consistency proofs it kept. A Merkle node's hash depends only
on the leaves under it, so every node those proofs show (:func:`known_nodes`) is the same node
in the newest tree; from them the rotation entry's audit path in the newest tree can usually be
made, and when it cannot, the position is exported as ``null`` rather than guessed.

Pure: the caller (:mod:`.bundle`) reads the files; nothing here raises on bad input except the
ValueError the caller reports as a malformed bundle.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hw.errors import VerificationError

from .canonical import parse_canonical
from .checkpoint import Checkpoint, SignedCheckpoint
from .key_windows import KeyWindows, Window
from .merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion
from .rotation_trust import Findings, follow_windows

__all__ = ["ROTATIONS_FORMAT", "BundleRotations", "SignedSegment", "hold_to_windows",
           "known_nodes", "read_rotations", "rotation_position"]

ROTATIONS_FORMAT = "bodycam-key-rotations/1"
_MAX_PATH = 64  # an audit path of a tree of up to 2**64 entries


@dataclass(frozen=True, slots=True)
class SignedSegment:
    """A bundle segment whose log index its inclusion proof proved: who signed its manifest,
    and the checkpoint that proof leads to."""

    where: str
    key: bytes
    leaf_index: int
    checkpoint: SignedCheckpoint


@dataclass(frozen=True, slots=True)
class BundleRotations:
    """The rotations a bundle carries: the windows the verifier's rule gives them in file
    order (window bounds are positions in ``entries``, not yet log indices), the entries'
    exact bytes, and each one's claimed position (None: not carried)."""

    windows: KeyWindows
    entries: tuple[bytes, ...]
    positions: tuple[Any, ...]

    @property
    def keys(self) -> list[bytes]:
        """Every device key the bundle trusts: the enrolled one and those followed to."""
        return self.windows.trusted()


def read_rotations(doc: Any, enrolled: bytes, report: Findings) -> BundleRotations:
    """Follow the rotations of a parsed ``keys/device-rotations.json`` from the ``enrolled``
    key (findings go to ``report``); ValueError when it is not the format's."""
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != ROTATIONS_FORMAT or \
            not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ValueError(f"key rotations: not a {ROTATIONS_FORMAT} list of entries")
    positions = doc.get("positions", [None] * len(entries))
    if not isinstance(positions, list) or len(positions) != len(entries):
        raise ValueError("key rotations: 'positions' is not one per entry")
    raw = tuple(e.encode("utf-8") for e in entries)
    windows = follow_windows([dict(parse_canonical(e)) for e in raw], [enrolled], report)
    return BundleRotations(windows, raw, tuple(positions))


def hold_to_windows(rotations: BundleRotations | None, newest: Checkpoint,
                    signed: Sequence[SignedSegment], report: Findings) -> None:
    """Checks 2-4 of the module: prove the positions against the ``newest`` checkpoint, then
    hold each segment's manifest signer to the key valid at its log entry."""
    if rotations is None or not rotations.entries:
        return
    at: list[int | None] = []
    for i, (entry, pos) in enumerate(zip(rotations.entries, rotations.positions, strict=True)):
        try:
            at.append(None if pos is None else _proven_index(entry, pos, newest))
        except ValueError as exc:
            report.add("fail", "rotation_position_invalid", f"key rotation {i}", str(exc))
            return  # a position that does not prove itself moves no window
    proven = [i for i in at if i is not None]
    if len(proven) < len(at):
        report.add("warn", "key_windows_unapplied", "keys/device-rotations.json",
                   "the bundle does not prove where every key rotation is in the log (a "
                   "station from before positions were kept, or a rotation presented without "
                   "one): each device key could not be held to its window of the log, so a "
                   "retired key is trusted for every segment")
        return
    if any(b <= a for a, b in itertools.pairwise(proven)):
        report.add("fail", "rotation_position_invalid", "keys/device-rotations.json",
                   f"the rotations' log positions {proven} are not in the order of the chain")
        return
    windows = _placed(rotations.windows, proven)
    bad = 0
    for s in signed:
        for outside in (windows.outside(s.key, s.leaf_index, what="manifest"),
                        _checkpoint_outside(windows, s.checkpoint)):
            if outside is not None:
                bad += 1
                report.add("fail", outside[0], s.where, outside[1])
    if not bad:
        report.add("ok", "key_windows", "keys/device-rotations.json",
                   f"every manifest and inclusion checkpoint is signed by a key valid at its "
                   f"place in the log (rotations at log entries {', '.join(map(str, proven))}, "
                   "proven in the newest checkpoint)")


def _checkpoint_outside(windows: KeyWindows, signed: SignedCheckpoint) -> tuple[str, str] | None:
    """Why no key that signed ``signed`` may sign a checkpoint of its size (verify's
    ``checkpoint_retired_key``: a retired key extending, or forking, the log), or None."""
    size, signers = signed.checkpoint.size, []
    for key in windows.trusted():
        try:
            signers.append(signed.verify([key]))
        except VerificationError:
            continue
    if not signers or any(windows.signs_checkpoint(k, size) for k in signers):
        return None
    return windows.outside(signers[0], size, what="checkpoint")


def _placed(windows: KeyWindows, at: Sequence[int]) -> KeyWindows:
    """The windows :func:`follow_windows` gave in file order, moved to the rotations' log
    indices: the rotation ``i`` of the file is at log entry ``at[i]``."""
    return KeyWindows([Window(w.key, 0 if w.first == 0 else at[w.first - 1] + 1,
                              None if w.last is None else at[w.last]) for w in windows.windows])


def _proven_index(entry: bytes, pos: Any, newest: Checkpoint) -> int:
    """The log index a rotation's position proves in the ``newest`` tree; ValueError saying
    why it proves nothing."""
    try:
        index, size, hashes = pos["log_index"], pos["tree_size"], pos["hashes"]
    except (KeyError, TypeError):
        raise ValueError("malformed position: not {log_index, tree_size, hashes}") from None
    if not isinstance(index, int) or isinstance(index, bool) or size != newest.size:
        raise ValueError(f"the position is not one in the newest checkpoint (size "
                         f"{newest.size})")
    if not isinstance(hashes, list) or len(hashes) > _MAX_PATH or \
            not all(isinstance(h, str) and len(h) <= 44 for h in hashes):
        raise ValueError("the inclusion proof is not a list of base64 hashes")
    try:
        path = [base64.b64decode(h, validate=True) for h in hashes]
    except binascii.Error:
        raise ValueError("the inclusion proof is not a list of base64 hashes") from None
    if not verify_inclusion(leaf_hash(entry), index, newest.size, path, newest.root):
        raise ValueError(f"the rotation entry is not at log entry {index} of the newest "
                         f"checkpoint (size {newest.size}): its claimed position is not proven")
    return index


Nodes = dict[tuple[int, int], bytes]  # a Merkle node's hash by its leaf range [a, b)


def rotation_position(entry: bytes, at: int, nodes: Nodes,
                      newest: Checkpoint) -> dict[str, Any] | None:
    """The ``positions`` item of the rotation ``entry`` proven at log index ``at``: its audit
    path in the ``newest`` tree made from the known ``nodes`` and checked; None when they do
    not make one that leads to the newest root."""
    if not 0 <= at < newest.size:
        return None
    path = [_node(nodes, a, b) for a, b in _path_ranges(at, newest.size)]
    hashes = [h for h in path if h is not None]
    if len(hashes) != len(path) or not verify_inclusion(leaf_hash(entry), at, newest.size,
                                                        hashes, newest.root):
        return None
    return {"log_index": at, "tree_size": newest.size,
            "hashes": [base64.b64encode(h).decode() for h in hashes]}


def known_nodes(proofs: Iterable[tuple[bytes, int, Sequence[bytes], Checkpoint]],
                consistency: Iterable[tuple[Checkpoint, Checkpoint, Sequence[bytes]]] = (),
                ) -> Nodes:
    """Every node the inclusion proofs ``(entry, leaf index, audit path, checkpoint)`` show,
    each proof's path and the nodes made on the way to its root, and every node the
    consistency proofs ``(old, new, hashes)`` show (a device's log interleaves segments with
    other entries -- receipts, events -- that only these reach) -- from proofs that verify
    only."""
    nodes: Nodes = {}
    for old, new, hashes in consistency:
        ranges = _consistency_ranges(old.size, 0, new.size, True)
        if 0 < old.size < new.size and len(ranges) == len(hashes) and verify_consistency(
                old.size, new.size, old.root, new.root, hashes):
            nodes.update(zip(ranges, hashes, strict=True))
            nodes[(0, old.size)], nodes[(0, new.size)] = old.root, new.root
    for entry, index, hashes, cp in proofs:
        ranges = _path_ranges(index, cp.size)
        if not 0 <= index < cp.size or len(ranges) != len(hashes):
            continue
        cur, (lo, hi) = leaf_hash(entry), (index, index + 1)
        found = {(lo, hi): cur}
        for (a, b), h in zip(ranges, hashes, strict=True):
            found[(a, b)] = h
            cur = node_hash(cur, h) if a == hi else node_hash(h, cur)
            lo, hi = min(lo, a), max(hi, b)
            found[(lo, hi)] = cur
        if cur == cp.root:
            nodes.update(found)
    return nodes


def _path_ranges(m: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges of the nodes on leaf ``m``'s audit path in a tree of ``size`` leaves,
    bottom first (RFC 9162 2.1.3.1: split at the largest power of two below the size)."""
    lo, hi, out = 0, size, []
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if m < lo + k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    return out[::-1]


def _consistency_ranges(m: int, lo: int, hi: int, complete: bool) -> list[tuple[int, int]]:
    """The leaf ranges of the nodes of a consistency proof from ``m`` leaves to the tree
    [lo, hi), in proof order (RFC 9162 2.1.4.1's SUBPROOF)."""
    if m == hi - lo:
        return [] if complete else [(lo, hi)]
    k = 1 << ((hi - lo - 1).bit_length() - 1)
    if m <= k:
        return [*_consistency_ranges(m, lo, lo + k, complete), (lo + k, hi)]
    return [*_consistency_ranges(m - k, lo + k, hi, False), (lo, lo + k)]


def _node(nodes: Nodes, a: int, b: int) -> bytes | None:
    """The hash of leaves [a, b): known, or made from its two known children (remembered)."""
    if (a, b) in nodes:
        return nodes[(a, b)]
    if b - a == 1:
        return None
    k = 1 << ((b - a - 1).bit_length() - 1)
    left = _node(nodes, a, a + k)
    right = None if left is None else _node(nodes, a + k, b)
    if left is None or right is None:
        return None
    nodes[(a, b)] = node_hash(left, right)
    return nodes[(a, b)]
