#!/usr/bin/env python3
"""Sealing benchmark: EvidenceSink against the stock tools, and seal latency by segment length.

1. Throughput of hash(plain) + age-encrypt + hash(cipher) + append + fsync through
   ``EvidenceSink``, against ``sha256sum`` + ``age -r`` + ``sha256sum`` + ``sync`` on the same
   bytes, runs interleaved (A B A B …) so both see the same machine load; prints MB/s, ratio.
2. CPU cost of sealing at 1080p30's bitrate (8 Mbit/s = 1 MB/s) as a fraction of one core,
   from the process CPU time spent per MB.
3. Seal latency — last byte written → signed manifest + log leaf + checkpoint durable —
   p50/p99 for segments of 10 s, 60 s and 300 s at that bitrate. It must not grow with length.

Usage: ``python scripts/bench_sealing.py [--mb 64] [--runs 3] [--rounds 6] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from agent.evidence.age import Identity
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo, MediaInfo, SegmentInfo, Timestamp
from agent.evidence.sink import EvidenceSink
from agent.evidence.store import EvidenceStore

BITRATE = 1_000_000  # bytes/s: 8 Mbit/s, 1080p30 H.264
WRITE = 32 * 1024  # typical muxer write size
SYNC_EVERY = BITRATE  # the segment writer syncs about once per second of media


def seal_file(src: Path, dst: Path, recipient: list[object]) -> tuple[float, float]:
    """Stream ``src`` through an EvidenceSink into ``dst``; returns (wall s, cpu s)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = open(dst, "ab", buffering=0)  # noqa: SIM115 - the sink owns and closes it
    sink = EvidenceSink(out, recipient)  # type: ignore[arg-type]
    since_sync = 0
    with open(src, "rb", buffering=0) as f:
        while block := f.read(WRITE):
            sink.write(block)
            since_sync += len(block)
            if since_sync >= SYNC_EVERY:
                sink.sync()
                since_sync = 0
    sink.close()
    return time.perf_counter() - t0, time.process_time() - c0


def tools_file(src: Path, dst: Path, recipient: str) -> float:
    """The same work with the stock tools; returns wall seconds."""
    t0 = time.perf_counter()
    subprocess.run(["sha256sum", str(src)], check=True, capture_output=True)
    subprocess.run(["age", "-r", recipient, "-o", str(dst), str(src)], check=True)
    subprocess.run(["sha256sum", str(dst)], check=True, capture_output=True)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t0


def throughput(work: Path, mb: int, runs: int, ident: Identity) -> float:
    src = work / "plain.bin"
    with open(src, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))
    ours, theirs, cpu = [], [], []
    for _ in range(runs):
        for name in ("a.age", "b.age"):
            (work / name).unlink(missing_ok=True)
        wall, c = seal_file(src, work / "a.age", [ident.recipient])
        ours.append(wall)
        cpu.append(c)
        theirs.append(tools_file(src, work / "b.age", str(ident.recipient)))
    size = mb * (1 << 20) / 1e6
    o, t = size / statistics.median(ours), size / statistics.median(theirs)
    cpu_per_mb = statistics.median(cpu) / size
    print(f"throughput ({mb} MiB, median of {runs}, interleaved):")
    print(f"  EvidenceSink (sha256+age+sha256+fsync)  {o:8.1f} MB/s")
    print(f"  sha256sum + age -r + sha256sum + fsync  {t:8.1f} MB/s")
    print(f"  ratio ours/tools                        {o / t:8.2f}")
    print(f"  CPU per MB sealed                       {cpu_per_mb * 1000:8.2f} ms")
    print(f"  cost at 8 Mbit/s (1 MB/s)               {cpu_per_mb * 100:8.2f} % of one core")
    return cpu_per_mb


def _one_segment(store: EvidenceStore, seconds: int, block: bytes, i: int) -> tuple[float, Path]:
    """Write ``seconds`` of media at 1 MB/s (sync each second), then time the seal."""
    start = Timestamp(f"2026-11-27T10:00:{i % 60:02d}.000000Z", i)
    seg = store.open_segment(SegmentInfo(uuid.uuid4().hex, 0, start, ClockInfo("gps", 10)))
    per_sync = max(1, SYNC_EVERY // len(block))
    for k in range(seconds * BITRATE // len(block)):
        seg.sink.write(block)
        if (k + 1) % per_sync == 0:
            seg.sink.sync()
    t0 = time.perf_counter()
    store.seal(seg, end=Timestamp(start.utc, i + seconds * 1_000_000),
               media=MediaInfo(frames=seconds * 30, duration_us=seconds * 1_000_000))
    return (time.perf_counter() - t0) * 1000, seg.media_path


def latency(work: Path, rounds: int, ident: Identity) -> None:
    """Seal latency by segment length; sizes interleaved so machine load hits all alike."""
    data_dir = work / "data"
    key = DeviceKey.generate(data_dir / "keys" / "device.key")
    store = EvidenceStore(data_dir, key=key, recipients=[ident.recipient], encrypt=True,
                          device_id="BENCH-1")
    block = os.urandom(WRITE)
    plan = {10: 5, 60: 2, 300: 1}  # segments of each length per round
    samples: dict[int, list[float]] = {s: [] for s in plan}
    i = 0
    for _ in range(rounds):
        for seconds, count in plan.items():
            for _ in range(count):
                ms, path = _one_segment(store, seconds, block, i)
                samples[seconds].append(ms)
                path.unlink()  # bench only, after timing: keep the disk from filling
                i += 1
    store.close()
    print("seal latency (close → signed manifest + log leaf + checkpoint durable):")
    for seconds, values in samples.items():
        values.sort()
        p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
        print(f"  {seconds:4d} s segments ({seconds * BITRATE / 1e6:4.0f} MB, n={len(values):2d})"
              f"  p50 {statistics.median(values):7.1f} ms   p99 {p99:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=64, help="throughput test size in MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6,
                    help="latency rounds (each: 5×10 s, 2×60 s, 1×300 s segments)")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (evidence disk)")
    args = ap.parse_args()
    for tool in ("age", "sha256sum"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not installed")
    ident = Identity.generate()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        print(f"work dir {work} (cores: {os.cpu_count()}, load {os.getloadavg()[0]:.2f})")
        throughput(work, args.mb, args.runs, ident)
        latency(work, args.rounds, ident)


if __name__ == "__main__":
    main()
