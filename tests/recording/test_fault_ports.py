"""The bench's lost-media fault, instantly: a wrapper around the recorder's segment port.

First the wrapper alone against a port that only records what it was asked; then the real
recorder (real segment writer, inline worker, memory port) built with the wrapper, as the
composition root builds a bench unit with ``[sim] boundary_gap_ms``: every roll loses the gap
and up to a GOP more, the recording itself never notices.
"""

from __future__ import annotations

import pytest

from agent.recording.fault_ports import BoundaryGapPort
from agent.recording.recorder import Recorder, RecorderState
from agent.recording.segment import SegmentStats
from agent.recording.segment_state import OpenDeferred
from hw.audio import AudioFormat
from hw.camera import VideoFormat

from .recorder_fakes import BASE_US, FPS, FRAME_US, GOP, Camera, MemoryPort, audio, h264_units

GAP_US = 1_000_000


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Camera:
    return Camera(h264_units(tmp_path_factory.mktemp("gap")))


def _open(port: BoundaryGapPort, seq: int, start_us: int, rid: str = "r1") -> object:
    return port.open_segment(recording_id=rid, seq=seq, start_mono_us=start_us, flags=[])


def test_a_recordings_first_segment_opens_at_once() -> None:
    """Segment 0 (the press, with its pre-event buffer) is never cut, in any recording."""
    inner = MemoryPort()
    port = BoundaryGapPort(inner, gap_us=GAP_US)
    _open(port, 0, 5_000_000)
    _open(port, 0, 9_000_000, rid="r2")
    assert [(h.seq, h.start_mono_us) for h in inner.opened] == [(0, 5_000_000), (0, 9_000_000)]
    assert port.rolls_cut == 0


def test_a_roll_opens_only_at_a_keyframe_the_gap_after_its_boundary() -> None:
    """The open at a roll's boundary and at every keyframe less than ``gap_us`` after it is
    deferred; the first one at or after opens the segment there, in the inner port."""
    inner = MemoryPort()
    port = BoundaryGapPort(inner, gap_us=GAP_US)
    boundary = 20_000_000
    for start in (boundary, boundary + 400_000, boundary + GAP_US - 1):
        with pytest.raises(OpenDeferred):
            _open(port, 1, start)
    assert inner.opened == []
    _open(port, 1, boundary + GAP_US + 200_000)
    assert [(h.seq, h.start_mono_us) for h in inner.opened] == [(1, boundary + GAP_US + 200_000)]
    assert port.rolls_cut == 1


def test_each_roll_loses_its_own_gap() -> None:
    """The gap is counted from each roll's own boundary, in every recording."""
    inner = MemoryPort()
    port = BoundaryGapPort(inner, gap_us=GAP_US)
    for rid, seq, boundary in (("r1", 1, 10_000_000), ("r1", 2, 20_000_000), ("r2", 1, 40_000_000)):
        with pytest.raises(OpenDeferred):
            _open(port, seq, boundary, rid)
        _open(port, seq, boundary + GAP_US, rid)
    assert [h.start_mono_us for h in inner.opened] == [11_000_000, 21_000_000, 41_000_000]
    assert port.rolls_cut == 3


def test_a_zero_gap_defers_nothing() -> None:
    """``gap_us=0`` is the port itself: a roll opens at its boundary."""
    inner = MemoryPort()
    _open(BoundaryGapPort(inner, gap_us=0), 1, 7_000_000)
    assert [h.start_mono_us for h in inner.opened] == [7_000_000]


def test_everything_but_the_open_is_forwarded_unchanged() -> None:
    """Syncs, seals (both kinds), announcements and abandons reach the inner port as asked."""
    inner = MemoryPort()
    port = BoundaryGapPort(inner, gap_us=GAP_US)
    handle = _open(port, 0, 1_000)
    port.sync(handle)
    finish = port.seal_later(handle, end_mono_us=2_000, flags=["x"], bookmarks=[])
    manifest = port.sealed(finish(SegmentStats(), ["late"]))
    port.abandon(handle)
    assert manifest["end"] == 2_000 and manifest["flags"] == ["x", "late"]
    assert inner.calls == ["open:0", "sync:0", "seal_later:0", "seal:0", "sealed:0", "abandon:0"]
    with pytest.raises(AssertionError, match="two steps"):
        port.seal(handle, stats=SegmentStats(), end_mono_us=2_000, flags=[], bookmarks=[])


def test_the_recorder_loses_the_gap_at_every_roll_and_keeps_recording(camera: Camera) -> None:
    """The real recorder over the wrapper: each segment ends at its roll's boundary keyframe
    (with its audio tail), the next starts at the first keyframe at or after the boundary plus
    the gap, nothing in between is written; the recording stays ``recording`` throughout and a
    stop inside a gap ends it with no empty segment."""
    inner = MemoryPort()
    events: list[str] = []
    rec = Recorder(port=BoundaryGapPort(inner, gap_us=GAP_US),
                   video=VideoFormat(160, 120, FPS, 200_000, gop=GOP), audio=AudioFormat(48_000, 1),
                   prerecord_s=0, segment_s=1, on_event=lambda kind, data: events.append(kind))
    rec.start()
    t_audio = BASE_US
    for i in range(100):  # 4 s; audio lags 100 ms behind the picture
        rec.on_packet(camera.frame(i))
        assert rec.state is RecorderState.RECORDING
        while t_audio < BASE_US + i * FRAME_US - 100_000:
            rec.on_packet(audio(t_audio))
            t_audio += 1024 * 1_000_000 // 48_000
    rec.stop()  # frame 99: inside the second roll's gap (boundary at frame 90)
    rec.tick(BASE_US + 100 * FRAME_US + 1_000_000)
    assert rec.state is RecorderState.STANDBY
    pts = [BASE_US + i * FRAME_US for i in range(100)]
    # roll 1: boundary keyframe 30 (1.2 s), resumes at keyframe 60 (first at or after 2.2 s);
    # roll 2: boundary keyframe 90, would resume at 120: the stop came first.
    seg0, seg1 = inner.sealed_manifests
    assert (seg0["first_index"], seg0["last_index"], seg0["end"]) == (0, 29, pts[30])
    assert (seg1["start"], seg1["first_index"], seg1["last_index"], seg1["end"]) == (
        pts[60], 60, 89, pts[90])
    assert seg0["audio_end_us"] >= pts[30], "the segment before the gap lost its audio tail"
    assert seg1["first_pts_us"] - (seg0["last_pts_us"] + FRAME_US) == 30 * FRAME_US  # 1.2 s
    assert [h.seq for h in inner.opened] == [0, 1]
    assert events == ["recording_started", "segment_sealed", "segment_sealed",
                      "recording_stopped"]
