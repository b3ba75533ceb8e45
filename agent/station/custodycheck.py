"""``bodycam station check-log``: the station's custody log checked offline, with its witnesses.

``bodycam verify`` checks a *device's* data directory (origin ``bodycam/v1/<device>``, segment
entries); the station's custody log (:mod:`.stationlog`, origin
``bodycam-station/v1/<station>``) holds deletions, holds, releases and exports instead. This
check needs only a copy of ``<station data>/log/`` (or the data directory itself), the
station's receipt key (``station info``: ``receipt_key``) and the witnesses' verifier keys:

* the log replays (framing, checksums) to the root its checkpoint signs, under the station key;
* per witness key, the largest checkpoint it cosigned among ``log/witnessed/*.note`` (and any
  ``--checkpoint`` handed in) is the station's and the log still begins with exactly that tree
  — otherwise the witnessed custody history was rewritten (``witnessed_fork``) or cut
  (``witnessed_rollback``). The rule is :func:`agent.evidence.witnessed.check_witnessed`, the
  one ``bodycam verify --witness`` applies to a device.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.inventory import UnsafeFile, read_bounded
from agent.evidence.keys import DeviceKey, public_key_from_text
from agent.evidence.log import replay_entries
from agent.evidence.logcheck import MAX_CHECKPOINT, MAX_LOG, LogState
from agent.evidence.merkle import leaf_hash, root_of
from agent.evidence.report import Report
from agent.evidence.witnessed import Cosigned, check_witnessed
from agent.witness import VerifierKey
from agent.witness.refusals import CosignatureInvalid
from agent.witnessing import WITNESSED_DIR
from hw.errors import ConfigError, EvidenceError, LogCorrupt, VerificationError

from .stationlog import ORIGIN_PREFIX, STATION_LOG_DIR

__all__ = ["add_check_log_parser", "check_custody_log", "check_log_main"]

_MAX_KEY = 16 << 10


def check_custody_log(path: Path, station_keys: Sequence[bytes],
                      witnesses: Sequence[VerifierKey],
                      checkpoints: Sequence[Cosigned] = ()) -> Report:
    """Check the custody log in ``path`` (a station data dir or its ``log/``); the findings."""
    log_dir = path / STATION_LOG_DIR if (path / STATION_LOG_DIR).is_dir() else path
    report = Report(str(log_dir))
    if not (log_dir / "entries.bin").exists():
        report.add("fail", "no_log", str(log_dir), "no custody log here (entries.bin): not a "
                   "station data directory or its log/, or no custody act was logged yet")
        return report
    st = _replayed(log_dir, station_keys, report)
    if st is None or not witnesses:
        return report
    found = [*checkpoints]
    for note in sorted((log_dir / WITNESSED_DIR).glob("*.note")):
        try:
            found.append(Cosigned(f"{WITNESSED_DIR}/{note.name}", read_bounded(note, _MAX_KEY)))
        except UnsafeFile as exc:
            report.add("fail", "cosigned_unreadable", note.name, str(exc))
    origin = ORIGIN_PREFIX + (report.device_id or "")
    mine = []
    for item in found:
        try:
            other = parse_signed_checkpoint(item.text).checkpoint.origin
        except VerificationError as exc:
            report.add("fail", "cosigned_checkpoint_invalid", item.where, str(exc))
            continue
        if other != origin:
            report.add("fail", "cosigned_other_log", item.where,
                       f"cosigned checkpoint is of {other[:80]}, not this station's log")
            continue
        mine.append(item)
    check_witnessed(mine, witnesses, station_keys, st, report)
    return report


def _replayed(log_dir: Path, keys: Sequence[bytes], report: Report) -> LogState | None:
    """The log's leaves and how many its station-signed checkpoint covers; None if unusable."""
    try:
        records = replay_entries(read_bounded(log_dir / "entries.bin", MAX_LOG)).records
        scp = parse_signed_checkpoint(read_bounded(log_dir / "checkpoint", MAX_CHECKPOINT))
    except (UnsafeFile, LogCorrupt, VerificationError) as exc:
        report.add("fail", "log_unreadable", str(log_dir), str(exc))
        return None
    cp = scp.checkpoint
    st = LogState(leaves=[leaf_hash(r) for r in records])
    report.log_size, report.checkpoint_size = len(records), cp.size
    report.log_root = root_of(st.leaves).hex()
    if not cp.origin.startswith(ORIGIN_PREFIX):
        report.add("fail", "checkpoint_origin", "checkpoint",
                   f"origin {cp.origin[:80]!r} is not a station custody log "
                   f"({ORIGIN_PREFIX}<station>)")
        return None
    report.device_id = cp.origin[len(ORIGIN_PREFIX):]
    try:
        scp.verify(keys)
    except VerificationError as exc:
        report.add("fail", "checkpoint_signature", "checkpoint", f"{exc} (the station key)")
        return None
    if cp.size > len(st.leaves) or root_of(st.leaves[: cp.size]) != cp.root:
        report.add("fail", "log_altered", "entries.bin",
                   f"the first {cp.size} entries do not hash to the station-signed root")
        return None
    st.covered = cp.size
    report.add("ok", "log_root", "checkpoint",
               f"custody log of {len(st.leaves)} entries replays to the station-signed root "
               f"of {cp.size}")
    return st


def add_check_log_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``bodycam station check-log PATH [--station-key K] [--witness VKEY]… [--json]``."""
    sp = sub.add_parser("check-log", help="check the custody log offline, with its witnesses")
    sp.add_argument("path", type=Path, help="station data directory or a copy of its log/")
    sp.add_argument("--station-key", action="append", default=[], dest="station_keys",
                    help="the station's receipt key (base64 or PEM file; `station info`); "
                         "default: the key in PATH/keys/, self-trusted")
    sp.add_argument("--witness", action="append", default=[], dest="witnesses",
                    help="a witness's verifier key (name+keyid+base64, or a file holding it)")
    sp.add_argument("--checkpoint", action="append", default=[], type=Path,
                    help="a cosigned checkpoint received elsewhere (e.g. from the witness)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")


def check_log_main(args: argparse.Namespace) -> int:
    """Run the check; 0 intact, 1 not. Unreadable keys are a ConfigError (exit 2)."""
    try:
        keys = [public_key_from_text(_text(k)) for k in args.station_keys]
        vkeys = [VerifierKey.parse(_text(w)) for w in args.witnesses]
        extra = [Cosigned(str(p), read_bounded(p, _MAX_KEY)) for p in args.checkpoint]
    except (OSError, UnsafeFile, EvidenceError, CosignatureInvalid, ValueError) as exc:
        raise ConfigError(f"check-log: {exc}") from None
    self_trusted = not keys
    if self_trusted:
        own = args.path / "keys" / "station.key"
        if not own.is_file():
            raise ConfigError("check-log needs --station-key (the receipt key `station info` "
                              "prints) when PATH is not the station's data directory")
        keys = [DeviceKey.load(own).public_bytes]
    report = check_custody_log(args.path, keys, vkeys, extra)
    if self_trusted:
        report.add("warn", "self_trusted_keys", "keys/station.key",
                   "the station key taken from the folder itself; pass --station-key with the "
                   "published receipt key for an independent check")
    print(report.dumps() if args.json else _render(report), file=sys.stdout)
    return 0 if report.ok else 1


def _render(report: Report) -> str:
    """The verify report's lines, worded for a custody log (entries, not segments)."""
    lines = report.render().splitlines()
    if report.device_id:
        lines[1] = (f"  station {report.device_id}; custody log of {report.log_size} entries, "
                    f"signed checkpoint covers {report.checkpoint_size}")
    verdict = "INTACT" if report.ok else "NOT INTACT"
    lines[-1] = (f"{verdict}: {len(report.failures)} failures, {len(report.warnings)} warnings")
    return "\n".join(lines)


def _text(value: str) -> str:
    path = Path(value)
    return read_bounded(path, _MAX_KEY).decode().strip() if path.is_file() else value
