"""Live mode: the open segment's ciphertext reaches the station while it is being written,
and the seal only adds its tail; the lag from a write to bytes durable at the station is
measured."""

from __future__ import annotations

import json
import os
import statistics
import time

from agent.evidence.manifest import ClockInfo, GpsSummary, MediaInfo, SegmentInfo, Timestamp
from agent.offload.book import BOOK_FILE
from agent.station.api_client import StationClient
from agent.testing import wait_for
from tests.offload.bench import DEVICE, OffloadBench


def test_the_open_segment_streams_within_a_second_and_the_seal_sends_only_its_tail(
        bench: OffloadBench) -> None:
    """Ciphertext written to an open segment (one 64 KiB age chunk every 100 ms, ~5 Mb/s) is
    durable at the station well under a second later; after the seal the upload's length is
    declared, the segment finalised and receipted, and no byte was sent twice."""
    bench.up()
    store = bench.open_store()
    off = bench.offloader(live=True)
    off.start()
    head = StationClient(bench.url, cafile=str(bench.station.pki / "ca.crt"),
                         certfile=str(bench.station.pki / f"{DEVICE}.crt"),
                         keyfile=str(bench.station.pki / f"{DEVICE}.key"))
    lags: list[float] = []
    try:
        seg = store.open_segment(SegmentInfo(
            recording_id="c0ffee" * 5 + "00", seq=0,
            start=Timestamp("2026-11-30T10:00:00.000000Z", 0), clock=ClockInfo("gps", 20),
            officer_id="O-1", unit="U-1", boot_id="b0" * 16))
        book = bench.data / "state" / BOOK_FILE
        written: list[tuple[int, float]] = []
        for _ in range(30):
            seg.sink.write(os.urandom(65536))
            written.append((seg.media_path.stat().st_size, time.monotonic()))
            time.sleep(0.1)  # the camera's pace, not a wait for a condition
            if book.exists() and json.loads(book.read_text())["uploads"]:
                upload = json.loads(book.read_text())["uploads"]["0"]["upload"]
                held = head.status(upload).offset
                now = time.monotonic()
                lags += [now - t for size, t in written if size <= held]
                written = [(size, t) for size, t in written if size > held]
        assert lags, "nothing reached the station while the segment was open"
        signed = store.seal(seg, end=Timestamp("2026-11-30T10:00:03.000000Z", 3_000_000),
                            media=MediaInfo(video={"codec": "h264"}, frames=90,
                                            duration_us=3_000_000), gps=GpsSummary())
        sealed_at = time.monotonic()
        wait_for(lambda: store.acknowledged(0), what="the receipt")
        seal_to_receipt = time.monotonic() - sealed_at
    finally:
        off.close()
        head.close()
    cipher = signed.manifest["file"]["cipher_bytes"]
    print(f"live lag: median {statistics.median(lags) * 1000:.0f} ms, max {max(lags) * 1000:.0f}"
          f" ms over {len(lags)} chunks; seal → receipt {seal_to_receipt * 1000:.0f} ms")
    assert statistics.median(lags) < 1.0
    assert off.status().bytes_sent == cipher
    assert [s["device_seq"] for s in bench.station_segments()] == [0]


def test_a_live_stream_survives_a_station_crash_and_the_seal_completes_it(
        bench: OffloadBench) -> None:
    """The station is SIGKILLed while the open segment streams: the uploader reports the
    station unreachable, resumes the same upload from the durable offset after the restart,
    and the sealed segment is receipted and held once."""
    bench.up()
    store = bench.open_store()
    off = bench.offloader(live=True)
    off.start()
    try:
        seg = store.open_segment(SegmentInfo(
            recording_id="be" * 16, seq=0,
            start=Timestamp("2026-11-30T10:00:00.000000Z", 0), clock=ClockInfo("gps", 20),
            officer_id="O-1", unit="U-1", boot_id="b0" * 16))
        seg.sink.write(os.urandom(300_000))
        wait_for(lambda: off.status().bytes_sent > 0, what="the stream under way")
        bench.station.kill()
        seg.sink.write(os.urandom(300_000))
        wait_for(lambda: off.status().state == "unreachable", what="unreachable")
        bench.up()
        seg.sink.write(os.urandom(300_000))
        store.seal(seg, end=Timestamp("2026-11-30T10:00:03.000000Z", 3_000_000),
                   media=MediaInfo(video={"codec": "h264"}, frames=90, duration_us=3_000_000),
                   gps=GpsSummary())
        wait_for(lambda: store.acknowledged(0), timeout=30, what="the receipt")
    finally:
        off.close()
    assert [s["device_seq"] for s in bench.station_segments()] == [0]
