"""Keep the Merkle proofs a device hands over at finalise, so that an export proves every
segment long after the device (and its log) are gone.

The station never holds a device's whole log — only its segments and its newest checkpoint —
so it cannot compute an audit path later. What it can do is keep what it verified: each
segment's inclusion proof against the checkpoint it was finalised with, and each consistency
proof between the held checkpoint and a presented one. Together they chain every segment's
checkpoint to the newest one the station holds (:func:`consistency_chain`), which is what an
exported bundle carries (agent/station/bundle.py, checked by agent/evidence/bundle.py).

Only proofs that have been verified are kept (the callers in :mod:`.finalise` call these after
the checks pass); keeping one is idempotent and never changes a receipt.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Sequence

from agent.evidence.checkpoint import SignedCheckpoint

from .index import CheckpointRow, Index, KeptConsistency, KeptInclusion

__all__ = ["consistency_chain", "keep_consistency", "keep_inclusion"]


def _b64(hashes: Sequence[bytes]) -> tuple[str, ...]:
    return tuple(base64.b64encode(h).decode() for h in hashes)


def keep_inclusion(index: Index, device_id: str, device_seq: int, *, entry: bytes,
                   leaf_index: int, inclusion: Sequence[bytes], checkpoint: bytes) -> None:
    """Keep a stored segment's verified inclusion proof."""
    index.keep_inclusion(KeptInclusion(device_id, device_seq, entry.decode("utf-8"), leaf_index,
                                       _b64(inclusion), checkpoint.decode("utf-8")))


def keep_consistency(index: Index, device_id: str, held: CheckpointRow | None,
                     presented: SignedCheckpoint, hashes: Sequence[bytes]) -> None:
    """Keep a verified consistency proof between the held and the presented checkpoint (none
    to keep when the station held nothing yet or both are the same tree)."""
    if held is None or held.size == presented.checkpoint.size:
        return
    root = base64.b64encode(presented.checkpoint.root).decode()
    note = presented.text.decode("utf-8")
    if presented.checkpoint.size > held.size:
        row = KeptConsistency(device_id, held.size, held.root, presented.checkpoint.size, root,
                              _b64(hashes), held.note, note)
    else:
        row = KeptConsistency(device_id, presented.checkpoint.size, root, held.size, held.root,
                              _b64(hashes), note, held.note)
    index.keep_consistency(row)


def consistency_chain(proofs: Sequence[KeptConsistency], start: tuple[int, str],
                      goal: tuple[int, str]) -> list[KeptConsistency] | None:
    """The kept proofs leading from checkpoint ``start`` to ``goal`` ((size, base64 root)),
    shortest first found; ``[]`` if they are the same; None if the kept proofs do not connect
    them (a segment stored before proofs were kept)."""
    if start == goal:
        return []
    edges: dict[tuple[int, str], list[KeptConsistency]] = {}
    for p in proofs:
        edges.setdefault((p.old_size, p.old_root), []).append(p)
    came: dict[tuple[int, str], KeptConsistency | None] = {start: None}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        for p in edges.get(node, []):
            nxt = (p.new_size, p.new_root)
            if nxt in came:
                continue
            came[nxt] = p
            if nxt == goal:
                chain = []
                at: tuple[int, str] = goal
                while (step := came[at]) is not None:
                    chain.append(step)
                    at = (step.old_size, step.old_root)
                return chain[::-1]
            todo.append(nxt)
    return None
