#!/usr/bin/env python3
"""Content Credentials benchmark: what a C2PA sidecar costs per segment, against sealing.

For each segment length (default 10 s and 60 s at 1080p30's 8 Mbit/s = 1 MB/s), ``--rounds``
segments are written through the real ``EvidenceStore`` (sink: SHA-256 → age → SHA-256 →
append + fsync about once a second, then seal: signed manifest, log leaf, checkpoint), once
without and once with the C2PA port, interleaved so both see the same machine load. Printed:

* the segment's own cost (write + seal, wall and process CPU, median);
* the credential's cost (the after-seal port alone: build claim, Ed25519 sign, atomic write of
  ``<stem>.c2pa``; median and p99), as a ratio of the segment's cost, and per recorded minute;
* the sidecar's size and its overhead against the ciphertext;
* resident memory: the C2PA library's load (RSS before/after ``import c2pa``) and growth over
  all credentials issued (a leak would show here);
* validation at the station: ``c2pa_status`` on the decrypted segment (reads it once), MB/s.

Usage: ``python scripts/bench_c2pa.py [--seconds 10,60] [--rounds 5] [--bitrate 1000000]
[--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from agent.evidence.age import Identity, Recipient
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import (
    ClockInfo,
    GpsSummary,
    MediaInfo,
    Position,
    SegmentInfo,
    SignedManifest,
    Timestamp,
)
from agent.evidence.store import EvidenceStore

WRITE = 32 * 1024  # typical muxer write size


def rss_kb() -> int:
    """Current resident set size (kB) from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def write_segment(store: EvidenceStore, payload: bytes, bitrate: int, seq: int) -> float:
    """Write ``payload`` through a segment's sink and seal it; returns process CPU seconds."""
    c0 = time.process_time()
    info = SegmentInfo(recording_id=uuid.uuid4().hex, seq=seq,
                       start=Timestamp("2026-11-27T10:00:00.000000Z", seq * 1_000_000),
                       clock=ClockInfo("gps", 20), officer_id="O-17", unit="U-3",
                       boot_id="b0" * 16)
    seg = store.open_segment(info)
    since = 0
    for i in range(0, len(payload), WRITE):
        seg.sink.write(payload[i:i + WRITE])
        since += WRITE
        if since >= bitrate:
            seg.sink.sync()
            since = 0
    fix = Position("2026-11-27T10:00:00.000000Z", 524_123_456, 133_987_654, 41_000)
    store.seal(seg, end=Timestamp("2026-11-27T10:01:00.000000Z", (seq + 60) * 1_000_000),
               media=MediaInfo(video={"codec": "h264", "width": 1920}, frames=1800,
                               duration_us=60_000_000),
               gps=GpsSummary(fix, fix, (fix,)), matter={"id": "M-1", "kind": "stop"})
    return time.process_time() - c0


class TimedPort:
    """Wraps the C2PA port to time it alone (wall, CPU) for each segment."""

    def __init__(self, port: Callable[[Path, SignedManifest], None]) -> None:
        self.port = port
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.paths: list[Path] = []
        self.last: SignedManifest | None = None

    def __call__(self, media: Path, signed: SignedManifest) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        self.port(media, signed)
        self.wall.append(time.perf_counter() - t0)
        self.cpu.append(time.process_time() - c0)
        self.paths.append(media)
        self.last = signed


def leak_check(timed: TimedPort, base: Path, n: int = 500) -> None:
    """Issue ``n`` more credentials for the last segment; RSS must not grow with ``n``."""
    from agent.c2pa import ContentCredentials
    port = timed.port
    assert isinstance(port, ContentCredentials) and timed.last is not None
    target = base / "leak" / "x.mp4.age"
    target.parent.mkdir()
    port.issue(target, timed.last)
    before = rss_kb()
    t0 = time.perf_counter()
    for _ in range(n):
        port.issue(target, timed.last)
    took = time.perf_counter() - t0
    print(f"\n{n} more credentials: {took / n * 1000:.2f} ms each (wall), "
          f"RSS {before / 1024:.1f} → {rss_kb() / 1024:.1f} MB")


def p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", default="10,60", help="segment lengths in seconds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bitrate", type=int, default=1_000_000, help="bytes per second")
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-c2pa-", dir=args.dir))
    ident = Identity.generate()
    (base / "agency.key").write_text(str(ident) + "\n")
    recipient: Recipient = ident.recipient

    rss0 = rss_kb()
    import c2pa  # noqa: F401 -- measured: the reference library's resident cost

    from agent.c2pa import c2pa_status, credential_path
    from agent.c2pa.port import after_seal_port
    rss_lib = rss_kb()

    def store(name: str, port: TimedPort | None) -> EvidenceStore:
        d = base / name
        DeviceKey.generate(d / "keys" / "device.key")
        return EvidenceStore(d, key=DeviceKey.load(d / "keys" / "device.key"),
                             recipients=[recipient], encrypt=True, device_id="BC-0001",
                             after_seal=port)

    timed = TimedPort(after_seal_port(base / "with", "BC-0001", test_ca=True))
    plain_store, c2pa_store = store("without", None), store("with", timed)
    anchor = (base / "with" / "state" / "c2pa-test-ca" / "ca.crt").read_bytes()
    print(f"C2PA library load: RSS {rss0 / 1024:.1f} → {rss_lib / 1024:.1f} MB "
          f"(+{(rss_lib - rss0) / 1024:.1f} MB)")
    for secs in (int(s) for s in args.seconds.split(",")):
        payload = os.urandom(secs * args.bitrate)  # incompressible, like H.264
        without: list[float] = []
        with_: list[float] = []
        first = len(timed.wall)
        for r in range(args.rounds):
            without.append(write_segment(plain_store, payload, args.bitrate, r))
            with_.append(write_segment(c2pa_store, payload, args.bitrate, r))
        cred_cpu = timed.cpu[first:]
        cred_wall = timed.wall[first:]
        seg = statistics.median(without)
        sizes = [credential_path(p).stat().st_size for p in timed.paths[first:]]
        cipher = timed.paths[first].stat().st_size
        print(f"\n{secs} s segments ({secs * args.bitrate / 1e6:.0f} MB), {args.rounds} rounds")
        print(f"  segment write + seal, CPU: median {seg * 1000:.0f} ms without C2PA, "
              f"{statistics.median(with_) * 1000:.0f} ms with")
        print(f"  credential alone: CPU median {statistics.median(cred_cpu) * 1000:.2f} ms, "
              f"wall median {statistics.median(cred_wall) * 1000:.2f} ms, "
              f"p99 {p99(cred_wall) * 1000:.2f} ms")
        print(f"  ratio credential / segment sealing cost (CPU): "
              f"{statistics.median(cred_cpu) / seg:.5f} "
              f"({100 * statistics.median(cred_cpu) / seg:.3f} %)")
        per_min = statistics.median(cred_cpu) * 60 / secs
        print(f"  per recorded minute: {per_min * 1000:.2f} ms CPU for credentials")
        print(f"  sidecar {statistics.median(sizes):.0f} bytes = "
              f"{100 * statistics.median(sizes) / cipher:.4f} % of the {cipher} byte ciphertext")
        media = timed.paths[first]
        plain = base / "clerk" / media.name.removesuffix(".age")
        plain.parent.mkdir(exist_ok=True)
        subprocess.run(["age", "-d", "-i", str(base / "agency.key"), "-o", str(plain),
                        str(media)], check=True)
        os.link(credential_path(media), credential_path(plain))
        t0 = time.perf_counter()
        state, reason = c2pa_status(plain, anchor)
        took = time.perf_counter() - t0
        print(f"  station validation: {state} ({reason}) in {took * 1000:.0f} ms = "
              f"{plain.stat().st_size / 1e6 / took:.0f} MB/s")
        plain.unlink()
    leak_check(timed, base)
    plain_store.close()
    c2pa_store.close()
    print(f"(files left in {base})")


if __name__ == "__main__":
    main()
