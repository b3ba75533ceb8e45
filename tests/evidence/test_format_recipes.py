"""docs/EVIDENCE-FORMAT.md's recipes, run as written against real evidence: an outside
verifier with stock tools (openssl, sha256sum, a bare python3) gets the same answers as ours,
and a tampered file makes the recipe fail."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from evbench import AgencyKey, need, open_store, write_recording

from agent.evidence.proof import inclusion

DOC = Path(__file__).resolve().parents[2] / "docs" / "EVIDENCE-FORMAT.md"


def recipe(name: str) -> str:
    blocks = re.findall(r"```(?:sh|python)\n# recipe: ([\w-]+)\n(.*?)```", DOC.read_text(),
                        re.DOTALL)
    found = {n: body for n, body in blocks}
    assert name in found, f"recipe {name} missing from {DOC.name}"
    return found[name]


@pytest.fixture
def evidence(data_dir: Path, agency: AgencyKey) -> Path:
    need("openssl")
    store = open_store(data_dir, agency)
    write_recording(store, segments=3, size=20_000)
    store.close()
    return data_dir


def run_sh(name: str, cwd: Path, **env: Path) -> subprocess.CompletedProcess[str]:
    # The bare system python3, not our venv: the recipe must not need our package.
    return subprocess.run(["bash", "-euo", "pipefail", "-c", recipe(name)], cwd=cwd,
                          env={**os.environ, "PATH": f"/usr/bin:/bin:{os.environ['PATH']}",
                               **{k: str(v) for k, v in env.items()}},
                          capture_output=True, text=True, timeout=60, check=False)


def test_manifest_signature_recipe(evidence: Path, tmp_path: Path) -> None:
    """openssl accepts the manifest signature; sha256sum gives the log's manifest hash and the
    manifest's ciphertext hash and size."""
    m = next((evidence / "recordings").glob("*/*_00001.manifest.json"))
    media = next(m.parent.glob("*_00001.mp4.age"))
    res = run_sh("manifest-signature", tmp_path, M=m, PUB=evidence / "keys" / "device.pub",
                 MEDIA=media)
    assert res.returncode == 0, res.stderr
    assert "Signature Verified Successfully" in res.stdout
    entry = inclusion(evidence, str(m))["entry"]
    sums = re.findall(r"^([0-9a-f]{64})\s", res.stdout, re.MULTILINE)
    assert sums[0] == json.loads(entry)["manifest_sha256"]
    claimed, size = res.stdout.split("\n")[2].split()
    assert sums[1] == claimed and res.stdout.split("\n")[4].strip() == size
    doc = json.loads(m.read_text())
    doc["manifest"]["officer_id"] = "X-1"
    m.write_text(json.dumps(doc))
    assert run_sh("manifest-signature", tmp_path, M=m, PUB=evidence / "keys" / "device.pub",
                  MEDIA=media).returncode != 0


def test_checkpoint_signature_recipe(evidence: Path, tmp_path: Path) -> None:
    """openssl accepts the checkpoint's signed-note signature, and refuses an edited size."""
    cp = evidence / "log" / "checkpoint"
    pub = evidence / "keys" / "device.pub"
    res = run_sh("checkpoint-signature", tmp_path, CP=cp, PUB=pub)
    assert res.returncode == 0 and "Signature Verified Successfully" in res.stdout, res.stderr
    lines = cp.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)
    cp.write_text("\n".join(lines))
    assert run_sh("checkpoint-signature", tmp_path, CP=cp, PUB=pub).returncode != 0


def test_inclusion_recipe_in_bare_python(evidence: Path, tmp_path: Path) -> None:
    """The documented RFC 9162 check, in a python3 without our package, accepts our proof and
    rejects one whose entry was altered."""
    proof = tmp_path / "proof.json"
    script = tmp_path / "check.py"
    script.write_text(recipe("inclusion"))
    doc = inclusion(evidence, "#1")
    proof.write_text(json.dumps(doc))
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    ok = subprocess.run([python, "-I", str(script), str(proof)], capture_output=True, text=True,
                        timeout=60, check=False)
    assert ok.returncode == 0 and "entry 1 is in the log of 3" in ok.stdout, ok.stderr
    doc["entry"] = doc["entry"].replace('"seq":1', '"seq":2')
    proof.write_text(json.dumps(doc))
    bad = subprocess.run([python, "-I", str(script), str(proof)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode != 0 and "NOT in the signed log" in bad.stderr
