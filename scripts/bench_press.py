#!/usr/bin/env python3
"""Press → start feedback, with a full pre-event buffer: p50/p99 over many presses.

The whole agent runs in this process on simulated hardware with the replay camera (a 1080p
clip at ~8 Mbit/s, as a hardware encoder delivers it) and the simulated microphone. Before
each press the pre-event buffer is topped up to ``--prerecord`` seconds with history made of
the clip's access units and AAC packets (a buffer would otherwise take that long to fill):
then a start command goes into the controller queue and the clock stops when the recorder
emits ``recording_started`` -- the event the buzzer and LED answer. Also measured per press:
the controller queue right after the event (a backlog means the officer's next press waits),
and how long until the pre-roll is written and fsynced (the segment worker's backlog empty).

    .venv/bin/python scripts/bench_press.py [--presses 30] [--prerecord 30 120]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.app import Agent
from agent.config import parse_config
from agent.recording.aac import AacEncoder
from agent.recording.packets import MediaPacket
from agent.side_channel import SideChannel
from hw.audio import AudioChunk
from hw.camera_replay import load_clip


def make_clip(directory: Path) -> Path:
    path = directory / "clip-1080p.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1920x1080:rate=30", "-t", "2", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "30", "-bf", "0", "-b:v", "8M", "-maxrate", "8M",
                    "-bufsize", "8M", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=300)
    return path


def history(clip: Path, agent: Agent, seconds: float) -> list[tuple[str, bytes, int, int, bool]]:
    """``seconds`` of media relative to 0 (the newest packet just before 0)."""
    frames = load_clip(clip).frames
    fps = agent.hw.camera.format.fps if agent.hw.camera else 30
    n = int(seconds * fps) + fps  # one GOP more: the buffer starts on a keyframe
    n -= n % len(frames)
    interval = 1_000_000 // fps
    out = [("video", frames[k % len(frames)][0], (k - n) * interval, interval,
            frames[k % len(frames)][1]) for k in range(n)]
    mic = agent.hw.microphone
    if mic is not None:
        enc = AacEncoder(mic.format, bitrate=agent.cfg.audio.bitrate)
        rate = mic.format.sample_rate
        chunk = rate // 10
        t = -n * interval
        while t < 0:
            pts = t + 10**12  # the encoder wants non-negative time; shifted back below
            pcm = bytes(2 * chunk * mic.format.channels)
            for p in enc.encode(AudioChunk(pcm, pts, chunk)):
                out.append(("audio", p.data, p.pts_us - 10**12, p.duration_us, False))
            t += chunk * 1_000_000 // rate
    out.sort(key=lambda r: r[2])
    return out


def top_up(agent: Agent, hist: list[tuple[str, bytes, int, int, bool]]) -> None:
    """On the controller thread: the buffer becomes the history, then what it held live."""
    done = threading.Event()

    def fill() -> None:
        rec = agent.recorder
        if agent.aac is not None:  # the audio held back in standby joins the ring first
            for p in agent.aac.release():
                rec.preroll.push(p)
        live = rec.preroll.drain()
        first = next((p for p in live if p.kind == "video"), None)
        base = first.pts_us if first is not None else time.monotonic_ns() // 1000
        index0 = (first.index if first is not None else rec.last_video_index) - sum(
            1 for h in hist if h[0] == "video")
        i = index0
        # the history's audio must end where the live audio begins (the muxer drops an
        # audio packet that does not follow the one before it): the ring's, or, when the
        # ring holds none, what the encoder still has in flight (its own delay, ~2 frames)
        live_audio = next((p.pts_us for p in live if p.kind == "audio"), base - 100_000)
        for kind, data, rel, dur, key in hist:
            if kind == "video":
                rec.preroll.push(MediaPacket("video", data, base + rel, dur, key, i))
                i += 1
            elif base + rel + dur <= live_audio:
                rec.preroll.push(MediaPacket("audio", data, base + rel, dur))
        for p in live:
            rec.preroll.push(p)
        done.set()

    agent.controller.post("call", fill)
    done.wait(30)


def press_once(agent: Agent) -> dict[str, float]:
    started = threading.Event()
    at: dict[str, float] = {}
    rec = agent.recorder
    original = rec.events

    def spy(kind: str, data: dict[str, Any]) -> None:
        if kind == "recording_started":
            at["event"] = time.perf_counter()
            at["queue"] = agent.controller.queue_depth()
            started.set()
        original(kind, data)

    rec.events = SideChannel("press bench spy", spy)
    t0 = time.perf_counter()
    agent.controller.call("start")
    started.wait(30)
    rec.events = original
    while rec.backlog:  # the pre-roll written and fsynced by the worker
        time.sleep(0.002)
    durable = time.perf_counter()
    queue_after = max(at["queue"], agent.controller.queue_depth())
    agent.controller.call("stop")
    while rec.state != "standby":
        time.sleep(0.01)
    return {"feedback_ms": (at["event"] - t0) * 1000, "preroll_durable_ms": (durable - t0) * 1000,
            "queue_after": queue_after}


def run(prerecord: int, presses: int, clip: Path) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="bench-press-"))
    cfg = parse_config({
        "sim": {"camera": "replay", "replay": str(clip), "gps_route": "none"},
        "recording": {"prerecord_s": prerecord, "segment_s": 60},
    })
    agent = Agent(cfg, data_dir=data, hw_kind="sim")
    agent.start()
    try:
        while agent.recorder.last_video_index < 30:
            time.sleep(0.05)
        hist = history(clip, agent, prerecord)
        results = []
        for _ in range(presses):
            top_up(agent, hist)
            results.append(press_once(agent))
    finally:
        agent.shutdown()
    fb = sorted(r["feedback_ms"] for r in results)
    dur = sorted(r["preroll_durable_ms"] for r in results)

    def p99(xs: list[float]) -> float:
        return xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]

    return {"prerecord_s": prerecord, "presses": presses,
            "preroll_mb": round(sum(len(h[1]) for h in hist) / 1e6, 1),
            "feedback_ms_p50": round(statistics.median(fb), 1), "feedback_ms_p99": round(p99(fb), 1),
            "preroll_durable_ms_p50": round(statistics.median(dur), 1),
            "preroll_durable_ms_p99": round(p99(dur), 1),
            "controller_queue_after_press_max": max(r["queue_after"] for r in results)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=30)
    ap.add_argument("--prerecord", type=int, nargs="+", default=[30, 120])
    args = ap.parse_args()
    clip = make_clip(Path(tempfile.mkdtemp(prefix="bench-press-clip-")))
    for p in args.prerecord:
        print(json.dumps(run(p, args.presses, clip)))


if __name__ == "__main__":
    main()
