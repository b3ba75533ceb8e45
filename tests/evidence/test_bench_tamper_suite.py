"""The lab bench's tamper suite (agent/bench/tamper.py) on a real sealed directory: every
case is detected and named, and the unit's own directory is left byte-for-byte as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

from evbench import AgencyKey, open_store, write_recording

from agent.bench.tamper import run_tamper_suite


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_every_tamper_case_is_detected_on_copies(data_dir: Path, agency: AgencyKey) -> None:
    store = open_store(data_dir, agency)
    write_recording(store, segments=2, size=30_000)
    old = (data_dir / "log" / "checkpoint").read_bytes()
    write_recording(store, segments=3, size=30_000)
    store.close()
    before = digest(data_dir)
    victim = next((data_dir / "recordings").glob("*/*_00001.manifest.json"))
    results = run_tamper_suite(data_dir, victim, identity=[agency.identity], old_checkpoint=old)
    assert len(results) >= 9
    missed = [r.to_json() for r in results if not r.detected]
    assert not missed, missed
    assert digest(data_dir) == before
