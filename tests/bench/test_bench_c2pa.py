"""The bench's C2PA column: a simulated unit with ``[evidence] c2pa`` is run through the bench
and its report names each segment's Content Credential state as the reference library found
it; a damaged and a missing credential are reported ``invalid`` (with why) and ``absent``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SMALL

from agent.bench.bench_cli import DEFAULT_SPECS
from agent.bench.c2pa_column import segment_credential, trust_anchors
from agent.bench.progress import Progress
from agent.bench.run import BenchOptions, run_bench
from agent.bench.spec import load_spec
from agent.c2pa import credential_path
from agent.evidence.manifest import parse_envelope

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_bench_report_has_a_c2pa_column_per_segment(tmp_path: Path) -> None:
    """Every segment of the main recording is listed ``valid`` (full check: decrypted media
    against the unit's test CA) in report.json, summary.md and report.html; flipping one bit
    of a credential makes it ``invalid`` naming the library's code, removing one ``absent``."""
    cfg = tmp_path / "unit.toml"
    cfg.write_text(SMALL + "[evidence]\nc2pa = true\nc2pa_test_ca = true\n")
    report = tmp_path / "report"
    run_bench(BenchOptions(hw="sim", minutes=0.2, specs=[load_spec(p) for p in DEFAULT_SPECS],
                           config=cfg, report_dir=report, crash=False, rundown=False),
              Progress(quiet=True))
    doc = json.loads((report / "report.json").read_text())
    rows = doc["series"]["segments"]
    assert len(rows) >= 2, rows
    assert {r["c2pa"] for r in rows} == {"valid"}, rows
    assert all(r["c2pa_reason"] == "signature, certificate chain and hash binding verified"
               for r in rows)
    summary = (report / "summary.md").read_text()
    assert "| segment | file | C2PA |" in summary
    assert all(f"| {r['seq']} | {r['file']} | valid |" in summary for r in rows)
    html = (report / "report.html").read_text()
    assert "Content Credentials (C2PA) per segment" in html and rows[0]["file"] in html

    data = Path(doc["meta"]["data_dir"])
    medias = {p.name: p for p in (data / "recordings").rglob("*.age")}
    first, second = (medias[rows[0]["file"]], medias[rows[1]["file"]])
    anchors = trust_anchors(data, None)
    assert anchors
    cred = credential_path(first)
    damaged = bytearray(cred.read_bytes())
    damaged[-10] ^= 0x01
    cred.write_bytes(bytes(damaged))
    manifest = parse_envelope(first.with_name(first.name.replace(".mp4.age", ".manifest.json"))
                              .read_bytes()).manifest
    assert segment_credential(first, manifest, None, anchors) == ("invalid",
                                                                  "claimSignature.mismatch")
    credential_path(second).unlink()
    assert segment_credential(second, manifest, None, anchors)[0] == "absent"
