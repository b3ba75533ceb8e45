"""The continuous AAC encoder: exact regrouping of any chunk size, holes kept, coder chosen."""

from __future__ import annotations

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
