#!/usr/bin/env python3
"""Memory of a long uptime: the whole agent records without end and its memory stays flat.

What grows with an agent's uptime grows per segment sealed (manifests, log entries, receipts,
status) or per unit of time (GPS fixes, clock samples, telemetry, events). This soak runs the
whole agent in this process -- simulated hardware, the replay camera at 320x240 15 fps, the
microphone, GPS on a pty, the policies, the evidence store and log -- recording continuously
in the shortest segments the configuration allows (2 s, a keyframe a second).

Time acceleration (``--speed N``): the camera and microphone deliver media N times faster
than real time on one shared media clock (:mod:`hw.sim_clock`), every frame and sample
stamped at its nominal period, so segments roll, the pre-roll spans and audio meets video on
media time exactly as at speed 1. A week of 60-second segments (10,080) takes 5.6 hours at
speed 1 and 34 minutes at speed 10. What sees real time only (reported per wall
hour): GPS fixes, the clock discipline and its drift samples, battery and storage polls,
telemetry and the camera watchdog (which counts frames per real second, so sees N times more
and never a false stall). What compares media stamps with the monotonic clock sees the
future, harmlessly for memory: manifests' UTC is dated ahead (by up to a week at the end), a
segment's GPS track holds the fixes that arrived while it was open (most 2 s segments, open
2/N s, hold none), the recorder's 600 ms give-up on late audio never fires (segments seal
when the audio reaches the boundary), and the bitrate meter reads N times the stream's rate.
``--speed`` is bounded by what the recorder keeps up with: the report gives the segment
worker's backlog, the frames the camera dropped and the index gaps the recorder saw, and a
sealing rate under 90 % of the media rate (N/2 segments a second) is a failure: the work
queued behind it would be memory growth that is not a leak.

After a warm-up (``--warmup`` segments, 250 by default, and at least ``--warmup-s`` of real
time, 180 s by default, which at speed 10 is the longer: caches, the encoder, and the windows
bounded by count or age -- the last 200 events, 150 s of GPS history (real seconds) -- full),
Python's allocations are traced (``tracemalloc``) and the process's RSS sampled; at the end
it prints the growth per sealed segment and per hour and the allocation sites that grew
most, and exits 1 if Python memory grew by more than ``--max-per-segment`` bytes per segment.

What may grow, by design: the evidence store's index of sealed segments and their receipts
(what a receipt and an eviction are checked against: two 32-byte digests, the sequence
number and the leaf index, ~250-280 bytes per segment with the dictionary's own growth) and
the log's leaf hashes and offsets (40 bytes per entry) -- both proportional to the evidence
log, about 3.5 MB for a week of continuous 60-second segments (the week's soak measured 559
bytes per segment in all); hence the default limit of 768 bytes per
segment, well under the ~2.5 kB a leaked manifest per segment would add.
Windows bounded by count that a short soak does not fill are reported apart, not
counted: the clock's drift samples against GPS (at most 3,600, one a second), the GPS fixes
the track keeps (at most 3,000) and the last 200 events.

    .venv/bin/python scripts/soak_memory.py [--segments 600] [--warmup 250] [--speed 1] [--json]

A week of segments (10,080 after the warm-up), in the background, 37 minutes on the 2-core
dev box (a 3-minute warm-up, then 4.95 segments sealed a second; 559 bytes per segment):

    nice -n 10 .venv/bin/python scripts/soak_memory.py --segments 10080 --speed 10 --json \
        > /tmp/soak-week.json
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.app import Agent  # noqa: E402
from agent.config import parse_config  # noqa: E402
from hw.factory import build_hardware  # noqa: E402
from hw.sim_clock import MAX_SPEED  # noqa: E402

# Allocation sites whose objects are kept only in windows bounded by count (see above).
BOUNDED_WINDOWS = ("agent/clock/discipline.py", "hw/gps_serial.py", "hw/gps_nmea.py",
                   "agent/recording/control.py")


def make_clip(directory: Path) -> Path:
    """A small H.264 clip (a keyframe a second) for the replay camera."""
    path = directory / "clip-320x240.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=15", "-t", "2", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=120)
    return path


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def wait_segments(agent: Agent, n: int, timeout_s: float) -> None:
    """Block until the agent has sealed ``n`` segments since it started."""
    deadline = time.monotonic() + timeout_s
    while len(agent.recorder.sealed) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: only {len(agent.recorder.sealed)} of {n} segments sealed "
                             f"in {timeout_s:.0f} s (state {agent.recorder.state})")
        time.sleep(0.5)


def pipeline(agent: Agent) -> dict[str, int]:
    """Whether the recorder keeps up: file work waiting, frames lost before and after it."""
    camera = agent.hw.camera
    return {"backlog": agent.recorder.backlog, "frames_gap": agent.recorder.frames_gap,
            "camera_dropped": int(getattr(camera, "frames_dropped", 0)),
            "camera_delivered": int(getattr(camera, "frames_delivered", 0))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=250)
    ap.add_argument("--warmup-s", type=float, default=180.0,
                    help="real seconds the warm-up lasts at least (windows bounded by age)")
    ap.add_argument("--max-per-segment", type=int, default=768)
    ap.add_argument("--speed", type=float, default=1.0,
                    help=f"media seconds per wall second, 1..{MAX_SPEED:g} (see above)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="keep the data directory (a week of segments is about 2 GB)")
    args = ap.parse_args()
    if not 1.0 <= args.speed <= MAX_SPEED:
        ap.error(f"--speed must be within 1..{MAX_SPEED:g}")
    segment_wall_s = 2 / args.speed  # a segment's wall time when the recorder keeps up
    work = Path(tempfile.mkdtemp(prefix="soak-memory-"))
    clip = make_clip(work)
    cfg = parse_config({"sim": {"camera": "replay", "replay": str(clip)},
                        "video": {"width": 320, "height": 240, "fps": 15, "bitrate": 400_000,
                                  "gop": 15},
                        "recording": {"prerecord_s": 5, "segment_s": 2},
                        "power": {"poll_s": 1.0}, "storage": {"poll_s": 1.0}})
    data = work / "data"
    data.mkdir()
    hardware = build_hardware(cfg, kind="sim", data_dir=data, speed=args.speed)
    agent = Agent(cfg, data_dir=data, hw_kind="sim", hardware=hardware)
    agent.start()
    wall0 = time.monotonic()
    try:
        agent.controller.call("start")
        wait_segments(agent, args.warmup, timeout_s=args.warmup * 2 * segment_wall_s + 60)
        time.sleep(max(0.0, wall0 + args.warmup_s - time.monotonic()))
        tracemalloc.start(10)
        base = tracemalloc.take_snapshot()
        seg0, t0, rss0 = len(agent.recorder.sealed), time.monotonic(), rss_mb()
        pipe0 = pipeline(agent)
        samples = [(0, rss0)]
        backlogs = [pipe0["backlog"]]
        step = max(1, args.segments // 20)
        for target in range(seg0 + step, seg0 + args.segments + 1, step):
            wait_segments(agent, target, timeout_s=step * 2 * segment_wall_s + 60)
            samples.append((target - seg0, rss_mb()))
            backlogs.append(agent.recorder.backlog)
        end = tracemalloc.take_snapshot()
        sealed, hours = len(agent.recorder.sealed) - seg0, (time.monotonic() - t0) / 3600
        state = str(agent.recorder.state)
        pipe1 = pipeline(agent)
    finally:
        agent.shutdown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    wall_total_s = time.monotonic() - wall0
    diffs = end.compare_to(base, "traceback")
    filling = [d for d in diffs
               if any(f.filename.endswith(BOUNDED_WINDOWS) for f in d.traceback)]
    diffs = [d for d in diffs if d not in filling]
    grown = sum(d.size_diff for d in diffs)
    top: list[dict[str, Any]] = [{"bytes": d.size_diff, "count": d.count_diff,
            "where": [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}"
                      for f in d.traceback[-3:]]}
           for d in sorted(diffs, key=lambda d: -d.size_diff)[:8] if d.size_diff > 0]
    per_segment = grown / max(1, sealed)
    media_hours = sealed * 2 / 3600
    doc: dict[str, Any] = {
        "speed": args.speed, "segments_sealed": sealed, "hours": round(hours, 3),
        "media_hours": round(media_hours, 3), "wall_s_total": round(wall_total_s, 1),
        "segments_per_wall_s": round(sealed / max(hours * 3600, 1e-9), 3),
        "state_at_end": state,
        "python_growth_bytes": grown, "python_growth_per_segment": round(per_segment, 1),
        "python_growth_per_hour": round(grown / max(hours, 1e-9)),
        "python_growth_per_media_hour": round(grown / max(media_hours, 1e-9)),
        "week_of_60s_segments_mb": round(per_segment * 10_080 / 2**20, 2),
        "bounded_window_filling_bytes": sum(d.size_diff for d in filling),
        "rss_mb_start": round(rss0, 1), "rss_mb_end": round(samples[-1][1], 1),
        "rss_mb_by_segment": [(n, round(r, 1)) for n, r in samples],
        "backlog_by_sample": backlogs,
        "frames_gap": pipe1["frames_gap"] - pipe0["frames_gap"],
        "camera_dropped": pipe1["camera_dropped"] - pipe0["camera_dropped"],
        "camera_delivered": pipe1["camera_delivered"] - pipe0["camera_delivered"],
        "top_growth": top,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{sealed} segments in {hours * 60:.1f} min at speed {args.speed:g} "
              f"({media_hours:.1f} h of media; backlog {backlogs[0]} → {backlogs[-1]}, "
              f"{doc['camera_dropped']} frames dropped); Python memory grew {grown} bytes "
              f"({per_segment:.0f} per segment; a week of 60 s segments: "
              f"{doc['week_of_60s_segments_mb']} MB); RSS {rss0:.1f} → {samples[-1][1]:.1f} MB; "
              f"bounded windows filled by {doc['bounded_window_filling_bytes']} bytes")
        for t in top:
            print(f"  {t['bytes']:>9} B {t['count']:>6} blocks  {' < '.join(reversed(t['where']))}")
    # Keeping up: segments sealed at (nearly) the rate media arrives; a recorder that falls
    # behind queues file work, and that growth is not a leak.
    keeps_up = doc["segments_per_wall_s"] >= 0.9 * args.speed / 2
    ok = per_segment <= args.max_per_segment and state == "recording" and keeps_up
    if not ok:
        print(f"soak: memory not flat ({per_segment:.0f} B per segment > "
              f"{args.max_per_segment}), recording stopped ({state}) or the recorder fell "
              f"behind ({doc['segments_per_wall_s']} segments/s at speed {args.speed:g})",
              file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
