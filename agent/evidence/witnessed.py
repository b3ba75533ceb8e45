"""The witness half of ``bodycam verify``: which witnesses cosigned the device's log, and
whether the log in the folder still extends what they cosigned.

A device signs its own log, which proves nothing against the device itself: whoever holds its
key can rewrite the whole history and re-sign it. A witness (C2SP tlog-witness) cosigns a
checkpoint only if it is consistent with the last one it cosigned, so once a witness has
cosigned size N, a rewritten history cannot be consistent with that cosignature. Given the
witnesses' verifier keys (``--witness``), this module checks the cosigned notes the device
kept in ``log/witnessed/`` and any cosigned checkpoint handed in with ``--checkpoint``:

* the cosignature verifies with the witness key, and the note's checkpoint with a device key;
* the current log (the part its own signed checkpoint covers) begins with exactly the tree
  the witness cosigned — otherwise the witnessed history was rewritten (``witnessed_fork``)
  or rolled back (``witnessed_rollback``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.witness.cosignature import VerifierKey, verified_cosignatures
from agent.witness.refusals import CosignatureInvalid
from hw.errors import VerificationError

from .checkpoint import parse_signed_checkpoint
from .logcheck import LogState
from .merkle import root_of
from .report import Report
from .utc import iso_from_epoch_us

__all__ = ["Cosigned", "check_witnessed"]


@dataclass(frozen=True, slots=True)
class Cosigned:
    """A checkpoint text and where it came from (a kept note, or the command line)."""

    where: str
    text: bytes


def check_witnessed(found: Sequence[Cosigned], witnesses: Sequence[VerifierKey],
                    device_keys: Sequence[bytes], st: LogState, report: Report) -> None:
    """Report, per witness key, the largest tree it cosigned and whether the log extends it."""
    for vkey in witnesses:
        best: tuple[int, str] | None = None
        for item in found:
            size = _check_one(item, vkey, device_keys, st, report)
            if size is not None and (best is None or size > best[0]):
                best = (size, item.where)
        if best is None:
            report.add("warn", "not_witnessed", f"witness {vkey.name}",
                       "no checkpoint cosigned by this witness was found: the log's history "
                       "is not witnessed by it")
        else:
            report.add("ok", "witnessed", f"witness {vkey.name}",
                       f"cosigned the first {best[0]} entries ({best[1]}); the log extends them")


def _check_one(item: Cosigned, vkey: VerifierKey, device_keys: Sequence[bytes], st: LogState,
               report: Report) -> int | None:
    """The tree size ``vkey`` cosigned in ``item`` if the log extends it, else None."""
    try:
        cosigs = verified_cosignatures(item.text, [vkey])
    except CosignatureInvalid as exc:
        report.add("fail", "cosignature_invalid", item.where, str(exc))
        return None
    if vkey.name not in cosigs:
        return None
    try:
        scp = parse_signed_checkpoint(item.text)
        scp.verify(device_keys)
    except (VerificationError, ValueError) as exc:
        report.add("fail", "cosigned_checkpoint_invalid", item.where,
                   f"cosigned by {vkey.name}, but the device's signature on it fails: {exc}")
        return None
    cp, when = scp.checkpoint, _utc(cosigs[vkey.name].timestamp)
    if st.device_id is not None and cp.origin != f"bodycam/v1/{st.device_id}":
        report.add("fail", "cosigned_other_log", item.where,
                   f"cosigned checkpoint is of {cp.origin[:80]}, not this device's log")
        return None
    if cp.size > st.covered:
        report.add("fail", "witnessed_rollback", item.where,
                   f"witness {vkey.name} cosigned {cp.size} entries at {when}; the log's signed "
                   f"checkpoint covers only {st.covered}: the witnessed history was cut")
        return None
    if root_of(st.leaves[: cp.size]) != cp.root:
        report.add("fail", "witnessed_fork", item.where,
                   f"witness {vkey.name} cosigned a different history of the first {cp.size} "
                   f"entries at {when}: this log was rewritten after it was witnessed")
        return None
    return cp.size


def _utc(ts: int) -> str:
    try:
        return iso_from_epoch_us(ts * 1_000_000, 0)
    except (OverflowError, ValueError):
        return f"unix time {ts}"
