#!/usr/bin/env python3
"""Long mutation-fuzzing run of ``bodycam verify`` over a real recorded data directory.

    .venv/bin/python scripts/fuzz_verify.py --cases 5000 [--start 0] [--keep]

Each case mutates a copy of a freshly recorded directory (tests/evidence/verify_fuzz.py says
how) and checks that verify neither raises nor hangs and never calls tampered evidence
intact. A failing seed is printed; with ``--keep`` it is added to
tests/evidence/verify_corpus.json, which the default test run replays.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE / "tests" / "evidence")]

from evbench import AgencyKey, open_store, write_recording  # noqa: E402
from verify_fuzz import make_base, run_case  # noqa: E402

from agent.evidence.age import Identity, Recipient  # noqa: E402

CORPUS = HERE / "tests" / "evidence" / "verify_corpus.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="add failing seeds to the corpus")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run(["age-keygen", "-o", str(t / "agency.key")], check=True,
                       capture_output=True)
        ident = Identity.from_file((t / "agency.key").read_text())[0]
        agency = AgencyKey(t / "agency.key", ident, Recipient.parse(str(ident.recipient)))
        key = make_base(t / "base", partial(open_store, agency=agency), write_recording)
        failures, tampered, caught = [], 0, 0
        start = time.monotonic()
        for seed in range(args.start, args.start + args.cases):
            try:
                case, report = run_case(t / "base", t / "case", seed, key, [key.public_bytes])
            except AssertionError as exc:
                print(f"seed {seed}: {str(exc)[:400]}")
                failures.append(seed)
                continue
            tampered += case.tampered
            caught += case.tampered and not report.ok
        took = time.monotonic() - start
    print(f"{args.cases} cases in {took:.1f} s ({args.cases / took:.0f}/s): "
          f"{tampered} tampered, {caught} caught, {len(failures)} invariant failures")
    if failures and args.keep:
        doc = json.loads(CORPUS.read_text())
        known = {e["seed"] for e in doc["seeds"]}
        doc["seeds"] += [{"seed": s, "found": "invariant failure"} for s in failures
                         if s not in known]
        CORPUS.write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
