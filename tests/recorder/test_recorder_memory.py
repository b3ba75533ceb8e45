"""What the recorder keeps for the life of the process is bounded, however long the uptime.

Instant: the recorder runs audio-only (real AAC from the agent's encoder, muxed by the real
segment writer into memory) over a port that keeps nothing, so only the recorder's own
Python memory is measured.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from agent.recording.aac import AacEncoder
from agent.recording.packets import MediaPacket
from agent.recording.preroll import PreRoll
from agent.recording.recorder import Recorder, RecorderState
from agent.recording.segment import SegmentStats
from hw.audio import AudioChunk, AudioFormat
from hw.camera import VideoFormat

AUDIO = AudioFormat(48_000, 1)
CHUNK_US = 20_000
BASE_US = 10_000_000
PAD = 2_500  # a real manifest is about 2.5 kB


@dataclass
class _Handle:
    sink: io.BytesIO
    seq: int


class NullPort:
    """A store that keeps nothing; each 'manifest' is a fresh ~2.5 kB object, as a real one."""

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int,
                     flags: list[str]) -> Any:
        return _Handle(io.BytesIO(), seq)

    def sync(self, handle: Any) -> None:
        pass

    def seal(self, handle: Any, **kw: Any) -> dict[str, Any]:
        raise AssertionError("the recorder seals in two steps")

    def seal_later(self, handle: Any, **kw: Any) -> Callable[[SegmentStats, list[str]], Any]:
        return lambda stats, extra: {"seq": handle.seq, "pad": f"{handle.seq:0{PAD}d}"}

    def sealed(self, result: Any) -> dict[str, Any]:
        return dict(result)

    def abandon(self, handle: Any) -> None:
        pass


def audio_packets(seconds: float, *, start_us: int = BASE_US) -> Iterator[MediaPacket]:
    """AAC packets of ``seconds`` of silence, as the controller's encoder produces them."""
    aac = AacEncoder(AUDIO, bitrate=64_000)
    pcm = bytes(2 * AUDIO.sample_rate * CHUNK_US // 1_000_000)
    for i in range(int(seconds * 1_000_000) // CHUNK_US):
        yield from aac.encode(AudioChunk(pcm, start_us + i * CHUNK_US, len(pcm) // 2))


def test_sealed_is_a_count_and_the_last_manifest() -> None:
    """After hundreds of seals the recorder holds their number and the newest manifest only;
    its Python memory does not grow with the number of segments."""
    rec = Recorder(port=NullPort(), video=None, audio=AUDIO, segment_s=0.05,
                   prerecord_s=0.1)
    rec.start()
    packets = audio_packets(30.0)
    for p in (next(packets) for _ in range(200)):  # warm up: caches, the encoder, the muxer
        rec.on_packet(p)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        sealed_before = len(rec.sealed)
        for p in packets:
            rec.on_packet(p)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    seals = len(rec.sealed) - sealed_before
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert rec.state == RecorderState.RECORDING and seals > 400
    assert rec.sealed.last is not None and rec.sealed.last["seq"] == len(rec.sealed) - 1
    assert grown < seals * PAD // 4, f"{grown} bytes kept over {seals} seals"


def synthetic_audio(seconds: float, *, start_us: int) -> Iterator[MediaPacket]:
    """AAC-sized audio packets (the ring never looks inside them)."""
    step = 1024 * 1_000_000 // AUDIO.sample_rate
    for i in range(int(seconds * 1_000_000) // step):
        yield MediaPacket("audio", bytes(200), start_us + i * step, step, True, i)


def test_the_pre_event_ring_stays_bounded_when_only_audio_arrives() -> None:
    """With the camera silent (stalled, or the recorder in fault for the rest of the
    process's life) the microphone's packets cannot grow the ring past the window."""
    keyframe = MediaPacket("video", b"\x00\x00\x00\x01\x65", BASE_US, 33_333, True, 0)
    ring = PreRoll(2.0)
    ring.push(keyframe)
    for p in synthetic_audio(1.0, start_us=BASE_US):  # normal: audio beside the frames
        ring.push(p)
    assert len(ring) > 40
    for p in synthetic_audio(600.0, start_us=BASE_US + 1_000_000):  # ten minutes, no frame
        ring.push(p)
    assert len(ring) == 0 and ring.nbytes == 0

    rec = Recorder(port=NullPort(), video=VideoFormat(160, 120, 30, 400_000, gop=15),
                   audio=AUDIO, prerecord_s=2.0)
    rec.on_packet(keyframe)
    rec.fault("camera: gone")
    for p in synthetic_audio(600.0, start_us=BASE_US):
        rec.on_packet(p)
    assert rec.state == RecorderState.FAULT
    assert len(rec.preroll) < (2.0 + 2.0) * AUDIO.sample_rate / 1024 + 2


def test_segment_stats_count_missing_frames_from_first_last_and_count() -> None:
    """The missing-frame count needs the first and last index and the number of frames, not
    a list of every index of the segment."""
    stats = SegmentStats(frames=3, first_index=10, last_index=14)
    assert stats.missing_frames == 2
    assert SegmentStats(frames=1, first_index=7, last_index=7).missing_frames == 0
    assert SegmentStats().missing_frames == 0
