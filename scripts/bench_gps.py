#!/usr/bin/env python3
"""GPS reader benchmark: throughput against raw pyserial, CPU at 10 Hz, drift measurement.

1. Throughput: the same NMEA stream goes down a pty to (a) a bare ``serial.readline()``
   loop and (b) SerialGps (framing, checksum, pynmea2, epoch assembly). Runs alternate side
   by side; the median sentences/second of each and their ratio are printed.
2. CPU at a 10 Hz receiver: SimGps at 10 Hz feeds SerialGps; the reader thread's own CPU time
   (``/proc/self/task/<tid>/stat``) over the run, as % of one core, beside the same figure
   for a bare readline loop.
3. Drift: the simulator's clock is made to run ``--drift-ppm`` fast; ClockDiscipline's
   measured rate of the system clock against GPS is printed next to the injected value.

Usage: .venv/bin/python scripts/bench_gps.py [--sentences 40000] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import serial

from agent.clock.discipline import ClockDiscipline
from hw.gps import Fix
from hw.gps_serial import SerialGps
from hw.gps_sim import PtyPort, SimGps, nmea_sentence

_TICK = os.sysconf("SC_CLK_TCK")


def make_stream(sentences: int) -> bytes:
    """A realistic 4-sentence-per-epoch stream with advancing times."""
    out = bytearray()
    for k in range(sentences // 4):
        hh, rest = divmod(k // 10, 3600)
        tod = f"{hh % 24:02d}{rest // 60:02d}{rest % 60:02d}.{k % 10}0"
        out += nmea_sentence(f"GNGGA,{tod},3113.824966,N,12128.422206,E,1,09,0.9,35.0,M,12.0,M,,")
        out += nmea_sentence("GNGSA,A,3,01,03,06,09,14,17,19,22,28,,,,1.6,0.9,1.3")
        out += nmea_sentence(f"GNZDA,{tod},01,03,2026,00,00")
        out += nmea_sentence(f"GNRMC,{tod},A,3113.824966,N,12128.422206,E,2.72,41.0,010326,,,A")
    return bytes(out)


def _writer(port: PtyPort, data: bytes) -> threading.Thread:
    thread = threading.Thread(target=port.write, args=(data,), daemon=True)
    thread.start()
    return thread


def raw_rate(data: bytes, lines: int) -> float:
    """Lines/second of a bare pyserial readline() loop on the pty."""
    port = PtyPort()
    try:
        ser = serial.Serial(str(port.path), 115200, timeout=1)
        start = time.perf_counter()
        writer = _writer(port, data)
        for _ in range(lines):
            ser.readline()
        elapsed = time.perf_counter() - start
        writer.join()
        ser.close()
    finally:
        port.close()
    return lines / elapsed


def bulk_rate(data: bytes, lines: int) -> float:
    """Lines/second of the cheapest possible reader: bulk read() and split, no decoding."""
    port = PtyPort()
    try:
        ser = serial.Serial(str(port.path), 115200, timeout=1)
        start = time.perf_counter()
        writer = _writer(port, data)
        seen = 0
        while seen < lines:
            seen += ser.read(max(1, ser.in_waiting)).count(b"\n")
        elapsed = time.perf_counter() - start
        writer.join()
        ser.close()
    finally:
        port.close()
    return lines / elapsed


def reader_rate(data: bytes, lines: int) -> float:
    """Sentences/second through SerialGps (until every byte is decoded)."""
    port = PtyPort()
    reader = SerialGps(str(port.path), 115200, stale_after_s=3600)
    try:
        reader.start(lambda fix: None)
        reader.connected.wait(5)
        start = time.perf_counter()
        writer = _writer(port, data)
        gate = threading.Event()
        while reader.bytes_read < len(data):
            gate.wait(0.001)
        elapsed = time.perf_counter() - start
        writer.join()
        assert reader.stats()["sentences_ok"] == lines, reader.stats()
    finally:
        reader.stop()
        port.close()
    return lines / elapsed


def thread_cpu_s(native_id: int) -> float:
    """utime+stime of one thread of this process, in seconds."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_at_10hz(seconds: float, drift_ppm: float) -> tuple[float, float, int, object]:
    """Reader-thread CPU % with SimGps at 10 Hz, a raw readline baseline, and drift."""
    fixes: list[Fix] = []
    with SimGps(rate_hz=10) as sim:
        sim.drift(drift_ppm)
        clock = ClockDiscipline()
        reader = SerialGps(sim.port_path, 9600)

        def sink(fix: Fix) -> None:
            fixes.append(fix)
            clock.observe_fix(fix)

        reader.start(sink)
        reader.connected.wait(5)
        tid = reader._thread.native_id  # type: ignore[union-attr]  # bench introspection
        cpu0 = thread_cpu_s(tid)  # type: ignore[arg-type]
        time.sleep(seconds)
        ours = (thread_cpu_s(tid) - cpu0) / seconds * 100  # type: ignore[arg-type]
        reader.stop()
        drift = clock.drift()
    with SimGps(rate_hz=10) as sim:
        ser = serial.Serial(sim.port_path, 9600, timeout=0.1)
        stop = threading.Event()
        ids: list[int] = []

        def loop() -> None:
            ids.append(threading.get_native_id())
            while not stop.is_set():
                ser.readline()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        while not ids:
            time.sleep(0.01)
        cpu0 = thread_cpu_s(ids[0])
        time.sleep(seconds)
        raw = (thread_cpu_s(ids[0]) - cpu0) / seconds * 100
        stop.set()
        thread.join()
        ser.close()
    return ours, raw, len(fixes), drift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=40_000)
    parser.add_argument("--raw-sentences", type=int, default=4_000,
                        help="readline() reads byte by byte: a shorter stream keeps runs short")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--drift-ppm", type=float, default=2000.0,
                        help="exaggerated so 10 s resolve it: NMEA latency jitter is ~1 ms")
    args = parser.parse_args()

    data = make_stream(args.sentences)
    lines = data.count(b"\n")
    short = make_stream(args.raw_sentences)
    short_lines = short.count(b"\n")
    raws, bulks, ours = [], [], []
    for _ in range(args.repeats):
        raws.append(raw_rate(short, short_lines))
        bulks.append(bulk_rate(data, lines))
        ours.append(reader_rate(data, lines))
    raw_med, our_med = statistics.median(raws), statistics.median(ours)
    bulk_med = statistics.median(bulks)
    print(f"stream: {lines} sentences, {len(data)} bytes, {args.repeats} alternating runs")
    print(f"raw pyserial readline : {raw_med:10.0f} lines/s   (runs: "
          + ", ".join(f"{r:.0f}" for r in raws) + f"; {short_lines} lines each)")
    print(f"raw bulk read+split   : {bulk_med:10.0f} lines/s   (runs: "
          + ", ".join(f"{r:.0f}" for r in bulks) + ")")
    print(f"SerialGps (decoded)   : {our_med:10.0f} sentences/s (runs: "
          + ", ".join(f"{r:.0f}" for r in ours) + ")")
    print(f"ratio reader/readline : {our_med / raw_med:10.3f}")
    print(f"ratio reader/bulk     : {our_med / bulk_med:10.3f}   (cost of decoding)")
    print(f"headroom at 10 Hz x 4 sentences: {our_med / 40:8.0f}x")

    cpu, raw_cpu, nfix, drift = cpu_at_10hz(args.seconds, args.drift_ppm)
    print(f"10 Hz receiver, {args.seconds:.0f} s, {nfix} fixes:")
    print(f"  SerialGps thread CPU : {cpu:6.2f} % of one core")
    print(f"  raw readline CPU     : {raw_cpu:6.2f} % of one core"
          f"   (ratio {cpu / raw_cpu if raw_cpu else float('nan'):.2f})")
    if drift is not None:
        print(f"  drift: injected GPS +{args.drift_ppm:.0f} ppm -> measured system clock "
              f"{drift.ppm:+.1f} ppm ({drift.s_per_day:+.3f} s/day, "  # type: ignore[attr-defined]
              f"{drift.samples} samples over {drift.span_s:.1f} s)")  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
