"""Where a presented key rotation sits in the device's log, proven -- so the station can end the
old key's span exactly there (:mod:`.keyspans`).

A rotation entry carries no position of its own. The device knows it (the log index it appended
the entry at) and proves it the way a finalise proves a segment's (docs/STATION-API.md §4): the
presentation may carry ``leaf_index``, the entry's ``inclusion`` proof into a signed
``checkpoint`` of its log, and a ``consistency`` proof between that checkpoint and the one the
station holds. The station accepts the position only when

1. the checkpoint names the device's origin and is signed by the new key (its span starts at
   ``leaf_index + 1``) or a key the device rotated to after it -- else 422 ``bad-checkpoint``.
   Not by the old key, though it may sign the checkpoint over its own rotation: the position
   ends the old key's span, so whoever holds the old key must not be able to prove one (it
   could log a copy of the entry further on and push the end of its span there). A device
   whose newest checkpoint is still the old key's (a crash right after the rotation) proves
   the position after its next append, which the new key signs;
2. ``SHA-256(0x00 ‖ entry)`` is at ``leaf_index`` of that tree -- else 422 ``not-in-log``;
3. the checkpoint is consistent with the held one (:func:`.ingest.check_consistency`: a stale
   view is 409 ``stale-log-state``, a fork 409 ``log-inconsistent``, an alarm).

A presentation without a position (an older device) is still taken; the old key's span then has
only the bound the held checkpoint gives. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.log import origin_for
from agent.evidence.merkle import leaf_hash, verify_inclusion
from hw.errors import VerificationError

from .devicekeys import Successor
from .enrolment import Enrolment
from .indexrows import CheckpointRow
from .ingest import LogProof, check_consistency, parse_log_proof
from .refusal import Refused

__all__ = ["Position", "check_position", "parse_position"]


#: A presented rotation's claimed log index and the proofs that back it: the shape a
#: finalise proves a segment entry's place with.
Position = LogProof


def parse_position(doc: dict[str, Any]) -> Position | None:
    """The position a presentation body carries (None without ``leaf_index``); 400 naming
    the first malformed part."""
    return parse_log_proof(doc) if "leaf_index" in doc else None


def _may_prove(successor: Successor, device: Enrolment) -> list[bytes]:
    """The new key and every key the device rotated to after it."""
    keys = list(device.keys)
    return keys[keys.index(successor.public_key):] if successor.public_key in keys else \
        [successor.public_key]


def check_position(pos: Position, entry: bytes, successor: Successor, device: Enrolment,
                   held: CheckpointRow | None) -> int:
    """The rotation's log index, once the module's three checks pass; a Refused otherwise."""
    try:
        cp = parse_signed_checkpoint(pos.checkpoint)
        if cp.checkpoint.origin != origin_for(device.device_id):
            raise VerificationError(f"the checkpoint's origin is not "
                                    f"{origin_for(device.device_id)}")
        cp.verify(_may_prove(successor, device))
    except VerificationError as exc:
        raise Refused(422, "bad-checkpoint", f"checkpoint: {exc} (a rotation's position is "
                      "proven under a checkpoint its new key, or a later one, signed)") from None
    if not verify_inclusion(leaf_hash(entry), pos.leaf_index, cp.checkpoint.size,
                            list(pos.inclusion), cp.checkpoint.root):
        raise Refused(422, "not-in-log", f"the rotation entry is not at index {pos.leaf_index} "
                      f"of the signed log (size {cp.checkpoint.size})")
    check_consistency(held, pos, cp)
    return pos.leaf_index
