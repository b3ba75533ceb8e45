#!/usr/bin/env python3
"""Soak: a recording offloaded to a station that is SIGKILLed and restarted again and again.

The whole agent runs in this process on simulated hardware with ``[offload]`` pointed at a
loopback station (``bodycam station run`` in a child process, mutual TLS, the port kept across
restarts). It records for ``--minutes`` with ``--segment-s`` segments while the station is
killed every ``--kill-every`` seconds (at a random moment, so cuts land mid-upload, mid-
finalise and idle; ``--max-rate`` keeps the uploader busy about half the time) and restarted
after ``--down-s``. At the end it drains the backlog and
checks what a court would ask:

* every sealed segment is held by the station exactly once, verified (``station list
  --check``), and receipted on the device (an ``acknowledged`` log entry per segment);
* the bytes sent beyond the ciphertext total (what the kills cost);
* frames dropped by the camera (must be 0 on an unloaded machine);
* ``bodycam verify --station-key`` on the device passes.

    .venv/bin/python scripts/soak_offload.py [--minutes 10] [--kill-every 20] [--live]

Exit status 0 when every check holds. Not part of the test suite (it runs for minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.app import Agent
from agent.config import parse_config
from agent.offload.loopback import start_loopback


def _bodycam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, check=False, timeout=600)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--segment-s", type=int, default=10)
    ap.add_argument("--kill-every", type=float, default=20.0)
    ap.add_argument("--down-s", type=float, default=3.0)
    ap.add_argument("--live", action="store_true")
    ap.add_argument("--max-rate", type=int, default=2_000_000,
                    help="offload cap in bytes/s (about twice the recording's rate, so the "
                         "uploader is busy half the time and kills land mid-upload)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="soak-offload-"))
    cfg = parse_config({"video": {"width": args.width, "height": args.height},
                        "recording": {"prerecord_s": 5, "segment_s": args.segment_s}})
    cfg, station = start_loopback(cfg, data)
    cfg = dataclasses.replace(cfg, offload=dataclasses.replace(
        cfg.offload, live=args.live, retry_s=2.0, max_rate=args.max_rate))
    agent = Agent(cfg, data_dir=data, hw_kind="sim")
    kills = 0
    try:
        agent.start()
        off = agent.offloader
        assert off is not None and agent.hw.camera is not None
        dropped0 = agent.hw.camera.frames_dropped
        agent.controller.call("start")
        end = time.monotonic() + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(random.uniform(0.5, 1.5) * args.kill_every)
            station.kill()
            kills += 1
            time.sleep(args.down_s)
            station.start()
            st = off.status()
            print(f"kill {kills}: backlog {st.backlog}, receipts {st.receipts}, "
                  f"sent {st.bytes_sent / 1e6:.1f} MB", flush=True)
        agent.controller.call("stop")
        deadline = time.monotonic() + 300
        while (off.status().backlog or agent.recorder.state != "standby") and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        dropped = agent.hw.camera.frames_dropped - dropped0
        sent = off.status().bytes_sent
    finally:
        agent.shutdown()
        station.stop()
    envs = sorted((data / "recordings").glob("*/*.manifest.json"))
    manifests = [json.loads(e.read_text())["manifest"] for e in envs]
    total = sum(m["file"]["cipher_bytes"] for m in manifests)
    held = json.loads(_bodycam("station", "list", "--json", "--check", "--data-dir",
                               str(data / "station")).stdout)["segments"]
    seqs = [h["device_seq"] for h in held]
    key = json.loads(_bodycam("station", "info", "--json", "--data-dir",
                              str(data / "station")).stdout)["receipt_key"]
    verify = _bodycam("verify", str(data), "--station-key", key)
    result = {
        "minutes": args.minutes, "station_kills": kills, "segments": len(manifests),
        "held_by_station": len(held), "held_twice": len(seqs) - len(set(seqs)),
        "all_verified_at_station": all(h["state"] == "verified" for h in held),
        "device_seqs_missing_at_station": sorted({m["device_seq"] for m in manifests}
                                                 - set(seqs)),
        "cipher_mb": round(total / 1e6, 1), "sent_mb": round(sent / 1e6, 1),
        "resent_kb_per_kill": round((sent - total) / max(kills, 1) / 1e3, 1),
        "frames_dropped": dropped, "device_verify_exit": verify.returncode,
        "data_dir": str(data)}
    print(json.dumps(result, indent=2))
    ok = (not result["device_seqs_missing_at_station"] and result["held_twice"] == 0
          and result["all_verified_at_station"] and verify.returncode == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
