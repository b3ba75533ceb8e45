"""Evidence leaves the device for a real station and receipts come back; nothing is deleted
without one. Real parts only: ``bodycam station run`` with mutual TLS on loopback, the
device's real evidence store and log, the uploader thread."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.evidence.manifest import ClockInfo, SegmentInfo, Timestamp
from agent.evidence.store import RetentionViolation
from agent.offload.book import BOOK_FILE
from agent.offload.wiring import build_offloader
from agent.testing import wait_for
from tests.offload.bench import DEVICE, REPO, OffloadBench


def _verify(data: Path, *keys: str) -> dict:
    args = [a for k in keys for a in ("--station-key", k)]
    done = subprocess.run([sys.executable, "-m", "agent.cli", "verify", str(data), "--json",
                           *args], capture_output=True, text=True, cwd=REPO, timeout=120,
                          check=False)
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
        st = wait_for(lambda: (s := off.status()).receipts == 4 and s, what="status catches up")
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


def _acked(bench: OffloadBench, n: int) -> bool:
    assert bench.store is not None
    return all(bench.store.acknowledged(seq) for seq in range(n))


def test_a_station_killed_mid_upload_is_resumed_from_its_durable_offset(
        bench: OffloadBench) -> None:
    """SIGKILL of the station while a 1 MB segment is half sent: the device backs off, keeps
    everything, and after the restart carries on from the station's fsynced offset -- at most
    the PATCH in flight is sent again -- and the station holds the segment once."""
    bench.up()
    bench.open_store()
    size = 1_000_000
    bench.record(1, size)
    chunk = 64 << 10
    off = bench.offloader(chunk_bytes=chunk, max_rate=400_000)
    off.start()
    try:
        wait_for(lambda: off.status().bytes_sent > size // 3, what="a third sent")
        bench.station.kill()
        wait_for(lambda: off.status().state == "unreachable", what="unreachable")
        assert not _acked(bench, 1) and off.status().backlog == 1
        bench.up()
        wait_for(lambda: _acked(bench, 1), timeout=30, what="the receipt after the restart")
        resent = off.status().bytes_sent - size
    finally:
        off.close()
    cipher = next((bench.data / "recordings").glob("*/*.mp4.age")).stat().st_size
    assert 0 <= off.status().bytes_sent - cipher <= 2 * chunk, resent
    held = bench.station_segments()
    assert [(s["device_seq"], s["state"]) for s in held] == [(0, "verified")]


def test_an_unreachable_station_deletes_nothing_and_the_backlog_drains_when_it_returns(
        bench: OffloadBench) -> None:
    """With no station listening the backlog grows, the state says unreachable, the last error
    names the failure and no segment is evictable; once the station is up every segment is
    receipted."""
    store = bench.open_store()
    off = bench.offloader()
    off.start()
    try:
        bench.record(2, 100_000)
        wait_for(lambda: off.status().state == "unreachable", what="unreachable")
        bench.record(1, 100_000)
        wait_for(lambda: off.status().backlog == 3, what="backlog of three")
        st = off.status().fields()
        assert st["offload_backlog_bytes"] > 300_000 and "offload_last_error" in st
        for media in (bench.data / "recordings").glob("*/*.mp4.age"):
            with pytest.raises(RetentionViolation):
                store.evict(media)
        bench.up()
        wait_for(lambda: _acked(bench, 3), timeout=30, what="three receipts")
        wait_for(lambda: off.status().backlog == 0, what="an empty backlog")
    finally:
        off.close()


def test_a_full_station_gives_no_receipt_and_the_device_keeps_retrying(
        bench: OffloadBench) -> None:
    """A station whose store is below its free-space floor answers 507: no receipt, the
    segment stays on the device, the state says so; with space back, the same segment is
    receipted."""
    cfg = bench.station.config
    bench.station.prepare(bench.key)
    cfg.write_text(cfg.read_text() + "min_free_bytes = 1000000000000000\n")
    bench.up()
    store = bench.open_store()
    bench.record(1, 100_000)
    off = bench.offloader()
    off.start()
    try:
        wait_for(lambda: off.status().state == "station-full", what="station-full")
        assert not store.acknowledged(0)
        assert "507" in (off.status().last_error or "")
        bench.station.stop()
        cfg.write_text(cfg.read_text().replace("min_free_bytes = 1000000000000000\n", ""))
        bench.up()
        wait_for(lambda: store.acknowledged(0), timeout=30, what="the receipt")
    finally:
        off.close()
    assert [s["device_seq"] for s in bench.station_segments()] == [0]


def test_a_receipt_signed_by_an_untrusted_key_is_refused_and_permits_nothing(
        bench: OffloadBench) -> None:
    """The device trusts another station key: the station stores the segment, but its receipt
    is refused, nothing is logged as acknowledged and nothing becomes evictable."""
    other = "A" * 43 + "="
    bench.up()
    store = bench.open_store(station_keys=[other])
    bench.record(1, 100_000)
    size = store.log.size
    off = bench.offloader(station_keys=[other])
    off.start()
    try:
        wait_for(lambda: "receipt refused" in (off.status().last_error or ""),
                 what="the refusal")
        wait_for(lambda: off.status().state == "refused", what="the refused state")
        assert off.status().backlog == 1
    finally:
        off.close()
    assert store.log.size == size and not store.acknowledged(0)
    with pytest.raises(RetentionViolation):
        store.evict(next((bench.data / "recordings").glob("*/*.mp4.age")))


def test_a_device_killed_mid_upload_resumes_after_restart_instead_of_starting_again(
        bench: OffloadBench) -> None:
    """SIGKILL of the device's process while a segment is half uploaded: the next process finds
    the upload in state/, asks the station for the durable offset and sends only the rest."""
    bench.up()
    bench.open_store()
    bench.record(1, 1_000_000)
    assert bench.store is not None
    bench.store.close()
    bench.store = None
    chunk = 64 << 10
    cfg = dataclasses.asdict(bench.config(max_rate=300_000))
    spec = bench.root / "child.json"
    spec.write_text(json.dumps({"data": str(bench.data), "device_id": DEVICE, "chunk": chunk,
                                "offload": cfg}))
    child = subprocess.Popen([sys.executable, "-m", "tests.offload.device_child", str(spec)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    incoming = bench.station.root / "store" / ".incoming"
    try:
        part = wait_for(lambda: next((p for p in incoming.glob("*.part")
                                      if p.stat().st_size > 300_000), None),
                        what="a third of the segment at the station")
    finally:
        child.kill()
        child.wait(timeout=30)
    held = part.stat().st_size
    assert (bench.data / "state" / BOOK_FILE).exists()
    store = bench.open_store()
    off = bench.offloader(chunk_bytes=chunk)
    off.start()
    try:
        wait_for(lambda: store.acknowledged(0), timeout=30, what="the receipt")
    finally:
        off.close()
    cipher = next((bench.data / "recordings").glob("*/*.mp4.age")).stat().st_size
    assert off.status().bytes_sent <= cipher - held + 2 * chunk
    assert [s["device_seq"] for s in bench.station_segments()] == [0]


def test_a_segment_recovered_after_a_crash_is_offloaded_like_any_other(
        bench: OffloadBench) -> None:
    """A segment a crash left open is sealed as recovered at the next start and then
    uploaded, verified by the station and receipted (its ciphertext has no final age chunk)."""
    bench.up()
    store = bench.open_store()
    seg = store.open_segment(SegmentInfo(
        recording_id="de" * 16, seq=0, start=Timestamp("2026-11-30T10:00:00.000000Z", 0),
        clock=ClockInfo("gps", 20), officer_id="O-1", unit="U-1", boot_id="b0" * 16))
    seg.sink.write(os.urandom(300_000))
    seg.sink.sync()
    store.close()  # the process dies here: the segment is never sealed
    bench.store = None
    store = bench.open_store()
    (recovered,) = store.recover()
    assert "recovered" in recovered.manifest["flags"]
    off = bench.offloader()
    off.start()
    try:
        wait_for(lambda: store.acknowledged(0), what="the recovered segment's receipt")
    finally:
        off.close()
    assert [(s["device_seq"], s["state"]) for s in bench.station_segments()] == [(0, "verified")]


def test_the_uploader_pauses_while_the_camera_pipeline_is_strained(bench: OffloadBench) -> None:
    """While the pipeline reports strain no byte goes out and the state says yielding; when it
    passes, the upload carries on."""
    bench.up()
    store = bench.open_store()
    bench.record(1, 1_000_000)
    strained = threading.Event()
    off = build_offloader(bench.config(max_rate=500_000), store, device_id=DEVICE,
                          data_dir=bench.data, strained=strained.is_set, chunk_bytes=64 << 10)
    off.start()
    try:
        wait_for(lambda: off.status().bytes_sent > 100_000, what="the upload under way")
        strained.set()
        wait_for(lambda: off.status().state == "yielding", what="yielding")
        paused = off.status().bytes_sent
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # a second of strain: nothing may go out
            assert off.status().bytes_sent == paused
            time.sleep(0.05)
        strained.clear()
        wait_for(lambda: store.acknowledged(0), what="the receipt after the strain")
    finally:
        off.close()
