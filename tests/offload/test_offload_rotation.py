"""A device that rotates its key keeps getting receipts. Real parts: the device's evidence
store (whose ``rotate_key`` logs the old key's endorsement of the new one), the uploader
thread, ``bodycam station run`` with mutual TLS on loopback; the uploader hands the station
the log's rotation before the segments the new key signs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from agent.offload.rotation_handover import ROTATIONS_FILE
from agent.testing import wait_for
from tests.offload.bench import DEVICE, REPO, OffloadBench


def _rotations(bench: OffloadBench) -> list[tuple[int, str]]:
    assert bench.store is not None
    return [(i, json.loads(d)["new_fingerprint"]) for i, d in bench.store.log.entries()
            if json.loads(d).get("type") == "key_rotation"]


def _station_rows(bench: OffloadBench, sql: str) -> list[tuple]:
    con = sqlite3.connect(f"file:{bench.station.root / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _all_acked(bench: OffloadBench, n: int) -> bool:
    assert bench.store is not None
    return all(bench.store.acknowledged(seq) for seq in range(n))


def test_segments_before_and_after_a_rotation_all_get_receipts(bench: OffloadBench) -> None:
    """Enrolled, records (receipted), rotates, records again while two segments sealed by the
    old key are still owed: every segment gets its receipt, the station holds each once,
    verified, and knows both keys and where the rotation is in the log; a restarted uploader
    does not present the rotation again."""
    bench.up()
    store = bench.open_store()
    bench.record(2, 40_000)
    off = bench.offloader(chunk_bytes=32 << 10)
    off.start()
    try:
        wait_for(lambda: _all_acked(bench, 2), what="receipts of the first two segments")
    finally:
        off.close()
    bench.record(2, 40_000)  # owed, signed by the old key
    old = bench.key.fingerprint  # the enrolled key
    new = store.rotate_key()
    bench.record(2, 40_000)  # signed by the new key
    off = bench.offloader(chunk_bytes=32 << 10)
    off.start()
    try:
        wait_for(lambda: _all_acked(bench, 6), timeout=60, what="receipts of all six segments")
    finally:
        off.close()
    held = bench.station_segments()
    assert sorted(s["device_seq"] for s in held) == list(range(6))
    assert {s["state"] for s in held} == {"verified"}
    keys = _station_rows(bench, "SELECT device_id, fingerprint, endorsed_by FROM device_keys")
    assert keys == [(DEVICE, new.fingerprint, old)]
    rotations = _rotations(bench)
    assert [fp for _, fp in rotations] == [new.fingerprint]
    taken = json.loads((bench.data / "state" / ROTATIONS_FILE).read_text())
    assert list(taken["stations"].values()) == [[rotations[0][0]]]
    # presented with its proven position: the old key's span ends at the rotation
    assert _station_rows(bench, "SELECT device_id, fingerprint, log_index FROM "
                                "rotation_positions") == [(DEVICE, new.fingerprint,
                                                           rotations[0][0])]

    bench.record(1, 10_000)  # a restart: the rotation is not presented again
    off = bench.offloader()
    off.start()
    try:
        wait_for(lambda: _all_acked(bench, 7), what="the receipt after a restart")
    finally:
        off.close()
    events = _station_rows(bench, "SELECT kind FROM events WHERE device_id = "
                                  f"'{DEVICE}' AND kind = 'key-rotation'")
    assert len(events) == 1
    assert not _station_rows(bench, f"SELECT kind FROM events WHERE device_id = '{DEVICE}' "
                                    "AND kind LIKE 'bad-%'")


def test_a_rotation_while_the_uploader_runs_is_presented_before_the_next_segment(
        bench: OffloadBench) -> None:
    """The uploader reads a key_rotation the log gains while it runs, twice in a row (a chain):
    the segments after each are receipted without the station refusing any of them."""
    bench.up()
    store = bench.open_store()
    off = bench.offloader()
    off.start()
    try:
        for n in (1, 2, 3):
            bench.record(1, 20_000)
            wait_for(lambda n=n: _all_acked(bench, n), what=f"receipt {n}")
            if n < 3:
                store.rotate_key()
    finally:
        off.close()
    assert len(_station_rows(bench, "SELECT fingerprint FROM device_keys")) == 2
    refused = _station_rows(bench, f"SELECT kind, detail FROM events WHERE device_id = "
                                   f"'{DEVICE}' AND detail LIKE '422%'")
    assert refused == []


def test_a_rotated_device_starts_its_loopback_station_again(bench: OffloadBench) -> None:
    """``bodycam run --with-station`` enrols the device at every start: after a rotation the
    record names the new key, which the station does not know yet -- the start goes on (the
    device stays enrolled with its first key), the uploader hands over the rotation, and the
    next start finds the new key already enrolled."""
    bench.up()
    store = bench.open_store()
    new = store.rotate_key()
    bench.record(1, 10_000)
    bench.station.stop()
    bench.station.prepare(new)
    bench.up()
    off = bench.offloader()
    off.start()
    try:
        wait_for(lambda: _all_acked(bench, 1), what="the receipt after the restart")
    finally:
        off.close()
    bench.station.prepare(new)
    st = bench.station
    again = subprocess.run([sys.executable, "-m", "agent.cli", "station", "enrol", "--config",
                            str(st.config), "--data-dir", str(st.root),
                            str(st.root / f"{DEVICE}.enrol.json")], capture_output=True,
                           text=True, cwd=REPO, timeout=60, check=False)
    assert again.returncode == 0 and "already enrolled" in again.stdout, again.stderr
    devices = _station_rows(bench, "SELECT device_id, public_key FROM devices")
    assert devices == [(DEVICE, bench.key.public_b64)]
