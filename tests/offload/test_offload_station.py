"""Evidence leaves the device for a real station and receipts come back; nothing is deleted
without one. Real parts only: ``bodycam station run`` with mutual TLS on loopback, the
device's real evidence store and log, the uploader thread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.evidence.store import RetentionViolation
from tests.offload.bench import REPO, OffloadBench, wait_for


def _verify(data: Path, *keys: str) -> dict:
    args = [a for k in keys for a in ("--station-key", k)]
    done = subprocess.run([sys.executable, "-m", "agent.cli", "verify", str(data), "--json",
                           *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    return {"rc": done.returncode, **json.loads(done.stdout)}


def test_segments_leave_oldest_first_and_only_receipted_ones_are_evicted(
        bench: OffloadBench) -> None:
    """Four sealed segments are uploaded, verified and stored once each at the station; each
    receipt is logged with its origin; eviction then deletes exactly the receipted media and
    ``bodycam verify --station-key`` explains every missing file by its receipt."""
    bench.up()
    store = bench.open_store()
    signed = bench.record(4, 200_000)
    off = bench.offloader(chunk_bytes=64 << 10)
    off.start()
    try:
        wait_for(lambda: all(store.acknowledged(s.manifest["device_seq"]) for s in signed),
                 what="four receipts")
        st = off.status()
        assert (st.backlog, st.backlog_bytes, st.receipts) == (0, 0, 4)
        assert st.fields()["offload_state"] in ("idle", "uploading")
    finally:
        off.close()
    held = bench.station_segments()
    assert sorted(s["device_seq"] for s in held) == [0, 1, 2, 3]
    assert {s["state"] for s in held} == {"verified"}
    cipher = {s.manifest["device_seq"]: s.manifest["file"]["cipher_sha256"] for s in signed}
    assert {s["device_seq"]: s["cipher_sha256"] for s in held} == cipher
    acks = [json.loads(d) for _, d in store.log.entries()]
    acks = [e for e in acks if e.get("type") == "acknowledged"]
    assert [a["device_seq"] for a in acks] == [0, 1, 2, 3]  # oldest first
    assert {a["origin"]["via"] for a in acks} == {"offload"}
    assert {a["origin"]["station"] for a in acks} == {acks[0]["receipt"]["receipt"]["station_id"]}

    second = bench.record(1, 50_000)[0]  # recorded after the uploader stopped: no receipt
    for media in sorted((bench.data / "recordings").glob("*/*.mp4.age")):
        if media.name == second.manifest["file"]["name"]:
            with pytest.raises(RetentionViolation, match="not acknowledged"):
                store.evict(media)
        else:
            store.evict(media)
    store.close()
    bench.store = None
    report = _verify(bench.data, bench.receipt_key)
    evicted = [f for f in report["findings"] if f["code"] == "evicted"]
    assert len(evicted) == 4, report
    assert report["rc"] == 0, [f for f in report["findings"] if f["level"] == "fail"]
