"""The log half of ``bodycam verify``: replay, signed checkpoint, witness, and the entries
that permit a segment to be missing.

Only entries covered by a checkpoint that verifies count as the device's word. An entry past
the checkpoint may be an honest crash between appending and re-signing (at most one), but it
is also exactly what someone without the device key can add, so it never excuses anything:
an eviction is legitimate only when it is covered, cites an earlier covered ``acknowledged``
entry for the same segment, and that entry carries a station receipt naming exactly that
segment (verified against the station keys when the verifier is given them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hw.errors import LogCorrupt, VerificationError

from .canonical import parse_canonical
from .checkpoint import SignedCheckpoint, parse_signed_checkpoint
from .inventory import Node, UnsafeFile, read_bounded
from .keys import fingerprint
from .log import origin_for, replay_entries
from .merkle import consistency_proof, leaf_hash, root_of, verify_consistency
from .receipt import parse_receipt
from .report import Report
from .rotation_trust import follow_rotations
from .shape import entry_problem

__all__ = ["MAX_CHECKPOINT", "MAX_LOG", "LogState", "check_log"]

MAX_LOG = 1 << 30        # 1 GiB: millions of entries; larger is not a log we wrote
MAX_CHECKPOINT = 16 << 10


@dataclass(slots=True)
class LogState:
    """What the log establishes, for the manifest and media checks."""

    leaves: list[bytes] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # {} for malformed entries
    covered: int = 0                  # entries covered by a verified checkpoint
    device_id: str | None = None
    evicted: set[int] = field(default_factory=set)  # device_seqs whose eviction is justified
    introduced: list[bytes] = field(default_factory=list)  # keys trusted through rotations

    def trusted(self) -> list[tuple[int, dict[str, Any]]]:
        """(index, entry) of the well-formed entries the device signed for."""
        return [(i, e) for i, e in enumerate(self.entries[: self.covered]) if e]


def check_log(log: Node | None, checkpoint: Node | None, keys: Sequence[bytes], report: Report,
              *, trusted_checkpoint: bytes | None, station_keys: Sequence[bytes]) -> LogState:
    """Replay and check the log; every problem becomes a finding in ``report``."""
    st = LogState()
    if log is None:
        report.add("fail", "no_log", "log/entries.bin", "no log at its defined place")
        return st
    try:
        rep = replay_entries(read_bounded(log.path, MAX_LOG))
    except (LogCorrupt, UnsafeFile) as exc:
        report.add("fail", "log_corrupt", log.rel, str(exc))
        return st
    if rep.torn:
        report.add("warn", "log_torn_tail", log.rel,
                   f"torn final record after byte {rep.valid_length} ignored (crash)")
    for i, data in enumerate(rep.records):
        st.leaves.append(leaf_hash(data))
        st.entries.append(_entry(data, i, report))
    report.log_size = len(st.leaves)
    report.log_root = root_of(st.leaves).hex()
    st.introduced = follow_rotations(st.entries, keys, report)
    keys = [*keys, *st.introduced]
    scp = _check_checkpoint(checkpoint, keys, st, report)
    if scp is not None and trusted_checkpoint is not None:
        _check_trusted(trusted_checkpoint, keys, scp, st, report)
    _check_acknowledgements(st, station_keys, report)
    return st


def _entry(data: bytes, i: int, report: Report) -> dict[str, Any]:
    try:
        entry = parse_canonical(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        report.add("fail", "log_entry_unreadable", f"log entry {i}", "not canonical JSON")
        return {}
    problem = entry_problem(entry)
    if problem is not None:
        report.add("fail", "log_entry_malformed", f"log entry {i}", problem)
        return {}
    return dict(entry)


def _signed(text: bytes, keys: Sequence[bytes], where: str,
            report: Report) -> SignedCheckpoint | None:
    try:
        scp = parse_signed_checkpoint(text)
        pub = scp.verify(keys)
    except VerificationError as exc:
        report.add("fail", "checkpoint_signature", where, str(exc))
        return None
    report.add("ok", "checkpoint_signature", where,
               f"signature verifies (key {fingerprint(pub)[:16]})")
    return scp


def _check_checkpoint(node: Node | None, keys: Sequence[bytes], st: LogState,
                      report: Report) -> SignedCheckpoint | None:
    if node is None:
        report.add("fail", "no_checkpoint", "log/checkpoint", "signed checkpoint missing")
        return None
    try:
        text = read_bounded(node.path, MAX_CHECKPOINT)
    except UnsafeFile as exc:
        report.add("fail", "checkpoint_signature", node.rel, str(exc))
        return None
    scp = _signed(text, keys, node.rel, report)
    if scp is None:
        return None
    cp, n = scp.checkpoint, len(st.leaves)
    report.checkpoint_size = cp.size
    device = cp.origin.rsplit("/", 1)[-1]
    try:
        valid_origin = origin_for(device) == cp.origin
    except ValueError:
        valid_origin = False
    if not valid_origin:
        report.add("fail", "checkpoint_origin", node.rel,
                   f"origin {cp.origin[:80]!r} is not a device log origin (bodycam/v1/<device>)")
        return None
    st.device_id = report.device_id = device
    if cp.size > n:
        report.add("fail", "log_truncated", node.rel,
                   f"checkpoint covers {cp.size} entries but the log holds {n}: "
                   f"entries {n}..{cp.size - 1} were deleted")
        return None
    if root_of(st.leaves[: cp.size]) != cp.root:
        report.add("fail", "log_altered", node.rel,
                   f"the first {cp.size} log entries do not hash to the signed root")
        return None
    st.covered = cp.size
    if n - cp.size > 1:
        report.add("fail", "checkpoint_stale", node.rel,
                   f"checkpoint covers {cp.size} of {n} entries: an old checkpoint was put "
                   "back, or entries were added without the device key")
    elif n - cp.size == 1:
        report.add("warn", "entry_unsigned", f"log entry {n - 1}",
                   "last entry not covered by a signed checkpoint (a crash during append, or "
                   "added without the device key): it is not relied on")
    else:
        report.add("ok", "log_root", node.rel, f"log of {n} entries replays to the signed root")
    return scp


def _check_trusted(text: bytes, keys: Sequence[bytes], scp: SignedCheckpoint, st: LogState,
                   report: Report) -> None:
    old = _signed(text, keys, "--checkpoint", report)
    if old is None:
        return
    t, size, root, n = old.checkpoint, scp.checkpoint.size, scp.checkpoint.root, len(st.leaves)
    if t.origin != scp.checkpoint.origin:
        report.add("fail", "checkpoint_other_log", "--checkpoint",
                   f"trusted checkpoint is for {t.origin[:80]}, not this device's log")
    elif t.size > min(n, size):
        report.add("fail", "rollback", "--checkpoint",
                   f"back office already witnessed {t.size} entries; this log holds {n} "
                   f"(signed checkpoint {size}): rolled back or replayed old state")
    elif not verify_consistency(t.size, size, t.root, root,
                                consistency_proof(st.leaves[:size], t.size)):
        report.add("fail", "fork", "--checkpoint",
                   f"log is not an extension of the witnessed checkpoint of size {t.size}")
    else:
        report.add("ok", "consistency", "--checkpoint",
                   f"log extends the witnessed checkpoint ({t.size} → {size} entries)")


def _check_acknowledgements(st: LogState, station_keys: Sequence[bytes], report: Report) -> None:
    """Receipts in ``acknowledged`` entries, and every eviction's justification."""
    segments: dict[int, dict[str, Any]] = {}
    acks: dict[int, dict[str, Any]] = {}
    unchecked = 0
    for i, e in st.trusted():
        if e.get("kind") == "segment":
            segments.setdefault(e["device_seq"], e)
        if e.get("type") != "acknowledged":
            continue
        problem = _receipt_problem(e, segments.get(e["device_seq"]), st.device_id, station_keys)
        if problem:
            report.add("fail", "receipt_invalid", f"log entry {i}", problem)
            continue
        unchecked += not station_keys
        acks[i] = e
    if unchecked:
        report.add("warn", "receipts_unchecked", "log",
                   f"{unchecked} receipts are well formed but were not checked against a "
                   "station key (pass --station-key)")
    for i, e in enumerate(st.entries):
        if e.get("type") != "eviction":
            continue
        where = f"log entry {i}"
        if i >= st.covered:
            report.add("fail", "eviction_unsigned", where,
                       "an eviction no signed checkpoint covers: it excuses nothing")
            continue
        ack = acks.get(e["ack_index"]) if e["ack_index"] < i else None
        if ack is None or any(ack[k] != e[k] for k in ("device_seq", "cipher_sha256",
                                                       "manifest_sha256", "receipt_sha256")):
            report.add("fail", "eviction_unjustified", where,
                       f"eviction of segment {e['device_seq']} does not cite a valid earlier "
                       "acknowledgement (receipt) for exactly that segment")
            continue
        st.evicted.add(e["device_seq"])


def _receipt_problem(entry: dict[str, Any], segment: dict[str, Any] | None,
                     device_id: str | None, station_keys: Sequence[bytes]) -> str | None:
    if segment is None:
        return f"acknowledges segment {entry['device_seq']}, which is not in the log before it"
    try:
        receipt = parse_receipt(entry["receipt"])
        if station_keys:
            receipt.verify(station_keys)
    except VerificationError as exc:
        return str(exc)
    if receipt.sha256 != entry["receipt_sha256"]:
        return "receipt_sha256 does not match the receipt it carries"
    mismatch = receipt.matches(device_id=device_id or "", device_seq=entry["device_seq"],
                               cipher_sha256=segment["cipher_sha256"],
                               manifest_sha256=segment["manifest_sha256"])
    if mismatch is None and (entry["cipher_sha256"] != segment["cipher_sha256"]
                             or entry["manifest_sha256"] != segment["manifest_sha256"]):
        mismatch = "acknowledged entry's hashes do not match the segment's log entry"
    return mismatch
