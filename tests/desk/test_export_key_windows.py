"""A court bundle of a device that rotated its key mid-recording holds each key to its window of
the log: the exporter carries each rotation's proven place in the log (an inclusion proof into
the bundle's newest checkpoint) and ``bodycam verify BUNDLE`` applies verify's window rule, so
a manifest the retired key signs for a later segment fails. Real agent, real keys, a real
station process, bundles made by ``bodycam station export``; forgeries made as an attacker
would, re-hashing MANIFEST.sha256."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.evidence.bundle import HASH_LIST, MARKER, ROTATIONS, BundleReport, check_bundle
from agent.evidence.canonical import canonical_json
from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for
from agent.evidence.manifest import parse_envelope, sign_manifest
from agent.evidence.merkle import inclusion_proof, leaf_hash, root_of
from agent.evidence.receipt import issue_receipt, parse_receipt
from agent.testing import running_agent, small_config, wait_for
from tests.desk.conftest import DEVICE, LogAsItWas
from tests.station.conftest import enrol_direct
from tests.station.harness import SimRecorder, StationProcess, bodycam, make_pki, station_config


@dataclass
class Rotated:
    """Two exports of one recording whose key rotated mid-way: before and after the device
    proved where the rotation is in its log."""

    positioned: Path
    unpositioned: Path
    old: DeviceKey  # the enrolled key, retired by the rotation
    rotation_index: int
    device_log: Any  # the device's EvidenceLog (an attacker holding the device has it)


def _present(rec: SimRecorder, url: str, old: DeviceKey, new: DeviceKey, *,
             position: bool) -> int:
    """Finalise every segment and present the rotation, in log order, each against the log as
    it was then (with the rotation's proven position or without); the rotation's index."""
    r = -1
    with rec.client(url) as c:
        for index, data in list(rec.log.entries()):
            entry = json.loads(data)
            if entry.get("type") == "key_rotation":
                r = index
                c.present_rotation(DEVICE, data, **(
                    {"leaf_index": index, "log": LogAsItWas(rec.log, new, index + 1)}
                    if position else {}))
            elif entry.get("kind") == "segment":
                media = rec.root / entry["path"]
                manifest = media.with_name(media.name.removesuffix(".mp4.age") + ".manifest.json")
                c.finalise(DEVICE, c.upload_file(DEVICE, media), manifest=manifest.read_bytes(),
                           entry=data, leaf_index=index,
                           log=LogAsItWas(rec.log, old if r < 0 else new, index + 1))
    return r


def _export(station: StationProcess, rid: str, identity: Path, out: Path) -> Path:
    done = bodycam("station", "export", rid[:8], "--config", str(station.config), "--data-dir",
                   str(station.data_dir), "--identity", str(identity), "--out", str(out),
                   check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    return out


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rotated]:
    """Record, rotate the key after the first segment, record one more, stop; offload with the
    rotation presented without its position and export; then present the position and export
    again."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    root = tmp_path_factory.mktemp("rotated")
    data = root / "device"
    cfg = small_config(recording={"prerecord_s": 1, "segment_s": 2})
    with running_agent(cfg, data) as agent:
        agent.controller.call("start")
        wait_for(lambda: len(agent.recorder.sealed) >= 1, timeout=30, what="a segment")
        old = DeviceKey.load(data / "keys" / "device.key")
        agent.store.rotate_key()  # mid-recording: the later segments sign with the new key
        sealed = len(agent.recorder.sealed)
        wait_for(lambda: len(agent.recorder.sealed) >= sealed + 1, timeout=30,
                 what="a segment signed by the new key")
        agent.controller.call("stop")
        wait_for(lambda: agent.recorder.state == "standby", timeout=10, what="standby")
    new = DeviceKey.load(data / "keys" / "device.key")
    pki = make_pki(root / "pki", [DEVICE])
    station = StationProcess(station_config(root / "station.toml", pki, min_free_bytes=0),
                             root / "station").start()
    rec = SimRecorder(data, DEVICE, pki, key=new)
    rec.key = old  # enrolled with the key it had then
    enrol_direct(station.data_dir, rec)
    rec.key = new
    try:
        r = _present(rec, station.url, old, new, position=False)
        rid = next(json.loads(m.read_text())["manifest"]["recording_id"]
                   for m in (data / "recordings").rglob("*.manifest.json"))
        unpositioned = _export(station, rid, data / "sim-agency.key", root / "unpositioned")
        with rec.client(station.url) as c:
            size = rec.log.size
            c.present_rotation(DEVICE, rec.log.entry(r), leaf_index=r,
                               log=LogAsItWas(rec.log, new, size))
        positioned = _export(station, rid, data / "sim-agency.key", root / "positioned")
        yield Rotated(positioned, unpositioned, old, r, rec.log)
    finally:
        rec.close()
        assert station.stop() == 0, station.stderr()


def _rehash(root: Path) -> None:
    """What an attacker who rewrites a bundle does last: a fresh MANIFEST.sha256."""
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}"
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != HASH_LIST]
    (root / HASH_LIST).write_text("\n".join(lines) + "\n")


def _codes(report: BundleReport, level: str) -> set[str]:
    return {code for lv, code, _, _ in report.findings if lv == level}


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_the_honest_rotated_bundle_holds_each_key_to_its_window(rotated: Rotated) -> None:
    """The exporter proves the rotation's place in the newest checkpoint, and the bundle passes
    with the windows applied: segments before the rotation signed by the old key, after it by
    the new one, checked with only the enrolled key."""
    doc = _read(rotated.positioned / ROTATIONS)
    assert [p["log_index"] for p in doc["positions"]] == [rotated.rotation_index]
    report = check_bundle(rotated.positioned, pubkeys=[rotated.old.public_bytes])
    assert report.ok, report.render()
    assert "key_windows" in _codes(report, "ok"), report.render()
    assert "key_windows_unapplied" not in _codes(report, "warn")
    leaves = [_read(rotated.positioned / s["inclusion"])["leaf_index"]
              for s in _read(rotated.positioned / MARKER)["segments"]]
    assert min(leaves) < rotated.rotation_index < max(leaves)  # both sides of the rotation


def test_a_bundle_whose_rotations_lack_positions_warns(rotated: Rotated) -> None:
    """Exported before the device proved the rotation's place: the file says so (a null
    position), the bundle still passes, and a warning says the windows were not applied."""
    doc = _read(rotated.unpositioned / ROTATIONS)
    assert doc["positions"] == [None] and "null" in doc["positions_note"]
    report = check_bundle(rotated.unpositioned, pubkeys=[rotated.old.public_bytes])
    assert report.ok, report.render()
    assert "key_windows_unapplied" in _codes(report, "warn"), report.render()
    assert "key_windows" not in _codes(report, "ok")


def test_a_manifest_the_retired_key_signs_for_a_later_segment_fails(
        rotated: Rotated, tmp_path: Path) -> None:
    """Whoever holds the retired key re-signs a later segment's manifest with it, logs it in a
    fork of the device's log under a checkpoint the retired key signs, re-issues every receipt
    under a station key of their own and re-hashes the bundle: only the windows catch it --
    ``manifest_retired_key``, and ``checkpoint_retired_key`` for the retired key's checkpoint
    past its rotation."""
    work = tmp_path / "forged"
    shutil.copytree(rotated.positioned, work)
    marker = _read(work / MARKER)
    attacker = DeviceKey.generate(tmp_path / "attacker-station.key")
    (work / "keys" / "station.pub").write_bytes(attacker.public_pem)
    forged_at = forged_seq = None
    for seg in marker["segments"]:
        proof = _read(work / seg["inclusion"])
        signed = parse_envelope((work / seg["manifest"]).read_bytes())
        if forged_at is None and proof["leaf_index"] > rotated.rotation_index:
            forged_at = i = proof["leaf_index"]
            forged_seq = seg["seq"]
            signed = sign_manifest(signed.manifest, rotated.old)
            (work / seg["manifest"]).write_bytes(signed.envelope())
            entry = canonical_json({**json.loads(proof["entry"]),
                                    "manifest_sha256": signed.sha256})
            leaves = [leaf_hash(rotated.device_log.entry(j)) for j in range(i)] + [
                leaf_hash(entry)]
            note = sign_checkpoint(Checkpoint(origin_for(DEVICE), i + 1, root_of(leaves)),
                                   rotated.old)
            (work / seg["inclusion"]).write_text(json.dumps({
                **proof, "entry": entry.decode(), "tree_size": i + 1, "checkpoint": note.decode(),
                "hashes": [base64.b64encode(h).decode() for h in inclusion_proof(leaves, i)]}))
        held = _read(work / seg["receipt"])
        old = parse_receipt(held["receipt"])
        held["receipt"] = issue_receipt(
            attacker, station_id=old.station_id, device_id=old.device_id,
            device_seq=old.device_seq, cipher_sha256=old.cipher_sha256,
            manifest_sha256=signed.sha256, utc=old.body["utc"]).to_json()
        (work / seg["receipt"]).write_text(json.dumps(held))
    assert forged_at is not None
    _rehash(work)
    report = check_bundle(work, pubkeys=[rotated.old.public_bytes])
    assert _codes(report, "fail") == {"manifest_retired_key", "checkpoint_retired_key"}, \
        report.render()
    assert {f[2] for f in report.findings if f[0] == "fail"} == {f"segment {forged_seq}"}


def test_a_tampered_rotation_position_fails(rotated: Rotated, tmp_path: Path) -> None:
    """Moving the rotation later in the log (which would stretch the retired key's window over
    later segments) breaks its inclusion proof: ``rotation_position_invalid``, and no window is
    moved on it."""
    work = tmp_path / "moved"
    shutil.copytree(rotated.positioned, work)
    doc = _read(work / ROTATIONS)
    doc["positions"][0]["log_index"] += 2
    (work / ROTATIONS).write_text(json.dumps(doc))
    _rehash(work)
    report = check_bundle(work, pubkeys=[rotated.old.public_bytes])
    assert _codes(report, "fail") == {"rotation_position_invalid"}, report.render()
    assert "key_windows" not in _codes(report, "ok")
