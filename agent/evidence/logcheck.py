"""The log half of ``bodycam verify``: replay, signed checkpoint, witness, and the entries
that permit a segment to be missing.

Only entries covered by a checkpoint that verifies count as the device's word. An entry past
the checkpoint may be an honest crash between appending and re-signing (at most one), but it
is also exactly what someone without the device key can add, so it never excuses anything:
an eviction is legitimate only when it is covered, cites an earlier covered ``acknowledged``
entry for the same segment, and that entry carries a station receipt naming exactly that
segment (verified against the station keys when the verifier is given them).

The same holds for key rotations: only the rotations the verified checkpoint covers are
followed (:func:`~agent.evidence.rotation_trust.follow_windows`), and they give each key its
window of log positions (:mod:`~agent.evidence.key_windows`). The checkpoint's size is read
before its signature is trusted, so its signer is judged by the windows of the entries it
claims to cover; if it then fails (signature, origin, root), nothing it claims to cover is
relied on and no rotation is followed. The signed checkpoint and a ``--checkpoint`` must be
signed by a key valid at their size: a retired key signs no checkpoint over a log that goes
on past its rotation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hw.errors import LogCorrupt, VerificationError

from .canonical import parse_canonical
from .checkpoint import SignedCheckpoint, parse_signed_checkpoint
from .inventory import Node, UnsafeFile, read_bounded
from .key_windows import KeyWindows
from .keys import fingerprint
from .log import origin_for, replay_entries
from .merkle import consistency_proof, leaf_hash, root_of, verify_consistency
from .receipt import parse_receipt
from .report import Level, Report
from .rotation_trust import ROTATION_TYPE, follow_windows
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
    windows: KeyWindows = field(default_factory=KeyWindows)  # each key's span of the log

    def trusted(self) -> list[tuple[int, dict[str, Any]]]:
        """(index, entry) of the well-formed entries the device signed for."""
        return [(i, e) for i, e in enumerate(self.entries[: self.covered]) if e]


def check_log(log: Node | None, checkpoint: Node | None, keys: Sequence[bytes], report: Report,
              *, trusted_checkpoint: bytes | None, station_keys: Sequence[bytes]) -> LogState:
    """Replay and check the log; every problem becomes a finding in ``report``."""
    st = LogState(windows=KeyWindows.starting(keys))
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
    scp = _check_checkpoint(checkpoint, keys, st, report)
    start = set(keys)
    st.introduced = [k for k in st.windows.trusted() if k not in start]
    _report_uncovered_rotations(st, report)
    if scp is not None and trusted_checkpoint is not None:
        _check_trusted(trusted_checkpoint, scp, st, report)
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


class _Held:
    """Findings held back until the checkpoint that covers their entries is verified."""

    def __init__(self) -> None:
        self.findings: list[tuple[Level, str, str, str]] = []

    def add(self, level: Level, code: str, where: str, message: str) -> None:
        self.findings.append((level, code, where, message))


def _parse(text: bytes, where: str, report: Report) -> SignedCheckpoint | None:
    try:
        return parse_signed_checkpoint(text)
    except VerificationError as exc:
        report.add("fail", "checkpoint_signature", where, str(exc))
        return None


def _signed(scp: SignedCheckpoint, windows: KeyWindows, where: str, report: Report) -> bool:
    """The signature verifies under a trusted key, and that key is valid at the size."""
    try:
        pub = scp.verify(windows.trusted())
    except VerificationError as exc:
        report.add("fail", "checkpoint_signature", where, str(exc))
        return False
    outside = windows.outside(pub, scp.checkpoint.size, what="checkpoint")
    if outside is not None:
        report.add("fail", outside[0], where, outside[1])
        return False
    report.add("ok", "checkpoint_signature", where,
               f"signature verifies (key {fingerprint(pub)[:16]})")
    return True


def _check_checkpoint(node: Node | None, keys: Sequence[bytes], st: LogState,
                      report: Report) -> SignedCheckpoint | None:
    """The signed checkpoint, judged with the windows of the entries it claims to cover; on
    success ``st.covered`` and ``st.windows`` say what it covers and which keys sign where."""
    if node is None:
        report.add("fail", "no_checkpoint", "log/checkpoint", "signed checkpoint missing")
        return None
    try:
        text = read_bounded(node.path, MAX_CHECKPOINT)
    except UnsafeFile as exc:
        report.add("fail", "checkpoint_signature", node.rel, str(exc))
        return None
    scp = _parse(text, node.rel, report)
    if scp is None:
        return None
    held = _Held()
    windows = follow_windows(st.entries[: scp.checkpoint.size], keys, held)
    if not _signed(scp, windows, node.rel, report):
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
    st.covered, st.windows = cp.size, windows
    for finding in held.findings:
        report.add(*finding)
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


def _report_uncovered_rotations(st: LogState, report: Report) -> None:
    """A rotation entry no verified checkpoint covers introduces nothing: say so."""
    for i, e in enumerate(st.entries[st.covered:], st.covered):
        if e.get("type") == ROTATION_TYPE:
            report.add("warn", "key_rotation_unsigned", f"log entry {i}",
                       "a key rotation no verified checkpoint covers (a crash right after "
                       "announcing it, or added without the device key): not followed, it "
                       "introduces and retires no key")


def _check_trusted(text: bytes, scp: SignedCheckpoint, st: LogState, report: Report) -> None:
    old = _parse(text, "--checkpoint", report)
    if old is None:
        return
    t, size, root, n = old.checkpoint, scp.checkpoint.size, scp.checkpoint.root, len(st.leaves)
    if t.size <= min(n, size):
        if not _signed(old, st.windows, "--checkpoint", report):
            return
    else:  # past what the log covers: no window to judge by, and a rollback either way
        try:
            old.verify(st.windows.trusted())
        except VerificationError as exc:
            report.add("fail", "checkpoint_signature", "--checkpoint", str(exc))
            return
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
