#!/usr/bin/env python3
"""Does the camera simulator sustain 1080p30 in real time on this machine?

Runs :class:`hw.camera_sim.SimCamera` for ``--seconds`` (default 60) and reports frames
delivered against frames due (the baseline is the wall clock: 30 per second), frames dropped
because synthesis + libx264 fell behind, the capture thread's CPU share of one core, the
bitrate, and the frame-interval spread of the pts.

    .venv/bin/python scripts/bench_camera_sim.py [--seconds 60] [--width 1920 --height 1080]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

from hw.camera import EncodedFrame
from hw.camera_sim import SimCamera


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--bitrate", type=int, default=8_000_000)
    args = ap.parse_args()
    frames: list[EncodedFrame] = []
    cam = SimCamera(width=args.width, height=args.height, fps=args.fps, bitrate=args.bitrate,
                    device_id="BENCH-1", officer_id="0001")
    t0 = time.monotonic()
    cam.start(frames.append)
    time.sleep(args.seconds)
    cam.stop()
    wall = time.monotonic() - t0
    due = int(wall * args.fps)
    gaps = [(b.pts_us - a.pts_us) / 1000 for a, b in itertools.pairwise(frames)]
    result = {
        "resolution": f"{args.width}x{args.height}@{args.fps}",
        "seconds": round(wall, 2),
        "frames_due": due,
        "frames_delivered": len(frames),
        "delivered_ratio": round(len(frames) / due, 4) if due else None,
        "frames_dropped": cam.frames_dropped,
        "cpu_share_of_one_core": round(cam.cpu_seconds / wall, 3),
        "bitrate_mbps": round(sum(len(f.data) for f in frames) * 8 / wall / 1e6, 2),
        "frame_interval_ms": {"mean": round(statistics.fmean(gaps), 3), "max": max(gaps),
                              "min": min(gaps)} if gaps else None,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
