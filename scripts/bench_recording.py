#!/usr/bin/env python3
"""The recorder under a long HD recording: dropped frames, its own CPU, peak memory.

Runs the whole agent in this process on simulated hardware (1080p30 by default, 30 s pre-roll,
60 s segments, GPS, battery and storage policies all running), waits for the pre-event buffer
to fill, records ``--minutes`` (default 10), stops and shuts down. Reports:

* frames the camera delivered vs frames in the sealed segments (must be equal: 0 dropped);
* the agent's own CPU per recorded minute -- process CPU minus the simulator's capture
  threads (frame synthesis and libx264 stand in for the Pi's hardware encoder) -- and, as the
  baseline run side by side, the CPU of a bare PyAV remux of the same encoded segments into
  fragmented MP4 (no hashing, no encryption, no policies): the ratio is the recorder's price;
* peak RSS with the pre-event buffer full (target ≤ 150 MB).

    .venv/bin/python scripts/bench_recording.py [--minutes 10] [--width 1920 --height 1080]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import tempfile
import time
from pathlib import Path

import av

from agent.app import Agent
from agent.config import parse_config
from agent.evidence.age import AgeDecryptor, Identity
from agent.evidence.canonical import parse_canonical


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _remux_cpu(plain: bytes) -> tuple[float, float]:
    """CPU seconds to remux one segment with bare PyAV, and the media seconds it holds."""
    t0 = time.process_time()
    src = av.open(io.BytesIO(plain))
    out = av.open(io.BytesIO(), "w", format="mp4",
                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
    last = 0.0
    for pkt in src.demux():
        if pkt.dts is None:
            continue
        pkt.stream = streams[pkt.stream_index]
        if pkt.pts is not None and pkt.time_base is not None:
            last = max(last, float(pkt.pts * pkt.time_base))
        out.mux(pkt)
    out.close()
    return time.process_time() - t0, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--prerecord", type=int, default=30)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-rec-"))
    cfg = parse_config({
        "video": {"width": args.width, "height": args.height},
        "recording": {"prerecord_s": args.prerecord, "segment_s": 60},
        "power": {"poll_s": 1.0},
    })
    agent = Agent(cfg, data_dir=data, hw_kind="sim")
    agent.start()
    cam, mic = agent.hw.camera, agent.hw.microphone
    assert cam is not None and mic is not None
    while agent.recorder.preroll.span_s < args.prerecord:
        time.sleep(0.5)
    rss_preroll_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dropped0, gap0 = cam.frames_dropped, agent.recorder.frames_gap
    cpu0, cam0, mic0, t0 = _cpu(), cam.cpu_seconds, mic.cpu_seconds, time.monotonic()
    agent.controller.call("start")
    time.sleep(args.minutes * 60)
    agent.controller.call("stop")
    while agent.recorder.state != "standby":
        time.sleep(0.05)
    wall = time.monotonic() - t0
    agent_cpu = (_cpu() - cpu0) - (cam.cpu_seconds - cam0) - (mic.cpu_seconds - mic0)
    sim_cpu = (cam.cpu_seconds - cam0) + (mic.cpu_seconds - mic0)
    max_queue = agent.controller.max_queue
    dropped, gap = cam.frames_dropped - dropped0, agent.recorder.frames_gap - gap0
    agent.shutdown()

    ident = Identity.parse((data / "sim-agency.key").read_text().strip().splitlines()[-1])
    envs = sorted((data / "recordings").glob("*/*.manifest.json"))
    ms = [parse_canonical(e.read_bytes())["manifest"] for e in envs]
    frames = sum(m["media"]["frames"] for m in ms)
    missing = sum(m["media"]["video"]["missing_frames"] for m in ms)
    span = ms[-1]["media"]["video"]["last_index"] - ms[0]["media"]["video"]["first_index"] + 1
    remux_cpu = remux_media = 0.0
    for env, m in zip(envs, ms, strict=True):
        dec = AgeDecryptor([ident])
        plain = dec.update(env.with_name(m["file"]["name"]).read_bytes()) + dec.finalize()
        c, s = _remux_cpu(plain)
        remux_cpu, remux_media = remux_cpu + c, remux_media + s
    rec_min = wall / 60
    result = {
        "resolution": f"{args.width}x{args.height}@30",
        "recorded_minutes": round(rec_min, 2),
        "segments": len(ms),
        "frames_in_segments": frames,
        "frames_spanned": span,
        "frames_missing": missing,
        "camera_frames_dropped": dropped,
        "recorder_index_gaps": gap,
        "controller_queue_max": max_queue,
        "agent_cpu_s_per_recorded_min": round(agent_cpu / rec_min, 3),
        "simulator_cpu_s_per_recorded_min": round(sim_cpu / rec_min, 3),
        "bare_pyav_remux_cpu_s_per_min": round(remux_cpu / (remux_media / 60), 3),
        "ratio_agent_vs_remux": round((agent_cpu / rec_min) / (remux_cpu / (remux_media / 60)), 2),
        "agent_share_of_one_core": round(agent_cpu / wall, 3),
        "peak_rss_mb_preroll_full": round(rss_preroll_mb, 1),
        "peak_rss_mb_end": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "data_dir": str(data),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
