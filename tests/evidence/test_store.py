"""EvidenceStore: seal order, crash recovery at each step, retention guard."""

from __future__ import annotations

import ast
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, segment_info, write_recording

from agent.evidence.canonical import parse_canonical
from agent.evidence.manifest import GpsSummary, MediaInfo, Timestamp, parse_envelope
from agent.evidence.merkle import leaf_hash, verify_inclusion
from agent.evidence.store import RetentionViolation
from agent.evidence.verify import verify
from hw.errors import StorageWriteError
from hw.storage_sim import SimStorage
from tests.tools.receipts import make_station

REPO = Path(__file__).resolve().parents[2]


def test_layout_names_and_manifest_fields(data_dir: Path, agency: AgencyKey) -> None:
    """Files land where the layout says, names sort in time, manifests chain to the log."""
    store = open_store(data_dir, agency)
    boot = store.log_event("boot", boot_id="b0" * 16)
    signed = write_recording(store, segments=3)
    rec_dirs = list((data_dir / "recordings").iterdir())
    assert len(rec_dirs) == 1 and rec_dirs[0].name.startswith("20261127T100000Z_BC-0001_")
    names = sorted(p.name for p in rec_dirs[0].iterdir())
    assert names[0].startswith("BC-0001_20261127T100000.000Z_") and names[0].endswith(
        "_00000.manifest.json")
    assert [n for n in names if n.endswith(".mp4.age")] == sorted(
        n for n in names if n.endswith(".mp4.age"))
    m = signed[0].manifest
    assert m["prev_leaf"] == boot.leaf_hash.hex()
    assert m["device_seq"] == 0 and signed[2].manifest["device_seq"] == 2
    assert m["file"]["recipients"] == [str(agency.recipient)] and m["flags"] == []
    assert not list(rec_dirs[0].glob("*.open.json"))
    entries = dict(store.log.entries())
    assert parse_canonical(entries[1])["manifest_sha256"] == signed[0].sha256
    proof = store.log.inclusion_proof(1)
    assert verify_inclusion(leaf_hash(entries[1]), 1, store.log.size, proof, store.log.root)
    store.close()


def test_device_seq_continues_across_restarts(data_dir: Path, agency: AgencyKey) -> None:
    """The back office dedupes on device_seq: it never repeats after a restart."""
    store = open_store(data_dir, agency)
    write_recording(store, segments=2)
    store.close()
    store = open_store(data_dir, agency)
    assert write_recording(store, segments=1)[0].manifest["device_seq"] == 2
    store.close()


def test_crash_while_recording_is_recovered_as_truncated(data_dir: Path,
                                                          agency: AgencyKey) -> None:
    """Journal left behind mid-write → sealed at start-up as recovered+truncated, verifiable."""
    store = open_store(data_dir, agency)
    write_recording(store, segments=1, recording_id="ab" * 16)
    seg = store.open_segment(segment_info("ab" * 16, 1))
    data = os.urandom(200_000)
    seg.sink.write(data)
    seg.sink.sync()
    store.close()  # the process dies here: no seal
    store = open_store(data_dir, agency)
    [signed] = store.recover()
    m = signed.manifest
    assert m["flags"] == ["recovered", "truncated"]
    assert m["file"]["plain_sha256"] is None  # the device cannot decrypt to learn it
    kinds = [parse_canonical(e).get("type") for _, e in store.log.entries()]
    assert "recovered_segment" in kinds
    plain = subprocess.run(["age", "-d", "-i", str(agency.path)],
                           input=seg.media_path.read_bytes(), capture_output=True,
                           timeout=60, check=False).stdout
    assert plain == data[: 3 * 65536]
    assert store.recover() == []
    store.close()
    report = verify(data_dir, identity=[agency.identity])
    assert report.ok, report.render()
    assert {"recovered", "truncated"} <= report.codes()


def test_crash_after_close_recovers_complete_segment(data_dir: Path, agency: AgencyKey) -> None:
    """Media closed but not yet signed: recovery keeps the full segment and its hashes."""
    store = open_store(data_dir, agency)
    seg = store.open_segment(segment_info(uuid.uuid4().hex, 0))
    seg.sink.write(os.urandom(100_000))
    result = seg.sink.close()
    # What seal() persists before signing; then the process dies.
    seg.journal.manifest = store._manifest(
        seg.journal, result, end=Timestamp("2026-11-27T10:00:10.000000Z", 10), media=MediaInfo(),
        gps=GpsSummary(), bookmarks=(), matter=None, flags=(), clock=None)
    seg.journal.write()
    store.close()
    store = open_store(data_dir, agency)
    [signed] = store.recover()
    assert signed.manifest["flags"] == ["recovered"]
    assert signed.manifest["file"]["plain_sha256"] == result.plain_sha256
    store.close()
    assert verify(data_dir, identity=[agency.identity]).ok


def test_crash_after_log_append_only_drops_journal(data_dir: Path, agency: AgencyKey) -> None:
    """Manifest and leaf durable, journal not yet removed: recovery must not seal twice."""
    store = open_store(data_dir, agency)
    [signed] = write_recording(store, segments=1)
    journal_path = next((data_dir / "recordings").glob("*/*.manifest.json"))
    stale = journal_path.with_name(journal_path.name.replace(".manifest.json", ".open.json"))
    seg_info = segment_info(signed.manifest["recording_id"], 0)
    from agent.evidence.journal import Journal

    Journal(stale, journal_path.with_name(signed.manifest["file"]["name"]), 0, True, seg_info,
            None).write()
    size = store.log.size
    store.close()
    store = open_store(data_dir, agency)
    assert store.recover() == []
    assert store.log.size == size and not stale.exists()
    store.close()


def test_storage_fault_leaves_journal_for_recovery(tmp_path: Path, agency: AgencyKey) -> None:
    """EIO mid-segment: seal refuses, the journal stays, recovery seals after the disk heals."""
    from agent.evidence.keys import DeviceKey

    data_dir = tmp_path / "data"
    DeviceKey.generate(data_dir / "keys" / "device.key")
    disk = SimStorage(data_dir, 50 << 20)
    store = open_store(data_dir, agency, open_append=disk.open_append)
    seg = store.open_segment(segment_info(uuid.uuid4().hex, 0))
    seg.sink.write(os.urandom(100_000))
    disk.fail_writes(5)
    with pytest.raises(StorageWriteError):
        seg.sink.write(os.urandom(100_000))
    with pytest.raises(StorageWriteError):
        store.seal(seg, end=Timestamp("2026-11-27T10:00:10.000000Z", 1), media=MediaInfo())
    assert seg.journal.path.exists()
    assert store.recover() == []  # still open in this process: not touched
    store.abandon(seg)
    disk.fail_writes(None)
    [signed] = store.recover()
    assert "truncated" in signed.manifest["flags"]
    store.close()
    assert verify(data_dir).ok


def test_evict_requires_acknowledgement_and_is_logged(data_dir: Path, agency: AgencyKey,
                                                      tmp_path: Path) -> None:
    """Unacknowledged media cannot be deleted; receipted media can, and it is logged."""
    station = make_station(tmp_path / "station")
    store = open_store(data_dir, agency, station_keys=[station.public])
    signed = write_recording(store, segments=2)
    media = next((data_dir / "recordings").glob("*/*_00000.mp4.age"))
    with pytest.raises(RetentionViolation, match="not acknowledged"):
        store.evict(media)
    assert media.exists()
    store.accept_receipt(station.receipt(signed[0]), origin={"via": "ctl", "uid": 0})
    store.close()
    store = open_store(data_dir, agency)  # the registry (the log) survives a restart
    assert store.acknowledged(0) and not store.acknowledged(1)
    freed = store.evict(media)
    assert freed > 0 and not media.exists()
    last = parse_canonical(list(store.log.entries())[-1][1])
    assert last["type"] == "eviction" and last["device_seq"] == 0
    store.close()
    report = verify(data_dir)
    assert report.ok, report.render()
    assert "evicted" in report.codes()


def test_no_other_code_path_deletes_media() -> None:
    """Only EvidenceStore.evict deletes media: any other function that both deletes files and
    handles segment/recording paths fails this test (journal removal is the one allowed)."""
    deleters = {"unlink", "remove", "rmtree", "rmdir", "removedirs", "truncate"}
    allowed = {("agent/evidence/store.py", "evict"),
               ("agent/evidence/segment_writer.py", "_drop_journal"),
               ("agent/evidence/sink.py", "recover_ciphertext"),
               # the bench's tamper suite deletes only inside its temporary hard-link copy
               ("agent/bench/tamper.py", "_delete"), ("agent/bench/tamper.py", "_discard"),
               # bodycam decrypt removes only its own unfinished output (<out>.partial)
               ("agent/evidence/decrypt.py", "_output"),
               # the station's one deletion of stored evidence: past its matter's retention,
               # never under a legal hold, recorded in the index before the files go
               ("agent/station/retention.py", "apply_retention"),
               # a failed export removes the bundle folder it made itself, nothing stored
               ("agent/station/exporter.py", "export_recording")}
    media_words = ("recordings", ".mp4", "segment", "media")
    offenders = []
    for path in sorted([*REPO.glob("agent/**/*.py"), *REPO.glob("hw/**/*.py")]):
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
                     for n in ast.walk(fn) if isinstance(n, ast.Call)}
            if not calls & deleters or (rel, fn.name) in allowed:
                continue
            source = "\n".join(lines[fn.lineno - 1 : fn.end_lineno]).lower()
            if any(w in source for w in media_words):
                offenders.append(f"{rel}:{fn.lineno} {fn.name}")
    assert offenders == [], "functions that may delete media outside EvidenceStore.evict"


def test_open_refuses_to_overwrite_a_segment(data_dir: Path, agency: AgencyKey) -> None:
    """Opening the same recording/seq twice never truncates existing evidence."""
    store = open_store(data_dir, agency)
    [signed] = write_recording(store, segments=1)
    from hw.errors import EvidenceError

    with pytest.raises(EvidenceError, match="already exists"):
        store.open_segment(segment_info(signed.manifest["recording_id"], 0))
    env = next((data_dir / "recordings").glob("*/*.manifest.json"))
    assert parse_envelope(env.read_bytes()).sha256 == signed.sha256
    store.close()


def test_key_rotation_is_logged_and_old_segments_still_verify(data_dir: Path,
                                                               agency: AgencyKey) -> None:
    """After a rotation, segments of both keys verify; the rotation is a log event."""
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    old = store._key.public_bytes
    new = store.rotate_key()
    write_recording(store, segments=1)
    event = [parse_canonical(e) for _, e in store.log.entries()][1]
    assert event["type"] == "key_rotation" and event["new_key"] == new.public_b64
    store.close()
    assert verify(data_dir).ok  # current + retired keys from the folder
    assert verify(data_dir, pubkeys=[old, new.public_bytes]).ok
    only_new = verify(data_dir, pubkeys=[new.public_bytes])
    assert "forged_signature" in only_new.codes()  # the old segment needs the retired key


def test_keys_cli_rotation_logs_event(data_dir: Path, agency: AgencyKey) -> None:
    """`bodycam keys init --rotate` retires the key and logs it; refused while the log is open."""
    from agent.evidence.keys_cli import keys_init_main

    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    assert keys_init_main(["--data-dir", str(data_dir), "--rotate"]) == 1  # agent running
    store.close()
    assert keys_init_main(["--data-dir", str(data_dir), "--rotate"]) == 0
    store = open_store(data_dir, agency)
    types = [parse_canonical(e).get("type") for _, e in store.log.entries()]
    assert types[-1] == "key_rotation"
    write_recording(store, segments=1)
    store.close()
    assert verify(data_dir).ok
