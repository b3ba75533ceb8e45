#!/usr/bin/env python3
"""Collection-station benchmark: verification and upload throughput against stock tools.

A real station (``bodycam station run``, mutual TLS on loopback, SQLite index) and a
simulated recorder with a real key and log. Runs are interleaved (A B A B …) so both sides
see the same machine load; the best run of each is reported.

1. Verification — ``finalise`` of one segment of ``--mb`` MiB: the station re-reads the
   ciphertext from disk and hashes it, checks the manifest and checkpoint signatures, the
   inclusion and consistency proofs, links the file into the store and fsyncs, signs and
   stores the receipt — end to end, measured by the client — against ``sha256sum`` of the
   same bytes (which does only the hashing).
2. Upload — the same bytes with our client (a) in checksummed 8 MiB PATCHes, each verified
   and fsynced before the next, and (b) streamed in one PATCH, against ``curl`` sending the
   same bytes in one tus PATCH to the same station with the same client certificate.

Usage: ``python scripts/bench_station.py [--mb 128] [--runs 3] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.station.conftest import enrol_direct  # (after the sys.path line, as powercut.py)
from tests.station.harness import SimRecorder, StationProcess, make_pki, station_config

DEVICE = "BC-BENCH-0001"


def _mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def _curl_patch(url: str, upload: str, media: Path, pki: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-X", "PATCH", "-T", str(media),
                    "--cacert", str(pki / "ca.crt"), "--cert", str(pki / f"{DEVICE}.crt"),
                    "--key", str(pki / f"{DEVICE}.key"),
                    "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                    "-H", "Content-Type: application/offset+octet-stream",
                    "-H", "Expect:", "-o", "/dev/null", url + upload], check=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=128, help="segment size in MiB")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    if shutil.which("curl") is None or shutil.which("sha256sum") is None:
        print("bench_station: needs curl and sha256sum", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-station-", dir=args.dir))
    pki = make_pki(work / "pki", [DEVICE])
    cfg = station_config(work / "station.toml", pki, max_upload_bytes=(args.mb + 1) << 20,
                         min_free_bytes=0, max_uploads_per_device=1000)
    st = StationProcess(cfg, work / "station").start()
    rec = SimRecorder(work / "device", DEVICE, pki)
    enrol_direct(st.data_dir, rec)
    size = args.mb << 20
    times: dict[str, list[float]] = {k: [] for k in ("verify", "sha256sum", "client-chunked",
                                                     "client-stream", "curl")}
    try:
        with rec.client(st.url, chunk_bytes=8 << 20) as c:
            for _ in range(args.runs):
                seg = rec.seal(os.urandom(size))
                t = time.perf_counter()
                upload = c.upload_file(DEVICE, seg.media)
                times["client-chunked"].append(time.perf_counter() - t)
                t = time.perf_counter()
                c.finalise(DEVICE, upload, manifest=seg.manifest, entry=seg.entry,
                           leaf_index=seg.index, log=rec.log)
                times["verify"].append(time.perf_counter() - t)
                t = time.perf_counter()
                subprocess.run(["sha256sum", str(seg.media)], check=True, capture_output=True)
                times["sha256sum"].append(time.perf_counter() - t)
                up = c.create_upload(DEVICE, size)
                times["curl"].append(_curl_patch(st.url, up, seg.media, pki))
                up = c.create_upload(DEVICE, size)
                t = time.perf_counter()
                c.upload_file(DEVICE, seg.media, upload=up, checksum=False)
                times["client-stream"].append(time.perf_counter() - t)
                seg.media.unlink()
    finally:
        rec.close()
        st.stop()
    best = {k: _mbps(size, min(v)) for k, v in times.items()}
    print(f"segment {args.mb} MiB, best of {args.runs} interleaved runs, loopback mutual TLS")
    print(f"  verify (finalise, end to end)   {best['verify']:8.0f} MB/s   sha256sum "
          f"{best['sha256sum']:8.0f} MB/s   ratio {best['verify'] / best['sha256sum']:.2f}")
    print(f"  upload, our client, 8 MiB PATCHes with checksum "
          f"{best['client-chunked']:8.0f} MB/s   ratio to curl "
          f"{best['client-chunked'] / best['curl']:.2f}")
    print(f"  upload, our client, one streamed PATCH          "
          f"{best['client-stream']:8.0f} MB/s   ratio to curl "
          f"{best['client-stream'] / best['curl']:.2f}")
    print(f"  upload, curl, one PATCH                         {best['curl']:8.0f} MB/s")
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
