"""``bodycam station list`` filters, legal hold, and retention: never early, never held, every
deletion recorded. Retention runs on the synthetic recording of the second device (kept by
default for 1 day in the test catalogue); the real recording's matter keeps it for 100 years,
so it must survive every ``--apply`` here."""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.log import replay_entries
from agent.evidence.proof import ProofError, check_proof, inclusion
from tests.desk.conftest import DEVICE, OFFICER, OTHER, Desk, station_cli
from tests.station.harness import bodycam, index_rows

_CATALOGUE_HEAD = "retention_days = 1\n"


def _station(desk: Desk) -> tuple[str, ...]:
    return ("--config", str(desk.station.config), "--data-dir", str(desk.station.data_dir))


@pytest.fixture
def listed(desk, capsys):
    """``station list --json [ARGS]``'s recordings."""
    def run(*extra: str) -> list[dict]:
        code, out, err = station_cli(capsys, "list", *_station(desk), "--json", *extra)
        assert code in (0, 1), err
        return list(json.loads(out)["recordings"])
    return run


def test_list_shows_recordings_with_their_facts(desk):
    """One row per recording: device, officer, matter, times, segment count, bytes, state,
    coverage and every receipt; the per-segment rows are still there."""
    done = bodycam("station", "list", *_station(desk), "--json")
    doc = json.loads(done.stdout)
    mine = next(r for r in doc["recordings"] if r["recording_id"] == desk.recording_id)
    assert (mine["device_id"], mine["officer_id"], mine["matters"]) == (DEVICE, OFFICER, ["XCJC"])
    assert mine["segments"] == desk.segments == len(mine["receipts"])
    assert mine["state"] == "verified"
    assert mine["start_utc"] < mine["end_utc"]
    assert mine["coverage"]["matters"][0]["code"] == "XCJC"
    assert all(r["receipt"]["receipt"]["device_id"] == DEVICE for r in mine["receipts"])
    assert mine["cipher_bytes"] == sum(s["cipher_bytes"] for s in doc["segments"]
                                       if s["recording_id"] == desk.recording_id)
    text = bodycam("station", "list", *_station(desk)).stdout
    assert desk.recording_id[:8] in text and "XCJC" in text and OFFICER in text
    row = next(line for line in text.splitlines() if desk.recording_id[:8] in line)
    states = {s["c2pa"]["state"] for s in doc["segments"]
              if s["recording_id"] == desk.recording_id}
    assert states == {"absent"} and " absent " in row  # C2PA column (this unit uploads none)


def test_list_filters(desk, listed):
    """--device, --officer, --matter, --since and --until select recordings."""
    ids = {"mine": desk.recording_id, "other": desk.other_recording_id}

    def got(*args: str) -> set[str]:
        return {k for k, v in ids.items() if v in {r["recording_id"] for r in listed(*args)}}

    assert got() == {"mine", "other"}
    assert got("--device", OTHER) == {"other"}
    assert got("--device", DEVICE, "--matter", "XCJC") == {"mine"}
    assert got("--officer", OFFICER) == {"mine"}
    assert got("--matter", "ZJSD") == set()
    assert got("--until", "2026-11-30T00:00:00Z") == {"other"}
    assert got("--since", "2026-11-30T00:00:02Z") == {"mine"}
    assert got("--since", "2999-01-01") == set()


@pytest.mark.parametrize("bad", [["--since", "yesterday"], ["--until", "2026-13-01"],
                                 ["--device", "../etc"], ["--matter", "1X"], ["--colour"]])
def test_list_refuses_bad_arguments(desk, bad):
    """Strict parsing: a bad value is a usage error (2), with a message, no traceback."""
    done = bodycam("station", "list", *_station(desk), *bad, check=False)
    assert done.returncode == 2, (bad, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr


def _retention(desk: Desk, capsys, catalogue: Path, now: str, *extra: str) -> dict:
    code, out, err = station_cli(capsys, "retention", *_station(desk), "--catalogue",
                                 str(catalogue), "--now", now, "--json", "--by",
                                 "records officer", *extra)
    assert code == 0, err
    return {r["recording_id"]: r for r in json.loads(out)["recordings"]}


def _catalogue(tmp_path: Path) -> Path:
    from agent.matters.catalogue import SHIPPED_CATALOGUE

    text = SHIPPED_CATALOGUE.read_text(encoding="utf-8")
    text = text.replace("retention_days = 180\n", _CATALOGUE_HEAD)
    text = text.replace('code = "XCJC"\n', 'code = "XCJC"\nretention_days = 36500\n', 1)
    path = tmp_path / "matters.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_retention_never_deletes_early_or_held_and_records_every_deletion(desk, tmp_path, capsys,
                                                                          listed):
    """The second device's recording ends 2026-11-30T00:00:01Z and is kept 1 day: one second
    before that it is not due; past it, a legal hold keeps it through --apply; released, it is
    deleted — files gone, index rows and events kept, list says so — while the real recording
    (its matter keeps it 100 years) is untouched."""
    cat = _catalogue(tmp_path)
    other = desk.other_recording_id
    store = desk.station.data_dir / "store" / OTHER
    files_before = sorted(p.name for p in store.rglob("*") if p.is_file())
    assert len(files_before) == 4
    early = _retention(desk, capsys, cat, "2026-12-01T00:00:00Z", "--apply")
    assert early[other]["due"] is False and early[other]["files_removed"] is None
    assert not early[desk.recording_id]["due"]
    code, out, _ = station_cli(capsys, "hold", other[:8], *_station(desk), "--reason",
                               "case 2026/1130 disclosure", "--by", "legal")
    assert code == 0 and "held by legal" in out
    held = _retention(desk, capsys, cat, "2027-06-01T00:00:00Z", "--apply")
    assert held[other]["due"] is False and "legal hold" in held[other]["why"]
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == files_before
    assert next(r for r in listed() if r["recording_id"] == other)["hold"]["by"] == "legal"
    assert station_cli(capsys, "release", other[:8], *_station(desk), "--reason",
                       "case closed")[0] == 0
    due = _retention(desk, capsys, cat, "2027-06-01T00:00:00Z")
    assert due[other]["due"] is True and due[other]["files_removed"] is None
    assert [p.name for p in store.rglob("*") if p.is_file()] != []
    applied = _retention(desk, capsys, cat, "2027-06-01T00:00:00Z", "--apply")
    assert applied[other]["files_removed"] == 4
    assert not applied[desk.recording_id]["due"]
    assert [p for p in store.rglob("*") if p.is_file()] == []
    row = next(r for r in listed() if r["recording_id"] == other)
    assert row["state"] == "deleted" and len(row["receipts"]) == 2
    assert station_cli(capsys, "list", *_station(desk), "--check")[0] == 0
    mine = next(r for r in listed("--check") if r["recording_id"] == desk.recording_id)
    assert mine["state"] == "verified"
    events = index_rows(desk.station.data_dir, "events")
    kinds = [e[3] for e in events if other in e[4]]
    assert kinds.count("retention-delete") == 2
    assert kinds.index("hold") < kinds.index("release") < kinds.index("retention-delete")
    deletions = index_rows(desk.station.data_dir, "deletions")
    assert {(d[0], d[4]) for d in deletions} == {(OTHER, "records officer")}
    again = _retention(desk, capsys, cat, "2028-01-01T00:00:00Z", "--apply")
    assert again[other]["due"] is False and again[other]["why"] == "already deleted"
    _station_log_witnessed_it(desk, other)


def _station_log_witnessed_it(desk: Desk, other: str) -> None:
    """The hold, the release and the deletion are entries of the station's own log, signed by
    the key ``station info`` publishes: an inclusion proof of the deletion checks out offline,
    erasing the index rows leaves it there, and dropping it from the log is caught."""
    data = desk.station.data_dir
    records = replay_entries((data / "log" / "entries.bin").read_bytes()).records
    mine = [(i, json.loads(r)) for i, r in enumerate(records) if other in r.decode()]
    assert [e["kind"] for _, e in mine] == ["hold", "release", "retention-delete"]
    at, deletion = mine[-1]
    assert deletion["by"] == "records officer" and deletion["retention_days"] == 1
    assert deletion["device_id"] == OTHER and deletion["matters"] == []
    assert "retention of 1 days" in deletion["reason"]
    stored = sorted((int(r[1]), r[5]) for r in index_rows(data, "segments") if r[2] == other)
    assert len(stored) == 2
    assert sorted((s["device_seq"], s["cipher_sha256"]) for s in deletion["segments"]) == stored
    info = json.loads(bodycam("station", "info", *_station(desk), "--json").stdout)
    station_key = base64.b64decode(info["receipt_key"])
    assert "is in the log bodycam-station/v1/" in check_proof(inclusion(data, f"#{at}"),
                                                              [station_key])
    con = sqlite3.connect(data / "index.sqlite")  # an index administrator erases the record
    with con:
        con.execute("DELETE FROM deletions")
        con.execute("DELETE FROM events WHERE kind IN ('hold', 'release', 'retention-delete')")
    con.close()
    assert index_rows(data, "deletions") == []
    assert check_proof(inclusion(data, f"#{at}"), [station_key])
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(ProofError, match="checkpoint"):
        check_proof(inclusion(data, f"#{at}"), [stranger])
    forged = data.parent / "forged"  # the log without the deletion, the old signed checkpoint
    (forged / "log").mkdir(parents=True)
    (forged / "log" / "checkpoint").write_bytes((data / "log" / "checkpoint").read_bytes())
    (forged / "log" / "entries.bin").write_bytes(b"".join(
        _frame(r) for i, r in enumerate(records) if i != at))
    with pytest.raises(ProofError, match="does not match its signed checkpoint"):
        inclusion(forged, "#0")


def _frame(record: bytes) -> bytes:
    return struct.pack(">II", len(record), zlib.crc32(record)) + record


def test_hold_and_release_refuse_what_they_cannot_do(desk):
    """Release of a recording that is not held is a failure (1); a hold needs a reason (2)."""
    rid = desk.recording_id[:8]
    assert bodycam("station", "release", rid, *_station(desk), "--reason", "x",
                   check=False).returncode == 1
    assert bodycam("station", "hold", rid, *_station(desk), check=False).returncode == 2
    assert bodycam("station", "hold", rid, *_station(desk), "--reason", "  ",
                   check=False).returncode == 2
