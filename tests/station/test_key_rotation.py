"""A device that rotated its key keeps getting receipts: it hands the station the log's
``key_rotation`` entry (``POST /v1/devices/<d>/key-rotation``), the station checks the old
key's endorsement and from then on verifies what either key signed. Real parts: ``bodycam
station run`` with mutual TLS on loopback, the reference client, recorders with real keys and
real logs, the index in SQLite and in PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.canonical import canonical_json
from agent.evidence.key_rotation import rotation_entry
from agent.evidence.keys import DeviceKey, KeyRotation, rotation_message
from agent.evidence.log import ENTRIES, replay_entries
from agent.station.api_client import StationRefused
from agent.station.devicekeys import check_rotation
from agent.station.enrolment import parse_enrolment
from agent.station.index import PostgresIndex, SqliteIndex
from tests.station.conftest import ROGUE
from tests.station.harness import (
    SimRecorder,
    StationProcess,
    bodycam,
    index_rows,
    station_config,
)


def _store(c, rec: SimRecorder, seg) -> None:  # type: ignore[no-untyped-def]
    c.finalise(rec.device_id, c.upload_file(rec.device_id, seg.media), manifest=seg.manifest,
               entry=seg.entry, leaf_index=seg.index, log=rec.log)


def _refusal(fn, *args) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(StationRefused) as caught:
        fn(*args)
    return caught.value.status, caught.value.code, str(caught.value)


def _custody(data_dir: Path) -> list[dict]:
    path = data_dir / "log" / ENTRIES
    data = path.read_bytes() if path.exists() else b""
    return [json.loads(r) for r in replay_entries(data).records]


def _forged(old: bytes, new: DeviceKey, signer: DeviceKey) -> bytes:
    sig = signer.sign(rotation_message(old, new.public_bytes))
    return canonical_json(rotation_entry(KeyRotation(old, new.public_bytes, sig),
                                         utc="2026-11-30T08:00:00.000000Z"))


def test_segments_signed_before_and_after_a_rotation_all_get_receipts(station, recorder):
    """Before the rotation is presented the new key's checkpoint is refused (the defect);
    once presented, the segment sealed before the rotation (old key) and the one after (new
    key) are stored; presenting again changes nothing; the act is in the custody log and
    the events, and the enrolled key is still the enrolled key."""
    rec = recorder(station)
    old_key = rec.key
    before = [rec.seal(os.urandom(20_000)) for _ in range(2)]
    with rec.client(station.url) as c:
        _store(c, rec, before[0])
        entry = rec.rotate()
        after = rec.seal(os.urandom(20_000))
        status, code, _ = _refusal(_store, c, rec, before[1])
        assert (status, code) == (422, "bad-checkpoint")
        taken = c.present_rotation(rec.device_id, entry)
        assert taken["added"] is True
        assert taken["keys"] == [old_key.fingerprint, rec.key.fingerprint]
        for seg in (before[1], after):
            _store(c, rec, seg)
        again = c.present_rotation(rec.device_id, entry)
        assert again["added"] is False and again["keys"] == taken["keys"]
        assert [c.receipt(rec.device_id, s) is not None for s in range(3)] == [True] * 3
    keys = [r for r in index_rows(station.data_dir, "device_keys") if r[0] == rec.device_id]
    assert [(r[1], r[3], r[4]) for r in keys] == [(rec.key.fingerprint, old_key.fingerprint,
                                                   entry.decode())]
    devices = {r[0]: r[1] for r in index_rows(station.data_dir, "devices")}
    assert devices[rec.device_id] == old_key.public_b64
    logged = [e for e in _custody(station.data_dir) if e.get("device_id") == rec.device_id]
    assert [(e["kind"], e["new_fingerprint"], e["entry_sha256"]) for e in logged] == [
        ("device-key-rotation", rec.key.fingerprint, hashlib.sha256(entry).hexdigest())]
    kinds = [r[3] for r in index_rows(station.data_dir, "events") if r[2] == rec.device_id]
    assert kinds.count("key-rotation") == 1


def test_the_endpoint_refuses_what_it_cannot_follow_and_adds_nothing(station, recorder):
    """A forged endorsement (alarm), a rotation from a key the device never had, another
    device's rotation, garbage and a malformed entry: each refused with its reason; a
    certificate of another device, or of an unenrolled one, is not the device."""
    rec, other = recorder(station), recorder(station)
    mallory = DeviceKey(Ed25519PrivateKey.generate())
    stranger = DeviceKey(Ed25519PrivateKey.generate())
    theirs = other.rotate()
    cases = {
        "forged": _forged(rec.key.public_bytes, stranger, mallory),
        "unknown": _forged(mallory.public_bytes, stranger, mallory),
        "other device's": theirs,
        "not canonical": json.dumps(json.loads(theirs), indent=2).encode(),
        "garbage": os.urandom(200),
    }
    with rec.client(station.url) as c:
        got = {name: _refusal(c.present_rotation, rec.device_id, entry)
               for name, entry in cases.items()}
        for_them = _refusal(c.present_rotation, other.device_id, theirs)
        bad_body = _refusal(c._request, "POST", f"/v1/devices/{rec.device_id}/key-rotation",
                            {"Content-Type": "application/json"}, b"not json")
        huge = _refusal(c._request, "POST", f"/v1/devices/{rec.device_id}/key-rotation",
                        {"Content-Type": "application/json"}, b"x" * 20_000)
    with rec.client(station.url, device=ROGUE) as rogue:
        unenrolled = _refusal(rogue.present_rotation, ROGUE, theirs)
    assert {k: v[:2] for k, v in got.items()} == {
        "forged": (422, "forged-endorsement"), "unknown": (422, "unknown-old-key"),
        "other device's": (422, "unknown-old-key"), "not canonical": (422, "bad-rotation"),
        "garbage": (422, "bad-rotation")}
    assert "does not verify under key" in got["forged"][2]
    assert "which is not trusted here" in got["unknown"][2]
    assert for_them[:2] == (403, "identity-mismatch")
    assert bad_body[:2] == (400, "bad-request") and huge[:2] == (413, "too-large")
    assert unenrolled[:2] == (403, "unregistered")
    assert [r for r in index_rows(station.data_dir, "device_keys")
            if r[0] in (rec.device_id, other.device_id)] == []
    assert not [e for e in _custody(station.data_dir)
                if e.get("device_id") in (rec.device_id, other.device_id)]
    alarms = [r[3] for r in index_rows(station.data_dir, "alarms") if r[2] == rec.device_id]
    assert alarms == ["forged-endorsement"]


def test_a_retired_key_endorsing_a_second_successor_is_refused_with_an_alarm(station,
                                                                             recorder):
    """The device rotated A → B and the station took it; then an entry in which A endorses C
    (a valid signature: whoever holds the retired A made it) is presented: 422
    ``retired-old-key``, an alarm, nothing added; B's segment is still stored."""
    rec = recorder(station)
    retired = rec.key
    with rec.client(station.url) as c:
        c.present_rotation(rec.device_id, rec.rotate())
        theirs = DeviceKey(Ed25519PrivateKey.generate())
        status, code, words = _refusal(c.present_rotation, rec.device_id,
                                       _forged(retired.public_bytes, theirs, retired))
        _store(c, rec, rec.seal(os.urandom(3_000)))
    assert (status, code) == (422, "retired-old-key")
    assert "already endorsed its successor" in words
    assert [r[1] for r in index_rows(station.data_dir, "device_keys")
            if r[0] == rec.device_id] == [rec.key.fingerprint]
    alarms = [r[3] for r in index_rows(station.data_dir, "alarms") if r[2] == rec.device_id]
    assert alarms == ["retired-old-key"]


def test_a_chain_of_two_rotations_is_followed_in_order(station, recorder):
    """A → B → C: C's rotation is refused before B's is taken (its old key is unknown yet),
    then both are taken, and segments signed by each of the three keys are stored."""
    rec = recorder(station)
    keys = [rec.key.fingerprint]
    segs = [rec.seal(os.urandom(5_000))]
    entries = []
    for _ in range(2):
        entries.append(rec.rotate())
        keys.append(rec.key.fingerprint)
        segs.append(rec.seal(os.urandom(5_000)))
    with rec.client(station.url) as c:
        assert _refusal(c.present_rotation, rec.device_id, entries[1])[:2] == (
            422, "unknown-old-key")
        assert c.present_rotation(rec.device_id, entries[0])["keys"] == keys[:2]
        assert c.present_rotation(rec.device_id, entries[1])["keys"] == keys
        for seg in segs:
            _store(c, rec, seg)
    assert sorted(r[1] for r in index_rows(station.data_dir, "device_keys")
                  if r[0] == rec.device_id) == sorted(keys[1:])


def _old_sqlite_index(path: Path, rec: SimRecorder) -> set[str]:
    """An index as the station made it before key rotations (no ``device_keys``), with the
    device enrolled; its tables."""
    index = SqliteIndex(path)
    index.enrol(parse_enrolment(rec.enrolment()), "2026-11-30T00:00:00.000000Z")
    index._exec("DROP TABLE device_keys")
    index.close()
    with sqlite3.connect(path) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_an_index_made_before_rotations_opens_gains_the_table_and_works(tmp_path, pki,
                                                                         recorder):
    """A station started on an old SQLite index: it stores a segment, takes a rotation and
    stores the new key's segment."""
    rec = recorder()
    data = tmp_path / "data"
    data.mkdir()
    tables = _old_sqlite_index(data / "index.sqlite", rec)
    assert "device_keys" not in tables and {"devices", "segments", "events"} <= tables
    proc = StationProcess(station_config(tmp_path / "st.toml", pki, min_free_bytes=0),
                          data).start()
    try:
        with rec.client(proc.url) as c:
            _store(c, rec, rec.seal(os.urandom(4_000)))
            entry = rec.rotate()
            assert c.present_rotation(rec.device_id, entry)["added"] is True
            _store(c, rec, rec.seal(os.urandom(4_000)))
    finally:
        assert proc.stop() == 0, proc.stderr()
    assert [r[1] for r in index_rows(data, "device_keys")] == [rec.key.fingerprint]
    assert len(index_rows(data, "segments")) == 2


def test_a_postgresql_index_made_before_rotations_gains_the_table_shared_by_processes(
        postgres, tmp_path, pki):
    """The same migration in PostgreSQL; a key one process took is a key of the device for
    another process on the same index; a second insert of it adds nothing."""
    psycopg = pytest.importorskip("psycopg")
    name = f"rot_{os.urandom(4).hex()}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres.rsplit("/", 1)[0] + "/" + name
    rec = SimRecorder(tmp_path / "rec", "BC-ST-40", pki)
    try:
        old = PostgresIndex(url)
        old.enrol(parse_enrolment(rec.enrolment()), "2026-11-30T00:00:00.000000Z")
        old._exec("DROP TABLE device_keys")
        old.close()
        first, second = PostgresIndex(url), PostgresIndex(url)
        try:
            enrolled = rec.key.public_bytes
            successor = check_rotation(rec.rotate(), [enrolled])
            assert first.add_device_key(rec.device_id, successor, "2026-11-30T08:00:00Z")
            assert not second.add_device_key(rec.device_id, successor, "2026-11-30T08:00:01Z")
            device = second.device(rec.device_id)
            assert device is not None
            assert device.keys == (enrolled, rec.key.public_bytes)
            assert device.public_key == enrolled
        finally:
            first.close()
            second.close()
    finally:
        rec.close()


def test_a_row_put_in_the_index_by_hand_gives_the_device_no_key(tmp_path, pki, recorder):
    """The index follows stored rows from the enrolled key, checking each endorsement: a key
    inserted without one (an index administrator, a bad migration) verifies nothing."""
    rec = recorder()
    index = SqliteIndex(tmp_path / "index.sqlite")
    try:
        index.enrol(parse_enrolment(rec.enrolment()), "2026-11-30T00:00:00.000000Z")
        intruder = DeviceKey(Ed25519PrivateKey.generate())
        index._exec("INSERT INTO device_keys VALUES (?, ?, ?, ?, ?, ?)",
                    (rec.device_id, intruder.fingerprint, intruder.public_b64,
                     rec.key.fingerprint, "{}", "2026-11-30T08:00:00Z"))
        device = index.device(rec.device_id)
        assert device is not None and device.keys == (rec.key.public_bytes,)
    finally:
        index.close()
    assert base64.b64decode(intruder.public_b64) not in device.keys


def test_a_person_sees_the_keys_and_presents_a_rotation_by_hand(station, recorder, tmp_path):
    """``bodycam station keys``: the enrolled key alone; a forged entry refused with its
    reason; the device's own entry (copied off it into a file) taken and logged with who did
    it; then the new key's segment is stored and the listing shows the chain."""
    rec = recorder(station)
    enrolled, enrolled_raw = rec.key.fingerprint, rec.key.public_bytes
    entry = rec.rotate()
    where = ["--config", str(station.config), "--data-dir", str(station.data_dir)]
    listed = json.loads(bodycam("station", "keys", rec.device_id, "--json", *where).stdout)
    assert (listed["enrolled"], listed["keys"], listed["rotations"]) == (enrolled, [enrolled],
                                                                        [])
    forged = tmp_path / "forged.json"
    mallory = DeviceKey(Ed25519PrivateKey.generate())
    forged.write_bytes(_forged(enrolled_raw, mallory, mallory))
    refused = bodycam("station", "keys", rec.device_id, "--rotation", str(forged), *where,
                      check=False)
    assert refused.returncode == 1 and "forged-endorsement" in refused.stderr
    mine = tmp_path / "rotation.json"
    mine.write_bytes(entry + b"\n")
    done = bodycam("station", "keys", rec.device_id, "--rotation", str(mine), "--by", "clerk",
                   "--json", *where)
    after = json.loads(done.stdout.split("\n", 1)[1])
    assert after["keys"] == [enrolled, rec.key.fingerprint]
    assert [(r["endorsed_by"], r["followed"]) for r in after["rotations"]] == [(enrolled, True)]
    logged = [e for e in _custody(station.data_dir) if e.get("device_id") == rec.device_id]
    assert [e["via"] for e in logged] == ["station keys by clerk"]
    with rec.client(station.url) as c:
        _store(c, rec, rec.seal(os.urandom(3_000)))
        assert c.present_rotation(rec.device_id, entry)["added"] is False

