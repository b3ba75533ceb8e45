#!/usr/bin/env python3
"""Memory of a long uptime: the whole agent records without end and its memory stays flat.

What grows with an agent's uptime grows per segment sealed (manifests, log entries, receipts,
status) or per unit of time (GPS fixes, clock samples, telemetry, events). This soak runs the
whole agent in this process -- simulated hardware, the replay camera at 320x240 15 fps, the
microphone, GPS on a pty, the policies, the evidence store and log -- recording continuously
in the shortest segments the configuration allows (2 s, a keyframe a second), so a week's
worth of 60-second segments (10,080) is sealed in 5.6 hours instead of seven days; time-driven
state sees real time only, and is reported per hour.

After a warm-up (``--warmup`` segments, 250 by default: caches, the encoder, and the
windows bounded by count or age -- the last 200 events, 150 s of GPS history -- full),
Python's allocations are traced (``tracemalloc``) and the process's RSS sampled; at the end
it prints the growth per sealed segment and per hour and the allocation sites that grew
most, and exits 1 if Python memory grew by more than ``--max-per-segment`` bytes per segment.

What may grow, by design: the evidence store's index of sealed segments and their receipts
(what a receipt and an eviction are checked against: two hex digests, the sequence number
and the leaf index, ~400 bytes per segment with the dictionary's own growth) and the log's
leaf hashes and offsets (40 bytes per entry) -- both proportional to the evidence log, about
4.5 MB for a week of continuous 60-second segments; hence the default limit of 768 bytes per
segment, well under the ~2.5 kB a leaked manifest per segment would add.
Windows bounded by count that a short soak does not fill are reported apart, not
counted: the clock's drift samples against GPS (at most 3,600, one a second), the GPS fixes
the track keeps (at most 3,000) and the last 200 events.

    .venv/bin/python scripts/soak_memory.py [--segments 600] [--warmup 250] [--json]
    .venv/bin/python scripts/soak_memory.py --segments 10080     # a week of segments, ~5.6 h
"""

from __future__ import annotations

import argparse
import json
import resource
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
            raise SystemExit(f"soak: only {len(agent.recording.recorder.sealed)} of {n} segments sealed "
                             f"in {timeout_s:.0f} s (state {agent.recording.recorder.state})")
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=250)
    ap.add_argument("--max-per-segment", type=int, default=768)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-memory-"))
    clip = make_clip(work)
    cfg = parse_config({"sim": {"camera": "replay", "replay": str(clip)},
                        "video": {"width": 320, "height": 240, "fps": 15, "bitrate": 400_000,
                                  "gop": 15},
                        "recording": {"prerecord_s": 5, "segment_s": 2},
                        "power": {"poll_s": 1.0}, "storage": {"poll_s": 1.0}})
    agent = Agent(cfg, data_dir=work / "data", hw_kind="sim")
    agent.start()
    try:
        agent.controller.call("start")
        wait_segments(agent, args.warmup, timeout_s=args.warmup * 4 + 60)
        tracemalloc.start(10)
        base = tracemalloc.take_snapshot()
        seg0, t0, rss0 = len(agent.recorder.sealed), time.monotonic(), rss_mb()
        samples = [(0, rss0)]
        step = max(1, args.segments // 20)
        for target in range(seg0 + step, seg0 + args.segments + 1, step):
            wait_segments(agent, target, timeout_s=step * 4 + 60)
            samples.append((target - seg0, rss_mb()))
        end = tracemalloc.take_snapshot()
        sealed, hours = len(agent.recorder.sealed) - seg0, (time.monotonic() - t0) / 3600
        state = str(agent.recorder.state)
    finally:
        agent.shutdown()
    diffs = end.compare_to(base, "traceback")
    filling = [d for d in diffs
               if any(f.filename.endswith(BOUNDED_WINDOWS) for f in d.traceback)]
    diffs = [d for d in diffs if d not in filling]
    grown = sum(d.size_diff for d in diffs)
    top = [{"bytes": d.size_diff, "count": d.count_diff,
            "where": [f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}"
                      for f in d.traceback[-3:]]}
           for d in sorted(diffs, key=lambda d: -d.size_diff)[:8] if d.size_diff > 0]
    per_segment = grown / max(1, sealed)
    doc: dict[str, Any] = {
        "segments_sealed": sealed, "hours": round(hours, 3), "state_at_end": state,
        "python_growth_bytes": grown, "python_growth_per_segment": round(per_segment, 1),
        "python_growth_per_hour": round(grown / max(hours, 1e-9)),
        "week_of_60s_segments_mb": round(per_segment * 10_080 / 2**20, 2),
        "bounded_window_filling_bytes": sum(d.size_diff for d in filling),
        "rss_mb_start": round(rss0, 1), "rss_mb_end": round(samples[-1][1], 1),
        "rss_mb_by_segment": [(n, round(r, 1)) for n, r in samples],
        "top_growth": top,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{sealed} segments in {hours * 60:.1f} min; Python memory grew {grown} bytes "
              f"({per_segment:.0f} per segment; a week of 60 s segments: "
              f"{doc['week_of_60s_segments_mb']} MB); RSS {rss0:.1f} → {samples[-1][1]:.1f} MB; "
              f"bounded windows filled by {doc['bounded_window_filling_bytes']} bytes")
        for t in top:
            print(f"  {t['bytes']:>9} B {t['count']:>6} blocks  {' < '.join(reversed(t['where']))}")
    ok = per_segment <= args.max_per_segment and state == "recording"
    if not ok:
        print(f"soak: memory not flat ({per_segment:.0f} B per segment > "
              f"{args.max_per_segment}) or recording stopped ({state})", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
