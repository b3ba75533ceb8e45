"""Placing a rotation entry in a bundle's newest checkpoint from what a station keeps: the
inclusion proofs segments were finalised with (each into the log as it was then), never the
whole log. Pure and instant; the bundle check itself is exercised end to end in
tests/desk/test_export_key_windows.py."""

from __future__ import annotations

import random

from agent.evidence.bundle_windows import known_nodes, rotation_position
from agent.evidence.checkpoint import Checkpoint
from agent.evidence.merkle import inclusion_proof, leaf_hash, root_of


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
