"""``bodycam verify PATH [...]``: the command line of :mod:`agent.evidence.verify` -- the trust
a person brings (keys, identity, witnessed checkpoint, C2PA anchors), the report in text or
JSON, each recording's matter coverage, and the GPS track as GPX or GeoJSON.

Exit codes: 0 intact, 1 on any failure found, 2 on a usage error (unreadable key, bad
argument). A folder that is a court bundle (``bodycam station export``) is verified as one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.location.export import to_geojson, to_gpx
from agent.witness.cosignature import VerifierKey
from agent.witness.refusals import CosignatureInvalid
from hw.errors import EvidenceError, VerificationError

from .age import Identity
from .bundle import bundle_main, is_bundle
from .inventory import UnsafeFile, read_bounded
from .keys import public_key_from_text
from .verify import MAX_KEY, Trust, Verifier

__all__ = ["verify_main"]


def _read_keys(values: Sequence[str]) -> list[bytes]:
    """Keys given on the command line: a PEM/base64 file, or the base64 text itself."""
    out = []
    for v in values:
        p = Path(v)
        text = read_bounded(p, MAX_KEY).decode() if p.exists() else v
        out.append(public_key_from_text(text))
    return out


def _coverage(v: Verifier) -> list[Any]:
    """Per recording: the enforcement matter's checklist coverage and whether it is one
    continuous whole (the seed's "whole process" requirement), from the manifests that
    verified. Informational: integrity failures are the report's business, so a missing
    checklist item does not fail verify."""
    from agent.matters.coverage import recording_coverage

    out = []
    for ms in v.recordings().values():
        try:
            out.append(recording_coverage(ms))
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            print(f"bodycam verify: coverage of recording {ms[0]['recording_id'][:8]} not "
                  f"computed: {exc}", file=sys.stderr)
    out.sort(key=lambda c: (c.start_utc or "", c.recording_id))
    return out


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``bodycam verify PATH [...]``; exit 0 intact, 1 on any failure, 2 on usage error."""
    ap = argparse.ArgumentParser(prog="bodycam verify",
                                 description="offline verification of a data directory, a "
                                             "copied-off evidence folder or a court bundle")
    ap.add_argument("path", type=Path)
    ap.add_argument("--identity", type=Path, help="agency age identity file (checks plaintext)")
    ap.add_argument("--pubkey", action="append", default=[],
                    help="trusted device public key (PEM file or base64); repeatable")
    ap.add_argument("--checkpoint", type=Path, help="a checkpoint the back office witnessed")
    ap.add_argument("--station-key", action="append", default=[], dest="station_keys",
                    help="trusted collection-station key for receipts (PEM file or base64); "
                         "repeatable")
    ap.add_argument("--witness", action="append", default=[], dest="witnesses",
                    help="a witness's verifier key (name+keyid+base64, the C2SP signed-note form, "
                         "or a file holding it): report what it cosigned; repeatable")
    ap.add_argument("--c2pa-ca", type=Path, dest="c2pa_ca",
                    help="PEM trust anchors (the agency CA) for the segments' C2PA Content "
                         "Credentials; needs --identity")
    ap.add_argument("--json", action="store_true", help="machine-readable report")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--gpx", type=Path, help="write the recordings' GPS track as GPX")
    out.add_argument("--geojson", type=Path, help="write the recordings' GPS track as GeoJSON")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        ids = (Identity.from_file(read_bounded(args.identity, MAX_KEY).decode())
               if args.identity else None)
        keys = _read_keys(args.pubkey)
        station_keys = _read_keys(args.station_keys)
        trusted = read_bounded(args.checkpoint, MAX_KEY) if args.checkpoint else None
        anchors = read_bounded(args.c2pa_ca, 1 << 20) if args.c2pa_ca else None
        witnesses = [VerifierKey.parse(read_bounded(Path(w), MAX_KEY).decode()
                                       if Path(w).exists() else w) for w in args.witnesses]
    except (OSError, UnsafeFile, EvidenceError, ValueError, CosignatureInvalid) as exc:
        print(f"bodycam verify: {exc}", file=sys.stderr)
        return 2
    if is_bundle(args.path):  # a court bundle from `bodycam station export`
        return bundle_main(args.path, pubkeys=keys, station_keys=station_keys,
                           witnesses=witnesses, as_json=args.json)
    v = Verifier(args.path, Trust(ids or [], keys, trusted, station_keys, witnesses, anchors))
    report = v.run()
    recordings = _coverage(v)
    if args.json:
        doc = report.to_json()
        doc["recordings"] = [c.to_json() for c in recordings]
        print(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(report.render())
        from agent.matters.render import render_coverage

        for cov in recordings:
            print()
            print("\n".join(render_coverage(cov)))
    if args.gpx or args.geojson:
        segments = v.tracks()
        name = report.device_id or args.path.name
        try:
            text = (to_gpx(segments, name=name) if args.gpx
                    else to_geojson(segments, properties={"name": name}))
            (args.gpx or args.geojson).write_text(text)
        except (OSError, VerificationError) as exc:
            print(f"bodycam verify: cannot write the track: {exc}", file=sys.stderr)
            return 2
    return 0 if report.ok else 1
