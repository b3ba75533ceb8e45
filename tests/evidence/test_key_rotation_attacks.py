"""Whoever holds a retired device key cannot use it for evidence logged after its rotation.

A key is rotated because it may be compromised. Each test records with the product's own
store and real keys, rotates honestly, then plays the holder of the retired key with the same
product code (an ``EvidenceStore`` opened with that key, the rotation code run on a copy of
it) -- and hands the folder to ``bodycam verify`` with the key registered before the rotation.
The device then starts again and logs under its current key (a boot), as it would: so the
attack is the only thing wrong with the folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.key_rotation import rotate_and_log, rotation_entry
from agent.evidence.keys import DeviceKey, next_key_path
from agent.evidence.report import Report
from agent.evidence.store import EvidenceStore
from agent.evidence.verify import verify
from agent.evidence.verify_cli import verify_main

UTC = "2026-11-27T10:30:00.000000Z"


def _key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / "device.key"


def _store_with(data_dir: Path, agency: AgencyKey, key: DeviceKey) -> EvidenceStore:
    """The product's store on the device's folder, signing with ``key`` (not the device's)."""
    return EvidenceStore(data_dir, key=key, recipients=[agency.recipient], encrypt=True,
                         device_id="BC-0001")


def _rotated(data_dir: Path, agency: AgencyKey, tmp_path: Path) -> tuple[DeviceKey, Path]:
    """An honest device: a recording, a rotation, a recording; the retired key (kept by
    whoever copied it before the rotation) and where that copy is."""
    stolen = tmp_path / "stolen" / "device.key"
    stolen.parent.mkdir(mode=0o700)
    shutil.copy2(_key_path(data_dir), stolen)
    store = open_store(data_dir, agency)
    write_recording(store, segments=2)
    store.rotate_key()
    write_recording(store, segments=1)
    store.close()
    return DeviceKey.load(stolen), stolen


def _device_boots(data_dir: Path, agency: AgencyKey) -> None:
    """The device starts with its own (current) key and logs: its checkpoint covers all."""
    store = open_store(data_dir, agency)
    store.log_event("boot")
    store.close()


def _verify(data_dir: Path, registered: DeviceKey) -> Report:
    return verify(data_dir, pubkeys=[registered.public_bytes])


def _fails(report: Report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.failures:
        out.setdefault(f.code, []).append(f.where)
    return out


def test_the_honest_rotated_device_verifies_with_the_key_registered_before(
        data_dir: Path, agency: AgencyKey, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two rotations with recordings between: exit 0 with the first key alone, every segment
    accepted, both rotations followed."""
    first = DeviceKey.load(_key_path(data_dir))
    _rotated(data_dir, agency, tmp_path)
    store = open_store(data_dir, agency)
    store.rotate_key()
    write_recording(store, segments=1)
    store.close()
    report = _verify(data_dir, first)
    assert report.ok, report.failures
    assert report.segments == 4
    assert [f.code for f in report.findings].count("key_rotation") == 2
    capsys.readouterr()
    assert verify_main([str(data_dir), "--pubkey", first.public_b64]) == 0


def test_a_retired_key_cannot_sign_a_segment_logged_after_its_rotation(
        data_dir: Path, agency: AgencyKey, tmp_path: Path) -> None:
    """The holder of the retired key seals a segment into the device's log (manifest signed by
    the retired key); the device boots and signs over it. The checkpoint is the device's, so
    only the forged segment fails -- with its own code naming both keys."""
    old, _ = _rotated(data_dir, agency, tmp_path)
    current = DeviceKey.load(_key_path(data_dir))
    forger = _store_with(data_dir, agency, old)
    [forged] = write_recording(forger, segments=1)
    forger.close()
    _device_boots(data_dir, agency)

    report = _verify(data_dir, old)
    fails = _fails(report)
    assert list(fails) == ["manifest_retired_key"], report.failures
    [where] = fails["manifest_retired_key"]
    assert forged.manifest["recording_id"][:8] in where
    [words] = [f.message for f in report.failures]
    assert old.fingerprint_short in words and current.fingerprint_short in words
    assert report.segments == 3  # the honest ones


def test_a_retired_key_cannot_sign_a_checkpoint_over_a_later_log(
        data_dir: Path, agency: AgencyKey, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The holder of the retired key appends to the log and signs the checkpoint over it:
    the checkpoint fails (``checkpoint_retired_key``), so nothing under it is the device's."""
    old, _ = _rotated(data_dir, agency, tmp_path)
    forger = _store_with(data_dir, agency, old)
    forger.log_event("boot")
    forger.close()

    report = _verify(data_dir, old)
    assert "checkpoint_retired_key" in _fails(report)
    capsys.readouterr()
    assert verify_main([str(data_dir), "--pubkey", old.public_b64]) == 1


def test_a_retired_key_cannot_endorse_a_second_successor(
        data_dir: Path, agency: AgencyKey, tmp_path: Path) -> None:
    """K1 → K2 by the device; later K1 → K3 by whoever holds K1, who records with K3; the
    device boots and signs over it all. The fork fails (``key_rotation_fork``), K3 is trusted
    nowhere, and its segment is no evidence."""
    old, stolen = _rotated(data_dir, agency, tmp_path)
    forger = _store_with(data_dir, agency, old)
    rotate_and_log(forger.log, stolen, utc=UTC)
    forger.close()
    theirs = DeviceKey.load(stolen)
    forger = _store_with(data_dir, agency, theirs)
    write_recording(forger, segments=1)
    forger.close()
    _device_boots(data_dir, agency)

    report = _verify(data_dir, old)
    fails = _fails(report)
    assert "key_rotation_fork" in fails and "checkpoint_signature" not in fails
    assert "forged_signature" in fails  # K3's manifest: K3 is no key of this device
    assert report.segments == 3
    fork = next(f for f in report.failures if f.code == "key_rotation_fork")
    assert old.fingerprint_short in fork.message and theirs.fingerprint_short in fork.message


def test_a_rotation_no_checkpoint_covers_introduces_no_key(
        data_dir: Path, agency: AgencyKey) -> None:
    """A rotation appended past the checkpoint (here: announced, then the checkpoint put back
    as it was) and a segment signed by the key it names: the rotation is not followed, so that
    segment is no evidence, and the folder says why."""
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    store.close()
    checkpoint = data_dir / "log" / "checkpoint"
    before = checkpoint.read_bytes()
    store = open_store(data_dir, agency)
    new, rotation = DeviceKey.prepare_next(_key_path(data_dir))
    at = store.log.append(rotation_entry(rotation, utc=UTC), checkpoint=False).index
    store.log.close()
    next_key_path(_key_path(data_dir)).unlink()
    appended = _store_with(data_dir, agency, new)
    write_recording(appended, segments=1)
    appended.close()
    checkpoint.write_bytes(before)

    report = verify(data_dir, pubkeys=[DeviceKey.load(_key_path(data_dir)).public_bytes])
    assert ("warn", "key_rotation_unsigned", f"log entry {at}") in [
        (f.level, f.code, f.where) for f in report.findings]
    assert "forged_signature" in _fails(report)  # the segment signed by the unfollowed key
    assert report.segments == 1
