"""``bodycam proof``: inclusion and consistency proofs that check out, and that fail when the
log, the entry or the proof is not what it claims."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.keys import DeviceKey
from agent.evidence.proof import ProofError, check_proof, consistency, inclusion, proof_main


@pytest.fixture
def evidence(data_dir: Path, agency: AgencyKey) -> Path:
    store = open_store(data_dir, agency)
    store.log_event("boot", boot_id="b0" * 16)
    write_recording(store, segments=5, size=5_000)
    store.close()
    return data_dir


def manifest(data_dir: Path, seq: int) -> Path:
    return next((data_dir / "recordings").glob(f"*/*_{seq:05d}.manifest.json"))


def pub(data_dir: Path) -> bytes:
    return DeviceKey.load(data_dir / "keys" / "device.key").public_bytes


def test_inclusion_proof_for_each_way_of_naming_a_segment(evidence: Path) -> None:
    """Manifest file, media file, manifest SHA-256 and #index all give the same checked proof."""
    m = manifest(evidence, 3)
    by_file = inclusion(evidence, str(m))
    media = next(m.parent.glob("*_00003.mp4.age"))
    assert inclusion(evidence, str(media)) == by_file
    sha = json.loads(by_file["entry"])["manifest_sha256"]
    assert inclusion(evidence, sha) == by_file
    assert inclusion(evidence, f"#{by_file['leaf_index']}") == by_file
    assert by_file["leaf_index"] == 4 and by_file["tree_size"] == 6  # boot + 5 segments
    assert "is in the log" in check_proof(by_file, [pub(evidence)])


@pytest.mark.parametrize("damage", ["entry", "hash", "index", "size", "signature"])
def test_a_damaged_inclusion_proof_fails(evidence: Path, tmp_path: Path, damage: str) -> None:
    """Any change to a proof makes it fail: the entry, a hash, the index, or the checkpoint."""
    doc = inclusion(evidence, str(manifest(evidence, 1)))
    other = DeviceKey.generate(tmp_path / "other.key").public_bytes
    keys = [pub(evidence)]
    if damage == "entry":
        doc["entry"] = doc["entry"].replace('"seq":1', '"seq":7')
    elif damage == "hash":
        doc["hashes"][0] = doc["hashes"][1]
    elif damage == "index":
        doc["leaf_index"] += 1
    elif damage == "size":
        doc["tree_size"] += 1
    else:
        keys = [other]
    with pytest.raises(ProofError):
        check_proof(doc, keys)


def test_consistency_proof_and_a_fork(evidence: Path, agency: AgencyKey, tmp_path: Path) -> None:
    """The log extends its earlier checkpoint; a fork of the same device does not."""
    old = (evidence / "log" / "checkpoint").read_bytes()
    fork = tmp_path / "fork"
    shutil.copytree(evidence, fork)
    for d, n in ((evidence, 2), (fork, 1)):
        store = open_store(d, agency)
        write_recording(store, segments=n, size=1000)
        store.close()
    doc = consistency(evidence, old)
    assert "extends the one of 6" in check_proof(doc, [pub(evidence)])
    forked = consistency(fork, (fork / "log" / "checkpoint").read_bytes())
    assert check_proof(forked, [pub(evidence)])  # a log is consistent with itself
    cross = consistency(evidence, old)
    cross["checkpoint"] = (fork / "log" / "checkpoint").read_text()
    with pytest.raises(ProofError, match="forked or rewritten"):
        check_proof(cross, [pub(evidence)])
    with pytest.raises(ProofError, match="rolled back"):
        consistency(fork, (evidence / "log" / "checkpoint").read_bytes())


def test_cli_writes_and_checks_proofs(evidence: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The command line: make a proof, check it with the device key; a broken one exits 1."""
    out = tmp_path / "p.json"
    assert proof_main(["inclusion", str(manifest(evidence, 0)), "--data-dir", str(evidence),
                       "--out", str(out)]) == 0
    assert proof_main(["check", str(out), "--pubkey", str(evidence / "keys" / "device.pub")]) == 0
    assert "OK: entry #1" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    doc["leaf_index"] = 0
    out.write_text(json.dumps(doc))
    assert proof_main(["check", str(out)]) == 1
    assert proof_main(["inclusion", "#99", "--data-dir", str(evidence)]) == 1
    assert proof_main(["check", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "not covered by the signed checkpoint" in err and "Traceback" not in err
