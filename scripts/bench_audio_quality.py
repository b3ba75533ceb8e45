#!/usr/bin/env python3
"""Speech quality (PESQ) and encode CPU of the AAC settings the agent can use.

Synthesises speech with ``espeak-ng`` (resampled by ffmpeg to the microphone's 48 kHz mono
S16LE), cuts it into the microphone's chunks (:class:`hw.audio.AudioChunk`, ``--chunk-ms``)
and feeds them through the agent's own encoder (:class:`agent.recording.aac.AacEncoder`) for each
libavcodec coder (``fast``, ``twoloop``) and bitrate. Each result is muxed into an MP4 with the
packets' own timestamps, decoded by ffmpeg to 16 kHz mono and scored with wideband PESQ
(ITU-T P.862.2, PyPI ``pesq``) against the original resampled the same way. The encode CPU is
the process CPU time of ``AacEncoder.encode`` over the clip, reported per minute of audio.

Needs ``espeak-ng`` and ``ffmpeg`` on PATH and ``pip install pesq``.

    .venv/bin/python scripts/bench_audio_quality.py [--repeat 3] [--chunk-ms 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from agent.recording.aac import AAC_CODERS, AacEncoder
from agent.recording.packets import MediaPacket
from hw.audio import AudioChunk, AudioFormat

RATE = 48_000
BITRATES = (48_000, 64_000, 96_000)

TEXT = (
    "Police. Stop where you are and show me your hands. "
    "This is officer Martinez, badge number four seven one two, the time is twenty two fifteen. "
    "Sir, you are not under arrest, but I need to see some identification. "
    "The vehicle is a grey sedan, licence plate Kilo Lima Mike three nine eight. "
    "Dispatch, requesting a second unit at the corner of Fifth and Main. "
    "Can you tell me what happened here tonight? He took my bag and ran toward the station."
)


def synthesise(work: Path) -> tuple[Path, bytes]:
    """Speech as a 48 kHz mono WAV and its S16LE samples."""
    raw = work / "speech-22k.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), TEXT], check=True, timeout=120)
    ref = work / "speech-48k.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(raw), "-ar", str(RATE), "-ac", "1",
                    "-sample_fmt", "s16", str(ref)], check=True, timeout=120)
    with wave.open(str(ref), "rb") as w:
        return ref, w.readframes(w.getnframes())


def encode(pcm: bytes, coder: str, bitrate: int, chunk_frames: int) -> tuple[list[MediaPacket], float, bytes]:
    """All AAC packets of ``pcm``, the encode CPU seconds, and the encoder's extradata."""
    fmt = AudioFormat(sample_rate=RATE, channels=1)
    enc = AacEncoder(fmt, bitrate=bitrate, coder=coder)
    step = chunk_frames * fmt.bytes_per_frame
    chunks = [AudioChunk(pcm=pcm[i:i + step], pts_us=10_000_000 + (i // 2) * 1_000_000 // RATE,
                         frames=len(pcm[i:i + step]) // 2) for i in range(0, len(pcm), step)]
    # One second of silence after the speech flushes the encoder's look-ahead.
    chunks.append(AudioChunk(pcm=bytes(2 * RATE), pts_us=chunks[-1].pts_us
                             + chunks[-1].frames * 1_000_000 // RATE, frames=RATE))
    t0 = time.process_time()
    packets = [p for c in chunks for p in enc.encode(c)]
    return packets, time.process_time() - t0, enc.extradata


def mux(packets: list[MediaPacket], extradata: bytes, bitrate: int, path: Path) -> None:
    out = av.open(str(path), "w", format="mp4")
    st = out.add_stream("aac", rate=RATE)
    st.codec_context.layout, st.codec_context.bit_rate = "mono", bitrate
    st.codec_context.extradata = extradata
    st.time_base = Fraction(1, RATE)
    base = packets[0].pts_us
    for p in packets:
        q = av.Packet(p.data)
        pts = (p.pts_us - base) * RATE // 1_000_000
        q.stream, q.time_base, q.pts, q.dts = st, st.time_base, pts, pts
        q.duration = p.duration_us * RATE // 1_000_000
        out.mux(q)
    out.close()


def to16k(path: Path, n_ref: int | None = None) -> np.ndarray:
    """Decode to 16 kHz mono float, optionally trimmed/padded to ``n_ref`` samples."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ar", "16000", "-ac", "1",
                          "-f", "s16le", "-"], check=True, capture_output=True, timeout=120).stdout
    x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if n_ref is not None:
        x = np.pad(x, (0, max(0, n_ref - len(x))))[:n_ref]
    return x


def main() -> None:
    from pesq import pesq  # optional bench dependency

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="encode runs per setting (CPU: the minimum)")
    ap.add_argument("--chunk-ms", type=int, default=100, help="microphone chunk length")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-aq-"))
    ref48, pcm = synthesise(work)
    ref = to16k(ref48)
    minutes = len(pcm) / 2 / RATE / 60
    chunk_frames = RATE * args.chunk_ms // 1000
    rows = []
    for coder in AAC_CODERS:
        for bitrate in BITRATES:
            cpu = []
            for _ in range(args.repeat):
                packets, s, extra = encode(pcm, coder, bitrate, chunk_frames)
                cpu.append(s)
            path = work / f"{coder}-{bitrate // 1000}k.mp4"
            mux(packets, extra, bitrate, path)
            deg = to16k(path, len(ref))
            rows.append({"coder": coder, "bitrate_kbps": bitrate // 1000,
                         "pesq_wb": round(float(pesq(16000, ref, deg, "wb")), 3),
                         "encode_cpu_s_per_min": round(min(cpu) / minutes, 3)})
    best = max(r["pesq_wb"] for r in rows)
    for r in rows:
        r["within_0.1_of_best"] = r["pesq_wb"] >= best - 0.1
    ok = [r for r in rows if r["within_0.1_of_best"]]
    pick = min(ok, key=lambda r: r["encode_cpu_s_per_min"])
    print(json.dumps({"speech_s": round(minutes * 60, 1), "chunk_ms": args.chunk_ms,
                      "rows": rows, "cheapest_within_0.1": pick}, indent=2))


if __name__ == "__main__":
    main()
