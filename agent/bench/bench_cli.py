"""``bodycam bench``: command line of the lab bench.

Exit codes: 0 the unit passed every measured check, 1 a check failed or the unit could not be
driven, 2 a usage or configuration error (bad spec, unknown fault).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hw.errors import BodycamError, ConfigError

from .progress import Progress
from .run import _REPO, FAULTS, BenchOptions, print_operator, run_bench
from .spec import load_spec

__all__ = ["bench_main"]

DEFAULT_SPECS = (_REPO / "config" / "spec" / "seed-art7.toml",
                 _REPO / "config" / "spec" / "gat947-reference.toml")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bodycam bench",
        description="Drive a recorder through scripted scenarios, measure its evidence and "
                    "judge it against spec files.")
    p.add_argument("--spec", type=Path, action="append", metavar="FILE",
                   help="spec TOML (repeatable); default: the shipped seed-art7 and gat947")
    p.add_argument("--hw", choices=("sim", "pi"), default="sim",
                   help="sim: the bench runs a simulated unit; pi: a unit running as a service")
    p.add_argument("--minutes", type=float, default=3.0,
                   help="length of the main recording (default 3)")
    p.add_argument("--report", type=Path, default=Path("bench-report"), metavar="DIR",
                   help="where report.html, report.json and summary.md go")
    p.add_argument("--config", type=Path, help="unit configuration (sim: the unit's base "
                                               "config; pi: tells the bench pre-roll/segment)")
    p.add_argument("--data-dir", type=Path,
                   help="sim: the bench's working dir (empty); pi: the unit's data dir "
                        "(default /var/lib/bodycam)")
    p.add_argument("--identity", type=Path,
                   help="agency age identity to read the media (pi; sim uses its own key)")
    p.add_argument("--c2pa-ca", type=Path, dest="c2pa_ca", metavar="PEM",
                   help="agency CA for the segments' C2PA credentials (sim: its test CA)")
    p.add_argument("--fault", action="append", default=[], choices=sorted(FAULTS),
                   help="inject a known fault into the simulated unit (repeatable)")
    p.add_argument("--no-rundown", action="store_true", help="skip the battery rundown")
    p.add_argument("--no-crash", action="store_true", help="skip the crash-recovery test")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def bench_main(argv: Sequence[str]) -> int:
    """Entry point of ``bodycam bench``."""
    args = _parser().parse_args(list(argv))
    if args.minutes <= 0:
        print("bodycam bench: --minutes must be positive", file=sys.stderr)
        return 2
    progress = Progress(quiet=args.quiet)
    try:
        specs = [load_spec(p) for p in (args.spec or DEFAULT_SPECS)]
        opts = BenchOptions(hw=args.hw, minutes=args.minutes, specs=specs, config=args.config,
                            data_dir=args.data_dir, report_dir=args.report, faults=args.fault,
                            identity=args.identity, c2pa_ca=args.c2pa_ca,
                            rundown=not args.no_rundown,
                            crash=not args.no_crash, operator=print_operator)
        doc = run_bench(opts, progress)
    except ConfigError as exc:
        progress.done()
        print(f"bodycam bench: {exc}", file=sys.stderr)
        return 2
    except BodycamError as exc:
        progress.done()
        print(f"bodycam bench: {exc}", file=sys.stderr)
        return 1
    progress.done()
    c = doc["counts"]
    print(f"{doc['result']}: {c['pass']} pass, {c['fail']} fail, {c['not measured']} not "
          f"measured — {args.report / 'report.html'}")
    for ch in doc["checks"]:
        if ch["outcome"] != "pass":
            print(f"  {ch['outcome']:12} {ch['id']:28} {ch['clause']}: {ch['value']} "
                  f"(needs {ch['op']} {ch['threshold']} {ch['unit']})")
    return 0 if doc["result"] == "PASS" else 1
