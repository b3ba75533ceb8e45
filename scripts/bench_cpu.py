#!/usr/bin/env python3
"""The agent's own CPU, standby and recording, against a bare PyAV script doing the same media work.

The whole agent runs in this process (1080p30 at ~8 Mbit/s from the replay camera -- a
hardware encoder's cost, ~0 -- the simulated microphone, GPS on a pty, battery and storage
policies, 30 s pre-roll, 60 s segments). Measured from the process's CPU time minus the
simulators' own threads (the microphone's synthesis, the replay camera's producer: on a Pi
that work is the camera driver's and the sound card's, not the agent's; both are printed):

* standby: CPU per minute while the pre-event buffer is full (AAC encoding, ring upkeep, GPS,
  policies);
* recording: CPU per recorded minute (plus muxing, hashing, encryption, fsyncs, seals);
* peak RSS (the pre-roll is full in both phases).

The baseline is a minimal PyAV script doing the same media work for the same media time with
the SAME audio settings (sample rate, channels, AAC bitrate and coder, chunk size): libavcodec AAC
encoding of the PCM, fragmented-MP4 muxing of the clip's H.264 and the AAC packets, SHA-256 of
the plaintext, ChaCha20-Poly1305 in 64 KiB chunks (age's payload cipher), SHA-256 of the
ciphertext, written to a file fsynced once per media second -- no manifests, logs, policies
or wake-ups. The recording's bare work starts, as the agent's does, by writing the pre-roll
a press hands to storage (its AAC was encoded in standby); the ratios without it -- how
these figures were first set -- are printed too (``*_live_only``). Standby's bare cost is
the AAC encoding plus a 30 s ring of the packets. Each bare phase runs three ways: in one
burst (median of 3; the most favourable to it, and no work a recorder can do: its media
arrive in real time); paced -- every frame and chunk handled when it is due, one wake-up
each; and paced *and batched as the agent is* (``run_batched``: a wake-up every 0.1 s, the
audio held as the agent holds it, the muxer fed every 0.1 s, an fsync a second) -- the same
work at the same granularity, the fair baseline of the agent's own cost.

    .venv/bin/python scripts/bench_cpu.py [--record 60] [--standby 20]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import resource
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from agent.app import Agent
from agent.config import parse_config
from agent.recording.controller import STANDBY_HOLD_S
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


class Bare:
    """The bare media work of one phase: standby (AAC and the 30 s ring) or recording (AAC,
    fragmented-MP4 muxing, the evidence sink's hashing and encryption, an fsync per second)."""

    def __init__(self, clip: Path, out_dir: Path, *, rate: int, channels: int, bitrate: int,
                 chunk: int, coder: str, seconds: float) -> None:
        self.frames = load_clip(clip).frames
        self.rate, self.chunk, self.bitrate = rate, chunk, bitrate
        self.layout = "mono" if channels == 1 else "stereo"
        self.coder, self.out_dir = coder, out_dir
        # the simulated microphone's own signal (room tone, ~-55 dBFS), made before the clock
        # starts: what AAC costs depends on what it encodes
        n = int(seconds * rate / chunk) + 1
        noise = np.random.default_rng(1).normal(0.0, 60.0, (n, chunk * channels))
        self.pcms = np.clip(noise, -32768, 32767).astype(np.int16)

    def run(self, seconds: float, *, record: bool, paced: bool,
            preroll_s: float = 0.0) -> tuple[float, float]:
        """CPU seconds of ``seconds`` of media, and of the pre-roll part of it; ``paced``
        handles each frame and chunk when it is due, as a real-time recorder must (one wake-up
        per event), else all at once. ``preroll_s`` (recording): first mux, hash, encrypt and
        fsync that much media at once -- what a press makes the agent write from its pre-event
        buffer; its AAC was encoded in standby, so it is encoded before the clock starts."""
        enc, mux, pre_video, pre_chunks, t0, t_pre = self._start(record, preroll_s)
        ring: collections.deque[tuple[int, bytes]] = collections.deque()
        events = sorted([(k * 1_000_000 // 30, 0, k) for k in range(int(seconds * 30))]
                        + [(i * self.chunk * 1_000_000 // self.rate, 1, i)
                           for i in range(int(seconds * self.rate / self.chunk))])
        start = time.monotonic()
        for due_us, kind, k in events:
            if paced:
                delay = start + due_us / 1e6 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if kind == 1:
                for p in enc.encode(self._frame(pre_chunks + k if record else k)):
                    if mux is not None:
                        mux.audio(bytes(p), int(p.pts))
                    else:
                        ring.append((due_us, bytes(p)))
                continue
            kk = pre_video + k if record else k
            data, key = self.frames[kk % len(self.frames)]
            if mux is not None:
                mux.video(data, key, kk)
                if k % 30 == 29:
                    mux.sink.sync()
                continue
            ring.append((due_us, data))
            while ring[0][0] < due_us - 30_000_000:
                ring.popleft()
        if mux is not None:
            mux.close()
        return time.process_time() - t0, t_pre

    def run_batched(self, seconds: float, *, record: bool, hold_s: float, flush_s: float,
                    preroll_s: float = 0.0) -> tuple[float, float]:
        """Like :meth:`run` paced, but batched as the agent is: one wake-up every 0.1 s takes
        the frames that came; the audio is encoded once ``hold_s`` of it is pending (as one
        frame); the packets go to the muxer every ``flush_s``; an fsync every second. The
        same media work at the same granularity as the agent, without anything else."""
        enc, mux, pre_video, pre_chunks, t0, t_pre = self._start(record, preroll_s)
        ring: collections.deque[tuple[int, bytes]] = collections.deque()
        chunk_us = self.chunk * 1_000_000 // self.rate
        held: list[int] = []  # chunk numbers of the PCM not yet encoded
        routed: list[tuple[str, bytes, int, bool]] = []
        frames_done = chunks_done = 0
        flushed_us = synced_us = 0
        start = time.monotonic()
        for step in range(1, int(seconds * 10) + 1):
            now_us = step * 100_000
            delay = start + now_us / 1e6 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            while frames_done * 1_000_000 // 30 < now_us:
                kk = pre_video + frames_done if record else frames_done
                data, key = self.frames[kk % len(self.frames)]
                routed.append(("v", data, kk, key))
                frames_done += 1
            while (chunks_done + 1) * chunk_us <= now_us:
                held.append(pre_chunks + chunks_done if record else chunks_done)
                chunks_done += 1
            if held and len(held) * chunk_us >= hold_s * 1_000_000:
                routed += [("a", bytes(p), int(p.pts), False)
                           for p in enc.encode(self._frames(held))]
                held.clear()
            if mux is None:  # standby: into the 30 s ring
                self._ring(ring, routed, now_us)
            elif now_us - flushed_us >= flush_s * 1_000_000:
                flushed_us = now_us
                _feed(mux, routed)
                if now_us - synced_us >= 1_000_000:
                    synced_us = now_us
                    mux.sink.sync()
        if mux is not None:
            mux.close()
        return time.process_time() - t0, t_pre

    def _ring(self, ring: collections.deque[tuple[int, bytes]],
              routed: list[tuple[str, bytes, int, bool]], now_us: int) -> None:
        """Standby's upkeep: what came into the ring, what is older than 30 s out of it."""
        for kind, data, n, _key in routed:
            ring.append((n * 1_000_000 // 30 if kind == "v" else n * 1_000_000 // self.rate,
                         data))
        routed.clear()
        while ring and ring[0][0] < now_us - 30_000_000:
            ring.popleft()

    def _frames(self, chunks: list[int]) -> av.AudioFrame:
        """The held chunks as one frame (their PCM in order, as float)."""
        pcm = np.concatenate([self.pcms[i % len(self.pcms)] for i in chunks])
        f = av.AudioFrame.from_ndarray((pcm.astype(np.float32) / 32768).reshape(1, -1),
                                       format="flt", layout=self.layout)
        f.sample_rate, f.pts = self.rate, chunks[0] * self.chunk
        return f

    def _start(self, record: bool,
               preroll_s: float) -> tuple[Any, _BareMux | None, int, int, float, float]:
        """The encoder and (recording) the muxer, with the pre-roll written: the encoder, the
        muxer, the pre-roll's frames and chunks, when the clock started and the pre-roll's
        CPU seconds. The pre-roll's AAC is encoded before the clock starts (in standby)."""
        pre_video = int(preroll_s * 30)
        pre_chunks = int(preroll_s * self.rate / self.chunk)
        enc = self._encoder()
        pre_audio = [(bytes(p), int(p.pts)) for i in range(pre_chunks if record else 0)
                     for p in enc.encode(self._frame(i))]
        t0 = time.process_time()
        mux = _BareMux(self.out_dir / "bare.bin", self.rate, self.layout, self.bitrate) \
            if record else None
        if mux is not None and preroll_s:
            self._preroll(mux, pre_video, pre_audio)
        return enc, mux, pre_video, pre_chunks, t0, time.process_time() - t0

    def _preroll(self, mux: _BareMux, frames: int, audio: list[tuple[bytes, int]]) -> None:
        """Mux the pre-roll's frames and AAC packets in time order, then fsync."""
        packets = iter(audio)
        nxt = next(packets, None)
        for k in range(frames):
            while nxt is not None and nxt[1] * 30 < k * self.rate:
                mux.audio(*nxt)
                nxt = next(packets, None)
            data, key = self.frames[k % len(self.frames)]
            mux.video(data, key, k)
        while nxt is not None:
            mux.audio(*nxt)
            nxt = next(packets, None)
        mux.sink.sync()

    def _encoder(self) -> Any:
        enc = av.CodecContext.create("aac", "w")
        enc.sample_rate, enc.layout, enc.format = self.rate, self.layout, "fltp"
        enc.bit_rate, enc.time_base = self.bitrate, Fraction(1, self.rate)
        enc.options = {"aac_coder": self.coder}
        enc.open()
        return enc

    def _frame(self, i: int) -> av.AudioFrame:
        f = av.AudioFrame.from_ndarray(
            (self.pcms[i % len(self.pcms)].astype(np.float32) / 32768).reshape(1, -1),
            format="flt", layout=self.layout)
        f.sample_rate, f.pts = self.rate, i * self.chunk
        return f


def _feed(mux: _BareMux, routed: list[tuple[str, bytes, int, bool]]) -> None:
    """The routed packets into the muxer, in the order they came."""
    for kind, data, n, key in routed:
        if kind == "v":
            mux.video(data, key, n)
        else:
            mux.audio(data, n)
    routed.clear()


class _BareMux:
    """Fragmented MP4 of the clip's H.264 and the AAC into a :class:`_BareSink`."""

    def __init__(self, path: Path, rate: int, layout: str, bitrate: int) -> None:
        self.sink = _BareSink(path)
        self.out = av.open(self.sink, "w", format="mp4",
                           options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        self.vs = self.out.add_mux_stream("h264", rate=30, width=1920, height=1080)
        self.vs.time_base = Fraction(1, 90_000)
        self.ast = self.out.add_stream("aac", rate=rate)
        self.ast.codec_context.layout, self.ast.codec_context.bit_rate = layout, bitrate
        self.ast.time_base = Fraction(1, rate)

    def video(self, data: bytes, key: bool, k: int) -> None:
        p = av.Packet(data)
        p.stream, p.time_base, p.pts, p.dts = self.vs, self.vs.time_base, k * 3000, k * 3000
        p.duration, p.is_keyframe = 3000, key
        self.out.mux(p)

    def audio(self, data: bytes, pts: int) -> None:
        q = av.Packet(data)
        q.stream, q.time_base, q.pts, q.dts = self.ast, self.ast.time_base, pts, pts
        q.duration = 1024
        self.out.mux(q)

    def close(self) -> None:
        self.out.close()
        self.sink.close()


class _BareSink(io.RawIOBase):
    """SHA-256 of the plaintext, ChaCha20-Poly1305 in 64 KiB chunks, SHA-256 of the ciphertext,
    to a file: the evidence sink's work without its format."""

    CHUNK = 64 * 1024

    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 -- closed in close()
        self._aead = ChaCha20Poly1305(os.urandom(32))
        self._plain, self._cipher = hashlib.sha256(), hashlib.sha256()
        self._buf = bytearray()
        self._n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._plain.update(data)
        self._buf += data
        while len(self._buf) >= self.CHUNK:
            self._seal(bytes(self._buf[:self.CHUNK]))
            del self._buf[:self.CHUNK]
        return len(data)

    def _seal(self, chunk: bytes) -> None:
        ct = self._aead.encrypt(self._n.to_bytes(12, "big"), chunk, None)
        self._n += 1
        self._cipher.update(ct)
        self._f.write(ct)

    def sync(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        if not self._f.closed:
            if self._buf:
                self._seal(bytes(self._buf))
                self._buf.clear()
            self.sync()
            self._f.close()
        super().close()


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (0 when it is gone)."""
    if native_id is None:
        return 0.0
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads() -> dict[str, float]:
    """CPU seconds per thread name (threads of the same name summed)."""
    out: dict[str, float] = {}
    for t in threading.enumerate():
        out[t.name] = out.get(t.name, 0.0) + _thread_cpu(t.native_id)
    return out


# The agent's audio holds for the batched baseline: STANDBY_HOLD_S in standby, none while
# recording (each chunk is encoded as it comes).
RECORDING_HOLD_S = 0.0

SIMULATORS = ("sim-mic", "replay-camera", "gps-sim", "pisugar-sim")  # the devices' own work


class Phase:
    """CPU of the process minus the simulators' threads over one phase, per thread too."""

    def __init__(self) -> None:
        self._c0, self._th0, self._t0 = _cpu(), _threads(), time.monotonic()

    def end(self) -> dict[str, Any]:
        minutes = (time.monotonic() - self._t0) / 60
        th = _threads()
        per = {n: (th[n] - self._th0.get(n, 0.0)) / minutes for n in th}
        sims = sum(per.get(n, 0.0) for n in SIMULATORS)
        return {"cpu_s_per_min": ((_cpu() - self._c0) / minutes) - sims,
                "simulators_cpu_s_per_min": round(sims, 3),
                "threads_cpu_s_per_min": {n: round(v, 3) for n, v in
                                          sorted(per.items(), key=lambda kv: -kv[1]) if v > 0}}


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
    while agent.recorder.preroll.span_s < 30:
        time.sleep(0.5)
    phase = Phase()
    time.sleep(args.standby)
    standby = phase.end()
    rss_standby = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    preroll_s = agent.recorder.preroll.span_s  # what the press hands to storage
    phase = Phase()
    agent.controller.call("start")
    time.sleep(args.record)
    agent.controller.call("stop")
    while agent.recorder.state != "standby":
        time.sleep(0.05)
    recording = phase.end()
    rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    chunks = agent.controller.audio_chunks_in
    wakeups = agent.controller.wakeups
    agent.shutdown()
    a = cfg.audio
    chunk = max(1, a.sample_rate * a.chunk_ms // 1000)
    bare = Bare(clip, work, rate=a.sample_rate, channels=a.channels, bitrate=a.bitrate,
                chunk=chunk, coder=a.aac_coder, seconds=60.0)
    # median of 3 for the burst runs (they are short and the machine's load varies)
    bare_standby = sorted(bare.run(60.0, record=False, paced=False)[0] for _ in range(3))[1]
    burst = sorted(bare.run(60.0, record=True, paced=False, preroll_s=preroll_s)
                   for _ in range(3))[1]
    paced_standby = bare.run(args.standby, record=False, paced=True)[0] * 60 / args.standby
    total, pre = bare.run(args.record, record=True, paced=True, preroll_s=preroll_s)
    per_min = 60 / args.record
    batched_standby = bare.run_batched(args.standby, record=False, hold_s=STANDBY_HOLD_S,
                                       flush_s=0.1)[0] * 60 / args.standby
    batched = bare.run_batched(args.record, record=True, hold_s=RECORDING_HOLD_S,
                               flush_s=0.1, preroll_s=preroll_s)[0] * per_min
    agent_s, agent_r = standby["cpu_s_per_min"], recording["cpu_s_per_min"]
    print(json.dumps({
        "agent_standby_cpu_s_per_min": round(agent_s, 3),
        "bare_standby_cpu_s_per_min": round(bare_standby, 3),
        "standby_vs_bare": round(agent_s / bare_standby, 2),
        "bare_paced_standby_cpu_s_per_min": round(paced_standby, 3),
        "standby_vs_bare_paced": round(agent_s / paced_standby, 2),
        # the same paced, batched as the agent is (audio held 1 s in standby, encoded per
        # chunk while recording; frames taken and the muxer fed every 0.1 s)
        "bare_batched_standby_cpu_s_per_min": round(batched_standby, 3),
        "standby_vs_bare_batched": round(agent_s / batched_standby, 2),
        "agent_recording_cpu_s_per_min": round(agent_r, 3),
        # the same media work as the agent's recording phase: the pre-roll the press hands
        # to storage (muxed, hashed, encrypted, fsynced at once) and the live minute
        "preroll_s": round(preroll_s, 2),
        "bare_recording_cpu_s_per_min": round(burst[0], 3),
        "recording_vs_bare": round(agent_r / burst[0], 2),
        "bare_paced_recording_cpu_s_per_min": round(total * per_min, 3),
        "recording_vs_bare_paced": round(agent_r / (total * per_min), 2),
        "bare_batched_recording_cpu_s_per_min": round(batched, 3),
        "recording_vs_bare_batched": round(agent_r / batched, 2),
        # the bare work without the pre-roll (how these figures were first set): the agent's
        # recording phase still writes its pre-roll, so these ratios overstate its cost
        "bare_recording_live_only_cpu_s_per_min": round(burst[0] - burst[1], 3),
        "recording_vs_bare_live_only": round(agent_r / (burst[0] - burst[1]), 2),
        "bare_paced_recording_live_only_cpu_s_per_min": round((total - pre) * per_min, 3),
        "recording_vs_bare_paced_live_only": round(agent_r / ((total - pre) * per_min), 2),
        "audio": {"rate": a.sample_rate, "channels": a.channels, "bitrate": a.bitrate,
                  "aac_coder": a.aac_coder, "chunk_ms": a.chunk_ms, "chunks_in_total": chunks},
        "controller_wakeups_total": wakeups,
        "peak_rss_mb_standby": round(rss_standby, 1),
        "peak_rss_mb_recording": round(rss_end, 1),
        "standby": standby, "recording": recording,
    }, indent=2))


if __name__ == "__main__":
    main()
