"""Attacks on a recorded data directory that an earlier verifier missed: each one must fail
verify, name what was done, and never raise or hang."""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
import zlib
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.canonical import canonical_json
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import parse_envelope, sign_manifest
from agent.evidence.report import Report
from agent.evidence.verify import verify
from agent.evidence.verify_cli import verify_main

SEGMENTS = 3


@pytest.fixture
def evidence(data_dir: Path, agency: AgencyKey) -> Path:
    store = open_store(data_dir, agency)
    store.log_event("boot", boot_id="b0" * 16)
    write_recording(store, segments=SEGMENTS, size=40_000)
    store.close()
    return data_dir


def pubkey(data_dir: Path) -> list[bytes]:
    return [DeviceKey.load(data_dir / "keys" / "device.key").public_bytes]


def check(data_dir: Path, agency: AgencyKey, **kw: object) -> Report:
    return verify(data_dir, identity=[agency.identity], pubkeys=pubkey(data_dir),
                  **kw)  # type: ignore[arg-type]


def seg(data_dir: Path, seq: int, suffix: str) -> Path:
    return next((data_dir / "recordings").glob(f"*/*_{seq:05d}{suffix}"))


def append_unsigned(data_dir: Path, entry: dict[str, object]) -> None:
    """What anyone with write access can do: frame an entry exactly as the log does."""
    data = canonical_json(entry)
    with open(data_dir / "log" / "entries.bin", "ab") as f:
        f.write(struct.pack(">II", len(data), zlib.crc32(data)) + data)


def verify_with_deadline(path: Path, agency: AgencyKey, seconds: float = 30) -> Report:
    """Run verify in a thread: a hang is a failure of this test, not of the whole run."""
    out: list[Report] = []
    t = threading.Thread(target=lambda: out.append(check(path, agency)), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "verify hung"
    return out[0]


def test_deletion_dressed_up_as_an_unsigned_eviction(evidence: Path, agency: AgencyKey) -> None:
    """Deleting a segment and appending an unsigned eviction entry is a deletion, even with a
    trusted checkpoint from before."""
    trusted = (evidence / "log" / "checkpoint").read_bytes()
    media = seg(evidence, 1, ".mp4.age")
    m = parse_envelope(seg(evidence, 1, ".manifest.json").read_bytes())
    media.unlink()
    append_unsigned(evidence, {"kind": "event", "type": "eviction", "utc": "2026-11-27T11:00:00."
                               "000000Z", "device_seq": m.manifest["device_seq"],
                               "path": str(media.relative_to(evidence)),
                               "manifest_sha256": m.sha256, "ack_index": 0,
                               "receipt_sha256": "0" * 64,
                               "cipher_sha256": m.manifest["file"]["cipher_sha256"]})
    for report in (check(evidence, agency), check(evidence, agency, trusted_checkpoint=trusted)):
        assert not report.ok
        assert {"media_deleted", "eviction_unsigned"} <= report.codes(), report.render()


def test_old_style_eviction_without_receipt_fails(evidence: Path, agency: AgencyKey) -> None:
    """Even signed by the device, an eviction that cites no receipt excuses nothing."""
    m = parse_envelope(seg(evidence, 0, ".manifest.json").read_bytes())
    store = open_store(evidence, agency)
    store.log_event("eviction", device_seq=m.manifest["device_seq"], path="x",
                    manifest_sha256=m.sha256, cipher_sha256=m.manifest["file"]["cipher_sha256"],
                    ack_index=0, receipt_sha256="1" * 64)
    store.close()
    seg(evidence, 0, ".mp4.age").unlink()
    report = check(evidence, agency)
    assert {"eviction_unjustified", "media_deleted"} <= report.codes(), report.render()


def test_shadow_copy_does_not_hide_a_tampered_original(evidence: Path, agency: AgencyKey) -> None:
    """A flipped byte in a segment, the untouched folder copied beside it: the original is
    checked and fails; the copies are findings; no OK line names a copy."""
    media = seg(evidence, 1, ".mp4.age")
    original = media.parent
    shutil.copytree(original, original.parent / "zzzz_shadow")
    twin = original.parent / original.name.replace(original.name[:8], "20991231")
    shutil.copytree(original, twin)
    data = bytearray(media.read_bytes())
    data[3000] ^= 1
    media.write_bytes(bytes(data))
    report = check(evidence, agency)
    assert not report.ok
    assert {"media_altered", "unexpected_folder", "misplaced",
            "duplicate_manifest"} <= report.codes(), report.render()
    assert any(f.code == "media_altered" and f.where.startswith(
        f"recordings/{original.name}/") for f in report.failures)
    assert not any(("zzzz" in f.where or twin.name in f.where) for f in report.findings
                   if f.level == "ok")


def test_verifier_reads_only_the_log_at_its_place(evidence: Path, agency: AgencyKey) -> None:
    """An older signed log put in a_log/ (sorting first) is not read; the real one is."""
    shutil.copytree(evidence / "log", evidence / "a_log")
    store = open_store(evidence, agency)
    write_recording(store, segments=1)
    store.close()
    # Roll the real log back to the old one, keep the old beside it as bait.
    shutil.rmtree(evidence / "log")
    report = check(evidence, agency)
    assert {"no_log", "misplaced"} <= report.codes(), report.render()
    assert not report.ok


def test_stray_media_symlinks_and_fifos(evidence: Path, agency: AgencyKey) -> None:
    """Media without a manifest, media replaced by a symlink, a FIFO named as a manifest and a
    manifest outside its recording folder are all named; nothing hangs."""
    folder = seg(evidence, 0, ".mp4.age").parent
    (folder / "BC-0001_20261127T100000.000Z_deadbeef_00009.mp4.age").write_bytes(b"x" * 100)
    media = seg(evidence, 2, ".mp4.age")
    keep = evidence / "elsewhere.bin"
    shutil.move(media, keep)
    media.symlink_to(keep)
    os.mkfifo(folder / "BC-0001_20261127T100000.000Z_deadbeef_00010.manifest.json")
    shutil.copy(seg(evidence, 0, ".manifest.json"), evidence / "recordings" / "lost.manifest.json")
    report = verify_with_deadline(evidence, agency)
    assert {"stray_media", "symlink", "special_file", "misplaced",
            "media_deleted"} <= report.codes(), report.render()


def _craft(evidence: Path, name: str, body: bytes) -> Path:
    path = seg(evidence, 0, ".mp4.age").parent / name
    path.write_bytes(body)
    return path


@pytest.mark.parametrize("case", ["seq_not_int", "seq_missing", "nested", "huge", "not_utf8"])
def test_crafted_unsigned_manifests(evidence: Path, agency: AgencyKey, case: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Each crafted manifest is a named failure with exit code 1, never a traceback."""
    good = json.loads(seg(evidence, 0, ".manifest.json").read_bytes())
    name = "BC-0001_20261127T100000.000Z_deadbeef_00007.manifest.json"
    if case == "seq_not_int":
        good["manifest"]["seq"] = "x"
        _craft(evidence, name, json.dumps(good).encode())
    elif case == "seq_missing":
        del good["manifest"]["seq"]
        _craft(evidence, name, json.dumps(good).encode())
    elif case == "nested":
        _craft(evidence, name, b"[" * 200_000)
    elif case == "huge":
        with open(_craft(evidence, name, b""), "wb") as f:
            f.truncate(100 << 20)  # sparse: costs no disk, must cost no memory either
    else:
        _craft(evidence, name, b"\xff\xfe{}")
    assert verify_main([str(evidence), "--pubkey", str(evidence / "keys" / "device.pub")]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "FAIL" in out.out
    if case == "huge":
        assert "104857600 bytes, more than the 1048576" in out.out  # refused unread


def test_device_signed_manifest_with_a_traversal_name(evidence: Path, agency: AgencyKey,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest signed with the real device key but naming ../../etc/passwd is malformed."""
    key = DeviceKey.load(evidence / "keys" / "device.key")
    m = parse_envelope(seg(evidence, 0, ".manifest.json").read_bytes()).manifest
    m["file"]["name"] = "../../../../../etc/passwd"
    signed = sign_manifest(m, key)
    _craft(evidence, "BC-0001_20261127T100000.000Z_deadbeef_00008.manifest.json",
           signed.envelope())
    assert verify_main([str(evidence)]) == 1
    out = capsys.readouterr().out
    assert "manifest_malformed" not in out  # the human report speaks words, codes are in JSON
    report = check(evidence, agency)
    assert "manifest_malformed" in report.codes()


def test_malformed_log_entries_are_findings(evidence: Path, agency: AgencyKey) -> None:
    """Entries with wrong types (even if someone could sign them) are named, not crashed on."""
    append_unsigned(evidence, {"kind": "segment", "device_seq": "x", "path": "../x"})
    append_unsigned(evidence, {"kind": "event", "type": "eviction", "device_seq": [1]})
    report = check(evidence, agency)
    assert "log_entry_malformed" in report.codes()
    assert not report.ok


def test_untouched_folder_with_agent_state_is_intact(evidence: Path, agency: AgencyKey) -> None:
    """The agent's own working files (state/, ctl.sock, sim key) are not findings."""
    (evidence / "state").mkdir(exist_ok=True)
    (evidence / "state" / "outbox.sqlite").write_bytes(b"SQLite format 3\0")
    (evidence / "sim-agency.key").write_text("# sim\n")
    report = check(evidence, agency)
    assert report.ok, report.render()
    assert report.codes() == set(), report.render()
