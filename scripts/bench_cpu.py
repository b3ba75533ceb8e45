#!/usr/bin/env python3
"""The agent's own CPU, standby and recording, against a bare PyAV script doing the same media work.

The whole agent runs in this process (1080p30 at ~8 Mbit/s from the replay camera -- a
hardware encoder's cost, ~0 -- the simulated microphone, GPS on a pty, battery and storage
policies, 30 s pre-roll, 60 s segments). Measured from the process's CPU time minus the
microphone simulator's synthesis thread:

* standby: CPU per minute while the pre-event buffer is full (AAC encoding, ring upkeep, GPS,
  policies);
* recording: CPU per recorded minute (plus muxing, hashing, encryption, fsyncs, seals);
* peak RSS (the pre-roll is full in both phases).

The baseline is a minimal PyAV script doing the same media work for the same media time with
the SAME audio settings (sample rate, channels, AAC bitrate and coder, chunk size): libavcodec AAC
encoding of the PCM and fragmented-MP4 muxing of the clip's H.264 and the AAC packets into
memory -- no hashing, no encryption, no evidence. Standby's bare cost is the AAC encoding alone.

    .venv/bin/python scripts/bench_cpu.py [--record 60] [--standby 20]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from agent.app import Agent
from agent.config import parse_config
from hw.camera_replay import load_clip


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_clip(directory: Path) -> Path:
    path = directory / "clip-1080p.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1920x1080:rate=30", "-t", "2", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "30", "-bf", "0", "-b:v", "8M", "-maxrate", "8M",
                    "-bufsize", "8M", "-pix_fmt", "yuv420p", str(path)], check=True, timeout=300)
    return path


def baseline(clip: Path, seconds: float, *, rate: int, channels: int, bitrate: int,
             chunk: int, coder: str) -> tuple[float, float]:
    """(CPU s for AAC alone, CPU s for AAC + mux) over ``seconds`` of media."""
    frames = load_clip(clip).frames
    pcm = (np.sin(np.arange(chunk * channels) * 0.05) * 8000).astype(np.int16)
    layout = "mono" if channels == 1 else "stereo"
    t0 = time.process_time()
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = rate, layout, "fltp", bitrate
    enc.time_base = Fraction(1, rate)
    enc.options = {"aac_coder": coder}
    enc.open()
    aac = []
    for i in range(int(seconds * rate / chunk)):
        f = av.AudioFrame.from_ndarray((pcm.astype(np.float32) / 32768).reshape(1, -1),
                                       format="flt", layout=layout)
        f.sample_rate, f.pts = rate, i * chunk
        aac += [bytes(p) for p in enc.encode(f)]
    audio_cpu = time.process_time() - t0
    out = av.open(io.BytesIO(), "w", format="mp4",
                  options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    vs = out.add_mux_stream("h264", rate=30, width=1920, height=1080)
    vs.time_base = Fraction(1, 90_000)
    ast = out.add_stream("aac", rate=rate)
    ast.codec_context.layout, ast.codec_context.bit_rate = layout, bitrate
    ast.time_base = Fraction(1, rate)
    n_video = int(seconds * 30)
    a = 0
    for k in range(n_video):
        data, key = frames[k % len(frames)]
        p = av.Packet(data)
        p.stream, p.time_base, p.pts, p.dts, p.duration = vs, vs.time_base, k * 3000, k * 3000, 3000
        p.is_keyframe = key
        out.mux(p)
        while a < len(aac) and a * 1024 * 30 < (k + 1) * rate:
            q = av.Packet(aac[a])
            q.stream, q.time_base, q.pts, q.dts, q.duration = ast, ast.time_base, a * 1024, a * 1024, 1024
            out.mux(q)
            a += 1
    out.close()
    return audio_cpu, time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", type=float, default=60.0)
    ap.add_argument("--standby", type=float, default=20.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    clip = make_clip(work)
    cfg = parse_config({"sim": {"camera": "replay", "replay": str(clip)},
                        "recording": {"prerecord_s": 30, "segment_s": 60},
                        "power": {"poll_s": 1.0}})
    agent = Agent(cfg, data_dir=work / "data", hw_kind="sim")
    agent.start()
    mic = agent.hw.microphone
    assert mic is not None
    mic_cpu = getattr(mic, "cpu_seconds", 0.0)
    while agent.recorder.preroll.span_s < 30:
        time.sleep(0.5)
    c0, m0, t0 = _cpu(), mic.cpu_seconds, time.monotonic()  # type: ignore[attr-defined]
    time.sleep(args.standby)
    standby = ((_cpu() - c0) - (mic.cpu_seconds - m0)) / ((time.monotonic() - t0) / 60)  # type: ignore[attr-defined]
    rss_standby = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    c0, m0, t0 = _cpu(), mic.cpu_seconds, time.monotonic()  # type: ignore[attr-defined]
    agent.controller.call("start")
    time.sleep(args.record)
    agent.controller.call("stop")
    while agent.recorder.state != "standby":
        time.sleep(0.05)
    wall = time.monotonic() - t0
    recording = ((_cpu() - c0) - (mic.cpu_seconds - m0)) / (wall / 60)  # type: ignore[attr-defined]
    rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    chunks = agent.controller.audio_chunks_in
    agent.shutdown()
    a = cfg.audio
    chunk = max(1, a.sample_rate * a.chunk_ms // 1000)
    audio_cpu, media_cpu = baseline(clip, 60.0, rate=a.sample_rate, channels=a.channels,
                                    bitrate=a.bitrate, chunk=chunk, coder=a.aac_coder)
    print(json.dumps({
        "agent_standby_cpu_s_per_min": round(standby, 3),
        "bare_aac_cpu_s_per_min": round(audio_cpu, 3),
        "standby_vs_bare": round(standby / audio_cpu, 2),
        "agent_recording_cpu_s_per_min": round(recording, 3),
        "bare_pyav_media_cpu_s_per_min": round(media_cpu, 3),
        "recording_vs_bare": round(recording / media_cpu, 2),
        "audio": {"rate": a.sample_rate, "channels": a.channels, "bitrate": a.bitrate,
                  "aac_coder": a.aac_coder, "chunk_ms": a.chunk_ms, "chunks_in_total": chunks},
        "peak_rss_mb_standby": round(rss_standby, 1),
        "peak_rss_mb_recording": round(rss_end, 1),
        "mic_sim_cpu_excluded_s": round(mic.cpu_seconds - mic_cpu, 2),  # type: ignore[attr-defined]
    }, indent=2))


if __name__ == "__main__":
    main()
