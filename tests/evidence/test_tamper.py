"""Tamper suite: every way of altering or removing evidence makes verify fail and say what."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.keys import DeviceKey
from agent.evidence.log import replay_entries
from agent.evidence.report import Report
from agent.evidence.verify import verify
from agent.evidence.verify_cli import verify_main

SEGMENTS = 4


@pytest.fixture
def evidence(data_dir: Path, agency: AgencyKey) -> Path:
    """A data dir with one boot event and a four-segment recording, sealed and closed."""
    store = open_store(data_dir, agency)
    store.log_event("boot", boot_id="b0" * 16)
    write_recording(store, segments=SEGMENTS, size=70_000)
    store.close()
    return data_dir


def pubkey(data_dir: Path) -> list[bytes]:
    return [DeviceKey.load(data_dir / "keys" / "device.key").public_bytes]


def check(data_dir: Path, agency: AgencyKey, **kw: object) -> Report:
    return verify(data_dir, identity=[agency.identity], pubkeys=pubkey(data_dir),
                  **kw)  # type: ignore[arg-type]


def files(data_dir: Path, pattern: str) -> list[Path]:
    return sorted((data_dir / "recordings").glob(f"*/{pattern}"))


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_evidence_verifies(evidence: Path, agency: AgencyKey) -> None:
    """The baseline: everything intact, plaintext checked with the agency identity."""
    report = check(evidence, agency)
    assert report.ok, report.render()
    assert report.codes() == set()
    assert sum(f.code == "plaintext" for f in report.findings) == SEGMENTS


def test_bit_flip_in_media(evidence: Path, agency: AgencyKey) -> None:
    """One flipped ciphertext bit: hash mismatch and failed decryption, file named."""
    media = files(evidence, "*_00001.mp4.age")[0]
    flip(media, 5000)
    report = check(evidence, agency)
    assert not report.ok
    assert {"media_altered", "decrypt_failed"} <= report.codes()
    assert any(media.name in f.message for f in report.failures)


def test_bit_flip_in_manifest(evidence: Path, agency: AgencyKey) -> None:
    """A flipped bit in a manifest breaks its signature and drops it out of the log."""
    manifest = files(evidence, "*_00002.manifest.json")[0]
    text = manifest.read_bytes()
    flip(manifest, text.index(b'"O-17"') + 1)  # officer O-17 becomes N-17
    report = check(evidence, agency)
    assert {"forged_signature", "segment_missing"} <= report.codes()
    assert any(f.where.endswith(manifest.name) for f in report.failures)


def test_truncated_media(evidence: Path, agency: AgencyKey) -> None:
    """Cutting bytes off a sealed segment is caught by the signed size and hash."""
    media = files(evidence, "*_00003.mp4.age")[0]
    with open(media, "r+b") as f:
        f.truncate(media.stat().st_size - 100)
    report = check(evidence, agency)
    assert "media_altered" in report.codes()
    assert any("truncated" in f.message and media.name in f.message for f in report.failures)


def test_deleted_segment(evidence: Path, agency: AgencyKey) -> None:
    """Removing a segment and its manifest leaves a log leaf without files and a seq gap."""
    for p in files(evidence, "*_00001.*"):
        p.unlink()
    report = check(evidence, agency)
    assert {"segment_missing", "sequence_gap"} <= report.codes()
    assert any("segment seq 1 " in f.message for f in report.failures)


def test_deleted_media_only(evidence: Path, agency: AgencyKey) -> None:
    """Media deleted without an eviction event is a failure naming the file."""
    media = files(evidence, "*_00000.mp4.age")[0]
    media.unlink()
    report = check(evidence, agency)
    assert "media_deleted" in report.codes()


def test_deleted_tail_caught_by_checkpoint(evidence: Path, agency: AgencyKey) -> None:
    """Last two segments and their log leaves removed: the signed checkpoint still counts them."""
    entries = evidence / "log" / "entries.bin"
    rep = replay_entries(entries.read_bytes())
    keep = sum(8 + len(r) for r in rep.records[:-2])
    with open(entries, "r+b") as f:
        f.truncate(keep)
    for p in [*files(evidence, "*_00002.*"), *files(evidence, "*_00003.*")]:
        p.unlink()
    report = check(evidence, agency)
    assert "log_truncated" in report.codes()
    assert any("were deleted" in f.message for f in report.failures)


def test_replayed_old_checkpoint(evidence: Path, agency: AgencyKey) -> None:
    """Putting back an older signed checkpoint (to hide later entries) is detected."""
    old = (evidence / "log" / "checkpoint").read_bytes()
    store = open_store(evidence, agency)
    write_recording(store, segments=3)
    store.close()
    (evidence / "log" / "checkpoint").write_bytes(old)
    report = check(evidence, agency)
    assert "checkpoint_stale" in report.codes()


def test_rollback_to_an_old_snapshot_caught_by_witnessed_checkpoint(
        evidence: Path, agency: AgencyKey, tmp_path: Path) -> None:
    """Whole data dir restored from an older copy: only the back office's checkpoint shows it."""
    snapshot = tmp_path / "snapshot"
    shutil.copytree(evidence, snapshot)
    store = open_store(evidence, agency)
    write_recording(store, segments=2)
    store.close()
    witnessed = (evidence / "log" / "checkpoint").read_bytes()
    assert check(snapshot, agency).ok  # self-consistent on its own…
    report = check(snapshot, agency, trusted_checkpoint=witnessed)
    assert "rollback" in report.codes()  # …but behind what the back office saw
    assert "consistency" in {f.code for f in check(evidence, agency, trusted_checkpoint=witnessed)
                             .findings if f.level == "ok"}


def test_fork_caught_by_witnessed_checkpoint(evidence: Path, agency: AgencyKey,
                                             tmp_path: Path) -> None:
    """Two diverging histories under the same key: the witnessed one proves the fork."""
    fork = tmp_path / "fork"
    shutil.copytree(evidence, fork)
    for d in (evidence, fork):
        store = open_store(d, agency)
        store.log_event("clock_step", delta_us=1 if d == fork else 2)
        store.close()
    report = check(fork, agency, trusted_checkpoint=(evidence / "log" / "checkpoint").read_bytes())
    assert "fork" in report.codes()


def test_reordered_segments(evidence: Path, agency: AgencyKey) -> None:
    """Swapping two segments' media files is caught on both."""
    a, b = files(evidence, "*_00001.mp4.age")[0], files(evidence, "*_00002.mp4.age")[0]
    tmp = a.with_suffix(".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    report = check(evidence, agency)
    altered = [f for f in report.failures if f.code == "media_altered"]
    assert {a.name, b.name} <= {f.message.split(":")[0] for f in altered}


def test_reordered_segment_pairs(evidence: Path, agency: AgencyKey) -> None:
    """Renaming whole segments (manifest + media) to swap their order is caught."""
    pairs = [files(evidence, f"*_0000{i}.*") for i in (1, 2)]
    for p in pairs[0]:
        p.rename(p.with_name(p.name + ".x"))
    for src, dst in zip(pairs[1], pairs[0], strict=True):
        src.rename(dst)
    for p in pairs[0]:
        p.with_name(p.name + ".x").rename(pairs[1][pairs[0].index(p)])
    report = check(evidence, agency)
    assert "renamed" in report.codes()


def test_segment_from_another_device(evidence: Path, agency: AgencyKey, tmp_path: Path) -> None:
    """A genuine segment of another device slipped into this folder is named as foreign."""
    other = tmp_path / "other"
    DeviceKey.generate(other / "keys" / "device.key")
    store = open_store(other, agency, device_id="BC-0002")
    write_recording(store, segments=1)
    store.close()
    target = files(evidence, "*_00000.manifest.json")[0].parent
    for p in (other / "recordings").glob("*/*"):
        shutil.copy(p, target / p.name)
    report = check(evidence, agency)
    assert "foreign_segment" in report.codes()
    assert any("BC-0002" in f.message for f in report.failures)


def test_forged_signature(evidence: Path, agency: AgencyKey, tmp_path: Path) -> None:
    """A manifest re-signed with another key (its own public key embedded) is refused."""
    from agent.evidence.manifest import parse_envelope, sign_manifest

    path = files(evidence, "*_00001.manifest.json")[0]
    signed = parse_envelope(path.read_bytes())
    forged = sign_manifest({**signed.manifest, "officer_id": "O-99"},
                           DeviceKey.generate(tmp_path / "attacker.key"))
    path.write_bytes(forged.envelope())
    report = check(evidence, agency)
    assert "forged_signature" in report.codes()
    assert any("not trusted" in f.message for f in report.failures)


def test_cli_exit_codes_json_and_gpx(evidence: Path, agency: AgencyKey, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`bodycam verify`: 0 when intact, 1 on failure, 2 on usage error; JSON and GPX outputs."""
    pem = evidence / "keys" / "device.pub"
    gpx = tmp_path / "track.gpx"
    args = [str(evidence), "--pubkey", str(pem), "--identity", str(agency.path)]
    assert verify_main([*args, "--gpx", str(gpx)]) == 0
    assert "INTACT" in capsys.readouterr().out
    assert gpx.read_text().count("<trkpt") == SEGMENTS * 2 and 'lat="39.9041000"' in gpx.read_text()
    flip(files(evidence, "*_00000.mp4.age")[0], 100)
    assert verify_main([*args, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["summary"]["failures"] >= 1
    assert verify_main(["--nonsense"]) == 2


def test_copied_off_folder_verifies_with_registered_key(evidence: Path, agency: AgencyKey,
                                                        tmp_path: Path) -> None:
    """Recordings + log copied elsewhere (no keys) verify against the registered public key."""
    export = tmp_path / "case-2026-117"
    for part in ("recordings", "log"):
        shutil.copytree(evidence / part, export / "device" / part)
    assert "no_keys" in verify(export).codes()
    report = verify(export, identity=[agency.identity], pubkeys=pubkey(evidence))
    assert report.ok, report.render()
    assert report.segments == SEGMENTS
