"""Placing a rotation entry in a bundle's newest checkpoint from what a station keeps: the
inclusion proofs segments were finalised with (each into the log as it was then), never the
whole log. Pure and instant; the bundle check itself is exercised end to end in
tests/desk/test_export_key_windows.py."""

from __future__ import annotations

import itertools
import random

from agent.evidence.bundle_windows import known_nodes, rotation_position
from agent.evidence.checkpoint import Checkpoint
from agent.evidence.merkle import consistency_proof, inclusion_proof, leaf_hash, root_of


def _log(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [f'{{"entry":{i},"r":{rng.random()}}}'.encode() for i in range(n)]


def _offloaded(entries: list[bytes], segments: list[int]) -> dict[tuple[int, int], bytes]:
    """The nodes the proofs of ``segments`` show, each proven into the log as it was right
    after it was appended (a device that offloads each segment as it is sealed)."""
    leaves = [leaf_hash(e) for e in entries]
    return known_nodes((entries[i], i, inclusion_proof(leaves[:i + 1], i),
                        Checkpoint("o", i + 1, root_of(leaves[:i + 1]))) for i in segments)


def test_a_rotation_between_offloaded_segments_is_placed_in_the_newest_tree() -> None:
    """For logs of 2..40 entries with the rotation anywhere, every other entry a segment
    offloaded as it was sealed, and the newest checkpoint the last segment's: the made path
    proves the rotation entry at its index in the newest tree."""
    for n in range(2, 41):
        entries = _log(n, n)
        newest = Checkpoint("o", n, root_of([leaf_hash(e) for e in entries]))
        for r in range(n - 1):
            doc = rotation_position(entries[r], r, _offloaded(
                entries, [i for i in range(n) if i != r]), newest)
            assert doc is not None and doc["log_index"] == r and doc["tree_size"] == n, (n, r)


def test_what_the_kept_proofs_cannot_place_is_not_guessed() -> None:
    """With no proof that reaches the entries around the rotation, or a claimed index the entry
    is not at, no position is made (the export writes null)."""
    entries = _log(16, 7)
    newest = Checkpoint("o", 16, root_of([leaf_hash(e) for e in entries]))
    assert rotation_position(entries[5], 5, _offloaded(entries, [15]), newest) is None
    everything = _offloaded(entries, [i for i in range(16) if i != 5])
    assert rotation_position(entries[5], 5, everything, newest) is not None
    assert rotation_position(entries[5], 6, everything, newest) is None
    assert rotation_position(entries[5], 16, everything, newest) is None


def test_entries_no_segment_proof_reaches_are_filled_in_by_consistency_proofs() -> None:
    """A device logs receipts and events between its segments, and none of the segments'
    proofs shows those leaves; the consistency proofs between successive finalise checkpoints
    (which the station keeps too) do, so the rotation is still placed -- and without them it
    is not."""
    entries = _log(11, 3)
    leaves = [leaf_hash(e) for e in entries]
    segments, r = [2, 5, 8], 3  # as a real device logs them: receipts and events between
    trees = [Checkpoint("o", i + 1, root_of(leaves[:i + 1])) for i in segments]
    newest = trees[-1]
    inclusions = [(entries[i], i, inclusion_proof(leaves[:i + 1], i), t)
                  for i, t in zip(segments, trees, strict=True)]
    chains = [(a, b, consistency_proof(leaves[:b.size], a.size))
              for a, b in itertools.pairwise(trees)]
    assert rotation_position(entries[r], r, known_nodes(inclusions), newest) is None
    doc = rotation_position(entries[r], r, known_nodes(inclusions, chains), newest)
    assert doc is not None and doc["log_index"] == r


def test_a_consistency_proofs_nodes_are_read_at_their_true_ranges() -> None:
    """Every hash of every consistency proof between trees of up to 33 entries is taken as the
    node it is (the root of exactly those leaves): a wrong range would make a wrong path."""
    leaves = [leaf_hash(e) for e in _log(33, 9)]
    for n in range(2, 34):
        new = Checkpoint("o", n, root_of(leaves[:n]))
        for m in range(1, n):
            old = Checkpoint("o", m, root_of(leaves[:m]))
            nodes = known_nodes([], [(old, new, consistency_proof(leaves[:n], m))])
            assert nodes and all(h == root_of(leaves[a:b]) for (a, b), h in nodes.items())
