"""The evidence desk's part of the station index: kept proofs, legal holds, deletions.

The desk (:mod:`agent.station.desk`, ``bodycam station desk``) answers for stored evidence
long after ingest: it keeps the inclusion proof each device gave for a segment and the
consistency proofs between its checkpoints (so a bundle can be exported without the device),
puts recordings under legal hold, and notes the segments whose files retention deleted. Those
records live in their own tables (``DESK_TABLES``) and follow their own rule -- the first
record wins and nothing is overwritten -- so their SQL is kept apart from ingest's rules in
:mod:`.index`, whose :class:`~.index.Index` includes this class and supplies the connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .indexrows import KeptConsistency, KeptInclusion

__all__ = ["DeskRecords"]


class DeskRecords:
    """The desk's records, over the SQL plumbing the index class supplies."""

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        raise NotImplementedError  # supplied by Index: run one statement, the rows it touched

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # supplied by Index: run one query, every row

    def keep_inclusion(self, p: KeptInclusion) -> None:
        """Keep the inclusion proof a device gave for a stored segment (first one wins)."""
        self._exec("INSERT INTO segment_proofs (device_id, device_seq, entry, leaf_index, "
                   "inclusion, checkpoint) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                   "(device_id, device_seq) DO NOTHING",
                   (p.device_id, p.device_seq, p.entry, p.leaf_index, json.dumps(p.hashes),
                    p.checkpoint))

    def kept_inclusion(self, device_id: str, device_seq: int) -> KeptInclusion | None:
        """The kept inclusion proof of a segment, or None (stored before proofs were kept)."""
        rows = self._rows("SELECT entry, leaf_index, inclusion, checkpoint FROM segment_proofs "
                          "WHERE device_id = ? AND device_seq = ?", (device_id, device_seq))
        if not rows:
            return None
        r = rows[0]
        return KeptInclusion(device_id, device_seq, r[0], int(r[1]), tuple(json.loads(r[2])),
                             r[3])

    def keep_consistency(self, p: KeptConsistency) -> None:
        """Keep a verified consistency proof between two signed checkpoints of a device."""
        self._exec("INSERT INTO consistency_proofs (device_id, old_size, old_root, new_size, "
                   "new_root, hashes, old_note, new_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (device_id, old_size, old_root, new_size, new_root) DO NOTHING",
                   (p.device_id, p.old_size, p.old_root, p.new_size, p.new_root,
                    json.dumps(p.hashes), p.old_note, p.new_note))

    def kept_consistency(self, device_id: str) -> list[KeptConsistency]:
        """Every kept consistency proof of a device, smallest trees first."""
        rows = self._rows("SELECT old_size, old_root, new_size, new_root, hashes, old_note, "
                          "new_note FROM consistency_proofs WHERE device_id = ? "
                          "ORDER BY old_size, new_size", (device_id,))
        return [KeptConsistency(device_id, int(r[0]), r[1], int(r[2]), r[3],
                                tuple(json.loads(r[4])), r[5], r[6]) for r in rows]

    def hold(self, recording_id: str, reason: str, by: str, utc: str) -> bool:
        """Put a recording under legal hold; False if it already is (the first hold stays)."""
        return self._exec("INSERT INTO holds (recording_id, reason, by_whom, utc) VALUES "
                          "(?, ?, ?, ?) ON CONFLICT (recording_id) DO NOTHING",
                          (recording_id, reason, by, utc)) == 1

    def release(self, recording_id: str) -> bool:
        """Lift a recording's legal hold; False if it was not held."""
        return self._exec("DELETE FROM holds WHERE recording_id = ?", (recording_id,)) == 1

    def holds(self) -> dict[str, tuple[str, str, str]]:
        """Held recordings: recording id → (reason, by, utc)."""
        return {r[0]: (r[1], r[2], r[3]) for r in
                self._rows("SELECT recording_id, reason, by_whom, utc FROM holds")}

    def record_deletion(self, device_id: str, device_seq: int, utc: str, reason: str,
                        by: str) -> bool:
        """Note that a segment's files were deleted at the end of retention (once)."""
        return self._exec("INSERT INTO deletions (device_id, device_seq, utc, reason, by_whom) "
                          "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id, device_seq) DO NOTHING",
                          (device_id, device_seq, utc, reason, by)) == 1

    def deleted(self, device_id: str, device_seq: int) -> bool:
        """Whether a segment's files were deleted at the end of retention."""
        return bool(self._rows("SELECT 1 FROM deletions WHERE device_id = ? AND device_seq = ?",
                               (device_id, device_seq)))

    def deletions(self) -> dict[tuple[str, int], tuple[str, str, str]]:
        """Deleted segments: (device, device_seq) → (utc, reason, by)."""
        return {(r[0], int(r[1])): (r[2], r[3], r[4]) for r in
                self._rows("SELECT device_id, device_seq, utc, reason, by_whom FROM deletions")}
