"""The continuous AAC encoder: exact regrouping of any chunk size, holes kept, coder chosen."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from agent.config import ConfigError, parse_config
from agent.recording.aac import AacEncoder
from hw.audio import AudioChunk, AudioFormat

RATE = 48_000


def _speechlike(n: int, channels: int) -> bytes:
    t = np.arange(n) / RATE
    x = 8000 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.repeat(x.astype("<i2"), channels).tobytes()


def _chunks(pcm: bytes, frames: int, channels: int, t0_us: int = 5_000_000) -> list[AudioChunk]:
    bpf = 2 * channels
    step = frames * bpf
    return [AudioChunk(pcm=pcm[i:i + step], pts_us=t0_us + (i // bpf) * 1_000_000 // RATE,
                       frames=len(pcm[i:i + step]) // bpf) for i in range(0, len(pcm), step)]


def _encode(chunks: list[AudioChunk], channels: int, coder: str = "fast") -> list[tuple[bytes, int]]:
    enc = AacEncoder(AudioFormat(sample_rate=RATE, channels=channels), bitrate=96_000, coder=coder)
    return [(p.data, p.pts_us) for c in chunks for p in enc.encode(c)]


@pytest.mark.parametrize("channels", [1, 2])
def test_chunk_size_does_not_change_a_single_packet(channels: int) -> None:
    """100 ms chunks, 21 ms chunks and odd 7 ms chunks give byte-identical AAC with equal pts."""
    pcm = _speechlike(RATE, channels)
    ref = _encode(_chunks(pcm, 1024, channels), channels)
    assert len(ref) >= 40
    assert _encode(_chunks(pcm, 4800, channels), channels) == ref
    assert _encode(_chunks(pcm, 331, channels), channels) == ref


def test_a_hole_in_the_capture_stays_a_hole() -> None:
    """A 50 ms gap restarts the timeline at the late chunk's own time instead of closing up."""
    pcm = _speechlike(RATE // 2, 1)
    first = _chunks(pcm, 4800, 1, t0_us=1_000_000)
    second = _chunks(pcm, 4800, 1, t0_us=1_550_000)
    enc = AacEncoder(AudioFormat(sample_rate=RATE, channels=1))
    before = [p for c in first for p in enc.encode(c)]
    after = [p for c in second for p in enc.encode(c)]
    assert enc.discontinuities == 1
    assert max(p.pts_us for p in before) < 1_500_000
    assert min(p.pts_us for p in after if p.pts_us >= 1_500_000) >= 1_550_000 - 25_000


def test_unknown_coder_is_refused_by_encoder_and_config() -> None:
    with pytest.raises(ValueError, match="unknown AAC coder"):
        AacEncoder(AudioFormat(), coder="best")
    with pytest.raises(ConfigError, match=r"audio\.aac_coder"):
        parse_config({"audio": {"aac_coder": "best"}})
    assert parse_config({}).audio.aac_coder == "fast"
    assert parse_config({"audio": {"aac_coder": "twoloop"}}).audio.aac_coder == "twoloop"


def _float_frames_reference(chunks: list[AudioChunk], channels: int) -> list[tuple[bytes, int]]:
    """The straightforward encoding: every 1 024 samples converted to float planes in numpy
    and sent as their own frame, the grouping restarted at a hole (> 5 ms) -- what the
    encoder did before it handed libavcodec one S16 frame per chunk."""
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.format, enc.bit_rate = RATE, "fltp", 96_000
    enc.layout = "mono" if channels == 1 else "stereo"
    enc.time_base = Fraction(1, RATE)
    enc.options = {"aac_coder": "fast"}
    enc.open()
    buf, pts, out = b"", None, []
    for c in chunks:
        start = c.pts_us * RATE // 1_000_000
        if pts is None or abs((start - (pts + len(buf) // (2 * channels))) * 1_000_000 // RATE) > 5_000:
            buf, pts = b"", start
        buf += c.pcm
        while len(buf) >= 1024 * 2 * channels:
            x = np.frombuffer(buf[:2048 * channels], "<i2").astype(np.float32) / 32768
            buf = buf[2048 * channels:]
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.reshape(1024, channels).T),
                                           format="fltp", layout=enc.layout)
            f.sample_rate, f.pts, f.time_base = RATE, pts, Fraction(1, RATE)
            pts += 1024
            out += [(bytes(p), p.pts * 1_000_000 // RATE) for p in enc.encode(f) if p.pts is not None]
    return out


@pytest.mark.parametrize("channels", [1, 2])
def test_one_s16_frame_per_chunk_encodes_what_float_frames_did(channels: int) -> None:
    """libavcodec gets each chunk's whole frames as one S16 frame (its filter graph scales
    and cuts them): the same bytes and times as float frames of 1 024 samples each, also
    across a hole in the capture."""
    pcm = _speechlike(RATE, channels)
    chunks = _chunks(pcm[: len(pcm) // 2], 4800, channels) + _chunks(
        pcm[len(pcm) // 2:], 331, channels, t0_us=5_000_000 + 560_000)
    got = _encode(chunks, channels)
    assert len(got) >= 40
    assert got == _float_frames_reference(chunks, channels)


@pytest.mark.parametrize("hold", [5, 47])
def test_held_audio_is_encoded_later_byte_identical_and_with_the_same_pts(hold: int) -> None:
    """Holding PCM (standby's larger, cheaper runs) changes when packets come out, never
    which: the same bytes and timestamps as encoding at once, nothing before ``hold`` whole
    frames are pending, and a release gives everything held."""
    pcm = _speechlike(RATE, 1)
    chunks = _chunks(pcm, 4800, 1)
    ref = _encode(chunks, 1)
    enc = AacEncoder(AudioFormat(sample_rate=RATE, channels=1), bitrate=96_000)
    out: list[tuple[bytes, int]] = []
    for c in chunks[:-1]:
        got = enc.encode(c, hold_frames=hold)
        assert not got or enc.pending_us < 1024 * 1_000_000 // RATE  # all held went out
        out += [(p.data, p.pts_us) for p in got]
    held = enc.pending_us
    assert held > 0
    out += [(p.data, p.pts_us) for p in enc.encode(chunks[-1], hold_frames=hold)]
    out += [(p.data, p.pts_us) for p in enc.release()]
    assert enc.pending_us < 1024 * 1_000_000 // RATE
    assert out == ref


def test_a_hold_larger_than_what_came_keeps_every_packet_back() -> None:
    """Under the hold nothing is encoded; the release then gives the whole run at once."""
    enc = AacEncoder(AudioFormat(sample_rate=RATE, channels=1))
    chunks = _chunks(_speechlike(RATE // 2, 1), 4800, 1)
    assert all(enc.encode(c, hold_frames=1000) == [] for c in chunks)
    assert enc.pending_us == 500_000
    released = enc.release()
    assert len(released) >= 20 and enc.pending_us < 21_334
    pts = [p.pts_us for p in released]
    assert pts == sorted(pts) and pts[0] <= 5_000_000
