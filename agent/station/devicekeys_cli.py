"""``bodycam station keys <device> [--rotation FILE]``: a person's view of a device's keys.

Without ``--rotation``: the enrolled key and every successor the station took from the
device's endorsed rotations (docs/STATION-API.md §4b), each with the key that endorsed it and
whether the station follows it (a row whose endorsement no longer checks is listed, marked
``not followed``). With ``--rotation FILE``: present a ``key_rotation`` entry by hand -- its
exact bytes, e.g. copied off a device that cannot reach the station -- under the same checks
as the endpoint (:func:`.devicekeys.check_rotation`), logged in the custody log with who did
it. Replacing the enrolled key outright is not offered: only an endorsement adds a key.

Exit codes: 0 done, 1 the device is not enrolled or the entry was refused (the reason is
printed), 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from agent.evidence.keys import fingerprint

from .devicekeys import MAX_ROTATION_ENTRY_BYTES, check_rotation
from .refusal import Refused
from .rotation_endpoint import take_rotation
from .service import StationService

__all__ = ["add_keys_parser", "keys_main"]


def add_keys_parser(sub: Any) -> None:
    """Add ``keys`` to ``bodycam station``'s subcommands."""
    sp = sub.add_parser("keys", help="a device's evidence keys (enrolled and rotated to)")
    sp.add_argument("device", help="the device id")
    sp.add_argument("--rotation", type=Path,
                    help="present a key_rotation log entry (its exact bytes) from this file")
    sp.add_argument("--by", default=None, help="who presents it (default: the login name)")
    sp.add_argument("--config", type=Path, help="station TOML configuration")
    sp.add_argument("--data-dir", type=Path, help="station data directory")
    sp.add_argument("--json", action="store_true", help="machine-readable output")


def keys_main(svc: StationService, args: argparse.Namespace) -> int:
    """Run ``bodycam station keys``."""
    device = svc.index.device(args.device)
    if device is None:
        print(f"bodycam station keys: {args.device} is not enrolled here", file=sys.stderr)
        return 1
    if args.rotation is not None:
        data = args.rotation.read_bytes()[:MAX_ROTATION_ENTRY_BYTES + 2]
        data = data[:-1] if data.endswith(b"\n") else data  # a file saved with a newline
        try:
            successor = check_rotation(data, device.keys)
            added = take_rotation(svc, device.device_id, successor,
                                  via=f"station keys by {args.by or getpass.getuser()}")
        except Refused as exc:
            print(f"bodycam station keys: refused ({exc.code}): {exc.message}", file=sys.stderr)
            return 1
        print(f"{device.device_id}: key {successor.fingerprint[:16]}… "
              f"{'added' if added else 'already a key of the device'}")
        device = svc.index.device(args.device)
        assert device is not None
    followed = {fingerprint(k) for k in device.keys}
    doc: dict[str, Any] = {
        "device_id": device.device_id, "enrolled": fingerprint(device.public_key),
        "keys": [fingerprint(k) for k in device.keys],
        "rotations": [{"fingerprint": r.fingerprint, "endorsed_by": r.endorsed_by,
                       "utc": r.utc, "followed": r.fingerprint in followed}
                      for r in svc.index.device_key_rows(device.device_id)]}
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{device.device_id}: enrolled key {doc['enrolled']}")
    for r in doc["rotations"]:
        mark = "" if r["followed"] else "  (not followed: its endorsement does not check)"
        print(f"  key {r['fingerprint']} endorsed by {r['endorsed_by'][:16]}… at "
              f"{r['utc']}{mark}")
    return 0
