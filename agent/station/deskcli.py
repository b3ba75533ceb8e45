"""``bodycam station list|export|hold|release|retention``: the evidence desk's commands.

Exit codes follow ``bodycam``'s: 0 success, 1 a runtime failure (a segment not verified, an
export whose bundle does not check out, nothing to release), 2 a usage error (argparse, or a
:class:`ConfigError` reported by :func:`agent.cli.main`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.evidence.age import Identity
from agent.evidence.inventory import UnsafeFile, read_bounded
from agent.evidence.utc import iso_utc, parse_utc
from agent.matters.catalogue import MatterCatalogue
from hw.errors import ConfigError, EvidenceError

from .custodywitness import CustodyWitnessing
from .desk import RecordingView, find_recording, recordings
from .exporter import ExportError, export_recording
from .joinedcredential import load_station_identity
from .retention import apply_retention, due_recordings
from .service import StationService, utc_now
from .stationlog import StationLog
from .witness_endpoint import load_witness_cosigner

__all__ = ["DESK_ACTIONS", "add_desk_commands", "credential_summary", "desk_main"]

DESK_ACTIONS = ("list", "export", "hold", "release", "retention")
_DEVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}")
_MATTER = re.compile(r"[A-Za-z][A-Za-z0-9]{1,11}")


def _utc_arg(text: str) -> datetime:
    try:
        return parse_utc(text, allow_date=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pattern(rx: re.Pattern[str], what: str) -> Any:
    def check(text: str) -> str:
        if not rx.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}")
        return text
    return check


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--config", type=Path, help="station TOML configuration")
    sp.add_argument("--data-dir", type=Path, help="station data directory")


def add_desk_commands(sub: Any) -> None:
    """Add the desk's options to ``list`` and its own subcommands to ``bodycam station``."""
    ls = sub.choices["list"]
    ls.add_argument("--device", type=_pattern(_DEVICE, "device id"))
    ls.add_argument("--officer", help="officer id as the manifests carry it")
    ls.add_argument("--matter", type=_pattern(_MATTER, "matter code"))
    ls.add_argument("--since", type=_utc_arg, help="recordings ending at or after (UTC)")
    ls.add_argument("--until", type=_utc_arg, help="recordings starting at or before (UTC)")
    ex = sub.add_parser("export", help="a court bundle of one recording")
    _common(ex)
    ex.add_argument("recording", help="recording id (or its first 8+ hex digits)")
    ex.add_argument("--identity", type=Path, required=True, help="agency age identity file")
    ex.add_argument("--out", type=Path, required=True, help="bundle folder (must not exist)")
    ex.add_argument("--by", help="who exports (default: the OS user)")
    for name, text in (("hold", "put a recording under legal hold"),
                       ("release", "lift a recording's legal hold")):
        sp = sub.add_parser(name, help=text)
        _common(sp)
        sp.add_argument("recording", help="recording id (or its first 8+ hex digits)")
        sp.add_argument("--reason", required=True, help="why (recorded in the index)")
        sp.add_argument("--by", help="who (default: the OS user)")
    rt = sub.add_parser("retention", help="recordings past retention and not held")
    _common(rt)
    rt.add_argument("--apply", action="store_true", help="delete them from the store")
    rt.add_argument("--catalogue", type=Path, help="matter catalogue (default: shipped)")
    rt.add_argument("--by", help="who (default: the OS user)")
    rt.add_argument("--now", type=_utc_arg, help=argparse.SUPPRESS)  # tests, drills
    rt.add_argument("--json", action="store_true", help="machine-readable output")


def _by(args: argparse.Namespace) -> str:
    by = args.by if args.by is not None else getpass.getuser()
    if not by.strip() or len(by) > 200 or not by.isprintable():
        raise ConfigError("--by must be a printable name of at most 200 characters")
    return by


def desk_main(svc: StationService, args: argparse.Namespace) -> int:
    """Run one desk action on an open station; what it logged goes to the witnesses."""
    appended: list[bytes] = []
    svc.custody_log.subscribe(appended.append)
    try:
        return _act(svc, args)
    finally:
        if appended and svc.cfg.witnesses:
            _witness(svc)


def _witness(svc: StationService) -> None:
    """Give the custody log's witnesses a bounded chance to cosign what this command logged.
    The act is done whatever they answer; a running ``station run`` (which then holds the
    submitter's lock) or the next start submits it otherwise."""
    w = svc.cfg.witnessing
    try:
        status = CustodyWitnessing(svc.cfg.witnesses, svc.data_dir, retry_s=w.retry_s,
                                   max_retry_s=w.max_retry_s, watch_s=w.watch_s).submit_once(
            max(x.timeout_s for x in svc.cfg.witnesses) + 1.0)
    except (ConfigError, EvidenceError, OSError) as exc:
        print(f"custody log: not submitted to the witnesses ({exc}); the station submits it "
              "when it runs", file=sys.stderr)
        return
    if status is None:
        print("custody log: the running station submits this act to the witnesses",
              file=sys.stderr)
        return
    for name, s in status.items():
        state = (f"cosigned {s['cosigned_size']} entries" if not s["failures"] else
                 f"not reached ({s['last_error']}); the station retries when it runs")
        print(f"custody log witness {name}: {state}", file=sys.stderr)


def _act(svc: StationService, args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(svc, args)
    if args.action == "retention":
        return _retention(svc, args)
    try:
        view = find_recording(svc.index, svc.store.root, args.recording)
    except LookupError as exc:
        print(f"bodycam station {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.action == "export":
        return _export(svc, view, args)
    return _hold(svc, view, args)


def _matches(v: RecordingView, args: argparse.Namespace) -> bool:
    if args.device and v.device_id != args.device:
        return False
    if args.officer and v.officer_id != args.officer:
        return False
    if args.matter and args.matter.upper() not in v.matter_codes:
        return False
    if args.since and (v.end_utc is None or parse_utc(v.end_utc) < args.since):
        return False
    return not (args.until and (v.start_utc is None or parse_utc(v.start_utc) > args.until))


def _list(svc: StationService, args: argparse.Namespace) -> int:
    views = [v for v in recordings(svc.index, svc.store.root, check=args.check)
             if _matches(v, args)]
    segs = [{"device_id": s.row.device_id, "device_seq": s.row.device_seq,
             "recording_id": s.row.recording_id, "seq": s.row.seq, "path": s.row.path,
             "cipher_bytes": s.row.cipher_bytes, "manifest_bytes": s.row.manifest_bytes,
             "cipher_sha256": s.row.cipher_sha256, "state": s.state,
             "receipt_utc": s.row.stored_utc, "c2pa": s.c2pa} for v in views for s in v.segments]
    fine = all(s["state"] in ("verified", "deleted") for s in segs)
    if args.json:
        print(json.dumps({"station_id": svc.station_id, "recordings": [v.to_json() for v in views],
                          "segments": segs}, indent=2, ensure_ascii=False))
        return 0 if fine else 1
    print(f"{'device':<16} {'recording':<9} {'officer':<10} {'matter':<8} {'start (UTC)':<20} "
          f"{'end (UTC)':<20} {'segs':>4} {'bytes':>11}  {'state':<18} {'c2pa':<12} checklist")
    for v in views:
        doc = v.to_json()
        cov = doc["coverage"] or {}
        missing = [m for mc in cov.get("matters", []) for m in mc.get("missing", [])]
        check = ("-" if not v.matter_codes else
                 "complete" if not missing else "missing " + ",".join(missing))
        state = v.state + (" HELD" if v.hold else "")
        print(f"{v.device_id[:16]:<16} {v.recording_id[:8]:<9} {(v.officer_id or '-')[:10]:<10} "
              f"{(','.join(v.matter_codes) or '-')[:8]:<8} {(v.start_utc or '?')[:19]:<20} "
              f"{(v.end_utc or '?')[:19]:<20} {len(v.segments):>4} {v.cipher_bytes:>11}  "
              f"{state:<18} {credential_summary(v):<12} {check}")
    print(f"{len(views)} recording(s), {len(segs)} segment(s); receipts: "
          f"{sum(1 for s in segs if s['state'] != 'deleted')} held")
    return 0 if fine else 1


def credential_summary(view: RecordingView) -> str:
    """The recording's Content Credentials in a word: ``valid`` (every segment's), ``absent``
    (none uploaded), ``valid k/n`` (some missing), ``INVALID k/n`` (any that failed its check
    -- what a clerk must see first)."""
    states = [str(s.c2pa.get("state", "absent")) for s in view.segments]
    n, valid, invalid = len(states), states.count("valid"), states.count("invalid")
    if invalid:
        return f"INVALID {invalid}/{n}"
    if valid == n and n:
        return "valid"
    return f"valid {valid}/{n}" if valid else "absent"


def _export(svc: StationService, view: RecordingView, args: argparse.Namespace) -> int:
    by = _by(args)
    try:
        ids = Identity.from_file(read_bounded(args.identity, 64 << 10).decode())
    except (OSError, UnsafeFile, EvidenceError, ValueError) as exc:
        raise ConfigError(f"cannot read the agency identity {args.identity}: {exc}") from None
    if args.out.exists() or args.out.is_symlink():
        raise ConfigError(f"--out {args.out} exists; a bundle is written to a new folder")
    if not args.out.parent.is_dir():
        raise ConfigError(f"--out: {args.out.parent} is not a folder")
    try:
        done = export_recording(view, index=svc.index, station_id=svc.station_id,
                                station_key=svc.key.public_bytes, identities=ids, out=args.out,
                                by=by, utc=utc_now(), station_log=_station_log(svc),
                                cosigner=load_witness_cosigner(svc.data_dir, svc.station_id),
                                c2pa_identity=load_station_identity(svc.data_dir))
    except (ExportError, EvidenceError, OSError, ValueError) as exc:
        print(f"bodycam station export: {exc}", file=sys.stderr)
        return 1
    print(f"bundle {done.path}: {done.files} files, SHA-256 of {done.path.name}/MANIFEST.sha256 "
          f"{done.bundle_sha256}")
    if not done.ok:
        print("bodycam station export: the bundle does NOT check out; see report.html",
              file=sys.stderr)
    return 0 if done.ok else 1


def _station_log(svc: StationService) -> StationLog:
    """The station's signed custody log (agent/station/stationlog.py)."""
    return svc.custody_log


def _hold(svc: StationService, view: RecordingView, args: argparse.Namespace) -> int:
    by, utc = _by(args), utc_now()
    reason = args.reason.strip()
    if not reason or len(reason) > 1000:
        raise ConfigError("--reason must say why, in at most 1000 characters")
    rid = view.recording_id
    if args.action == "hold":
        if not svc.index.hold(rid, reason, by, utc):
            print(f"recording {rid[:8]} is already held ({svc.index.holds()[rid][0]})")
            return 0
    elif not svc.index.release(rid):
        print(f"bodycam station release: recording {rid[:8]} is not held", file=sys.stderr)
        return 1
    try:
        _station_log(svc).append(args.action, {"recording_id": rid, "device_id": view.device_id,
                                               "reason": reason, "by": by, "utc": utc})
    except (EvidenceError, OSError) as exc:
        print(f"bodycam station {args.action}: the station log could not record it: {exc}",
              file=sys.stderr)
        return 1
    svc.index.event(utc, view.device_id, args.action,
                    json.dumps({"recording_id": rid, "reason": reason, "by": by}))
    print(f"recording {rid[:8]}: {'held' if args.action == 'hold' else 'released'} by {by}")
    return 0


def _retention(svc: StationService, args: argparse.Namespace) -> int:
    try:
        catalogue = MatterCatalogue.load(args.catalogue)
    except (OSError, EvidenceError, ValueError) as exc:
        raise ConfigError(f"matter catalogue: {exc}") from None
    now = args.now or datetime.now(UTC)
    verdicts = due_recordings(recordings(svc.index, svc.store.root), catalogue, now)
    by = _by(args) if args.apply else ""
    rows: list[dict[str, Any]] = []
    for d in verdicts:
        removed = None
        if d.due and args.apply:
            try:
                removed = apply_retention(svc.index, d, by=by, utc=utc_now(),
                                          station_log=_station_log(svc))
            except ValueError as exc:
                print(f"bodycam station retention: {exc}", file=sys.stderr)
        rows.append({"device_id": d.view.device_id, "recording_id": d.view.recording_id,
                     "days": d.days, "due": d.due, "why": d.why, "files_removed": removed})
    if args.json:
        print(json.dumps({"now": iso_utc(now, 0), "recordings": rows}, indent=2))
    else:
        for r in rows:
            verb = ("DELETED" if r["files_removed"] is not None else
                    "due" if r["due"] else "kept")
            print(f"{r['device_id']:<16} {r['recording_id'][:8]}  {verb:<8} {r['why']}")
        due = sum(1 for r in rows if r["due"])
        print(f"{due} recording(s) past retention and not held"
              + ("" if args.apply or not due else "; --apply deletes them"))
    return 0
