"""The recorder's rules, instantly: its state machine against a port that keeps segments in
memory, with the real segment writer on an inline worker (no thread, no disk, no sleep).

Each test states one rule in its docstring; what the recorder decided is read from the port
(opens, seals, each segment's first and last frame and its audio end).
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.recording.recorder import OpenDeferred, Recorder, RecorderState
from hw.audio import AudioFormat
from hw.camera import VideoFormat
from hw.errors import RecorderError

from .recorder_fakes import AAC_US, BASE_US, FPS, FRAME_US, GOP, Camera, Handle, MemoryPort, audio, h264_units


@pytest.fixture(scope="module")
def camera(tmp_path_factory: pytest.TempPathFactory) -> Camera:
    return Camera(h264_units(tmp_path_factory.mktemp("rules")))


def recorder(port: Any, *, with_audio: bool = False, prerecord_s: float = 0,
             segment_s: float = 60, events: list[str] | None = None) -> Recorder:
    seen = events if events is not None else []
    return Recorder(port=port, video=VideoFormat(160, 120, FPS, 200_000, gop=GOP),
                    audio=AudioFormat(48_000, 1) if with_audio else None,
                    prerecord_s=prerecord_s, segment_s=segment_s,
                    on_event=lambda kind, data: seen.append(kind))


def pts(i: int) -> int:
    return BASE_US + i * FRAME_US


def test_a_start_drains_the_pre_event_buffer_into_the_first_segment_before_any_live_frame(
        camera: Camera) -> None:
    """At a press the pre-roll goes first, whole and in order, into segment 0 (flagged
    ``preroll``, starting at the ring's oldest keyframe); live frames follow it; the ring is
    empty afterwards and ``recording_started`` says how much pre-event media it held."""
    port, events = MemoryPort(), []
    data: list[dict[str, Any]] = []
    rec = Recorder(port=port, video=VideoFormat(160, 120, FPS, 200_000, gop=GOP), audio=None,
                   prerecord_s=1, segment_s=60,
                   on_event=lambda kind, d: (events.append(kind), data.append(d)))
    for i in range(50):  # 2 s in standby: the ring keeps 1 s and up to a GOP more
        rec.on_packet(camera.frame(i))
    first_held = 50 - len(rec.preroll)
    assert first_held % GOP == 0 and 1_000_000 <= pts(49) - pts(first_held) < 1_000_000 + GOP * FRAME_US
    rid = rec.start()
    assert rec.state is RecorderState.RECORDING and len(rec.preroll) == 0
    assert rec.start() == rid  # a second press while recording is the same recording
    for i in range(50, 60):
        rec.on_packet(camera.frame(i))
    rec.stop()
    (seg,) = port.sealed_manifests
    assert port.opened[0].start_mono_us == pts(first_held)
    assert "preroll" in port.opened[0].flags
    assert (seg["first_index"], seg["last_index"], seg["frames"]) == (first_held, 59, 60 - first_held)
    assert seg["out_of_order"] == 0
    assert events[0] == "recording_started" and data[0]["preroll_us"] == pts(49) - pts(first_held)


def test_a_segment_rolls_only_at_a_keyframe_and_the_next_starts_where_it_ends(
        camera: Camera) -> None:
    """A segment rolls at the first keyframe at or after ``segment_s`` (never at the first
    frame past it); that keyframe starts the next segment, so the two meet exactly and every
    frame is in one segment."""
    port = MemoryPort()
    rec = recorder(port, segment_s=0.5)  # 0.5 s = 12.5 frames; keyframes every 10
    rec.start()
    for i in range(30):
        rec.on_packet(camera.frame(i))
    rec.stop()
    seg0, seg1 = port.sealed_manifests
    assert (seg0["first_index"], seg0["last_index"], seg0["end"]) == (0, 19, pts(20))
    assert (seg1["start"], seg1["first_index"], seg1["last_index"]) == (pts(20), 20, 29)
    assert seg0["frames"] + seg1["frames"] == 30


def test_audio_stamped_before_a_boundary_goes_to_the_segment_before_it(camera: Camera) -> None:
    """At a roll the segment before stays open for its audio tail (audio arrives after the
    picture): audio stamped before the boundary reaches it, and it is sealed at the first
    audio packet at or after the boundary, not at the roll."""
    port = MemoryPort()
    rec = recorder(port, with_audio=True, segment_s=0.5)
    rec.start()
    t_audio = BASE_US
    sealed_at_roll = None
    for i in range(30):
        rec.on_packet(camera.frame(i))
        if i == 20:
            sealed_at_roll = len(port.sealed_manifests)
        while t_audio < pts(i) - 100_000:  # audio 100 ms behind
            rec.on_packet(audio(t_audio))
            t_audio += AAC_US
    assert sealed_at_roll == 0 and len(port.sealed_manifests) == 1
    seg0 = port.sealed_manifests[0]
    assert pts(20) - AAC_US < seg0["audio_end_us"] <= pts(20) + AAC_US


def test_a_stop_waits_for_the_audio_tail_and_gives_up_after_the_tail_timeout(
        camera: Camera) -> None:
    """A stop ends the recording at the last frame: the recorder is ``stopping`` until audio
    up to that end has arrived (then ``standby``, the seal announced before the stop) -- or
    until 600 ms of waiting have passed, when it seals without the rest."""
    port, events = MemoryPort(), []
    rec = recorder(port, with_audio=True, events=events)
    rec.start()
    for i in range(10):
        rec.on_packet(camera.frame(i))
    rec.stop()
    assert rec.state is RecorderState.STOPPING and port.sealed_manifests == []
    rec.on_packet(audio(pts(5)))  # ends before the last frame's end: keeps waiting
    assert rec.state is RecorderState.STOPPING
    rec.on_packet(audio(pts(10) - AAC_US // 2))  # stamped before the end, reaching past it
    assert rec.state is RecorderState.STANDBY
    assert events == ["recording_started", "segment_sealed", "recording_stopped"]

    rec.start()
    for i in range(20, 30):
        rec.on_packet(camera.frame(i))
    rec.stop()
    rec.tick(pts(29) + 600_000)
    assert rec.state is RecorderState.STOPPING  # not yet given up
    rec.tick(pts(29) + 600_001)
    assert rec.state is RecorderState.STANDBY and len(port.sealed_manifests) == 2


def test_a_fault_seals_what_is_open_flagged_and_refuses_starts_until_cleared(
        camera: Camera) -> None:
    """A fault from any state seals the open segment flagged ``fault`` (announced before the
    fault), keeps buffering pre-event media, refuses a start until cleared, and clearing it
    returns to ``standby``."""
    port, events = MemoryPort(), []
    rec = recorder(port, prerecord_s=1, events=events)
    rec.start()
    for i in range(10):
        rec.on_packet(camera.frame(i))
    rec.fault("camera: gone")
    assert rec.state is RecorderState.FAULT and rec.fault_reason == "camera: gone"
    assert "fault" in port.sealed_manifests[0]["flags"]
    assert events == ["recording_started", "segment_sealed", "fault"]
    for i in range(10, 30):
        rec.on_packet(camera.frame(i))
    assert len(rec.preroll) > 0
    with pytest.raises(RecorderError, match="fault state: camera: gone"):
        rec.start()
    rec.clear_fault()
    assert rec.state is RecorderState.STANDBY and rec.fault_reason is None
    rec.start()
    assert rec.state is RecorderState.RECORDING and len(port.opened) == 2


def test_a_frame_that_does_not_advance_in_time_is_dropped_and_counted(camera: Camera) -> None:
    """A frame stamped at or before the last one (a camera clock that stepped back) is dropped
    from the segment and counted, and the recording goes on."""
    port = MemoryPort()
    rec = recorder(port)
    rec.start()
    for i in range(10):
        rec.on_packet(camera.frame(i))
    rec.on_packet(camera.frame(10, pts_us=pts(9)))  # same time as the frame before
    rec.on_packet(camera.frame(11, pts_us=pts(3)))  # back in time
    rec.on_packet(camera.frame(12))
    assert rec.state is RecorderState.RECORDING
    rec.stop()
    (seg,) = port.sealed_manifests
    assert (seg["out_of_order"], seg["frames"], seg["last_index"]) == (2, 11, 12)


def test_the_camera_frames_skipped_are_counted_from_their_indices(camera: Camera) -> None:
    """Frames the camera numbered but never delivered add to ``frames_gap``, in any state."""
    rec = recorder(MemoryPort())
    for i in (0, 1, 2, 5, 6, 10):
        rec.on_packet(camera.frame(i))
    assert rec.frames_gap == 2 + 3


class DeferringPort(MemoryPort):
    """Defers the next ``defer`` opens (:class:`OpenDeferred`), then opens."""

    def __init__(self, defer: int) -> None:
        super().__init__()
        self.defer = defer
        self.asked: list[int] = []

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int,
                     flags: list[str]) -> Handle:
        self.asked.append(start_mono_us)
        if self.defer > 0:
            self.defer -= 1
            raise OpenDeferred("not yet")
        return super().open_segment(recording_id=recording_id, seq=seq,
                                    start_mono_us=start_mono_us, flags=flags)


def test_a_deferred_open_records_nothing_until_the_port_accepts_and_is_no_fault(
        camera: Camera) -> None:
    """While the port defers an open the recorder stays ``recording`` with no segment, writes
    nothing and asks again at each keyframe only; the segment opens at the keyframe the port
    accepts, with the flags the start asked for."""
    port = DeferringPort(defer=2)
    rec = recorder(port)
    rec.start(flags=["trigger"])
    for i in range(30):
        rec.on_packet(camera.frame(i))
        assert rec.state is RecorderState.RECORDING
    assert port.asked == [pts(0), pts(10), pts(20)]
    rec.stop()
    (seg,) = port.sealed_manifests
    assert (seg["start"], seg["first_index"], seg["last_index"]) == (pts(20), 20, 29)
    assert seg["flags"] == ["trigger"]


def test_a_stop_while_an_open_is_deferred_ends_the_recording_with_no_empty_segment(
        camera: Camera) -> None:
    """A stop with no segment open (the port still deferring) returns to ``standby`` at once
    and seals nothing."""
    port, events = DeferringPort(defer=99), []
    rec = recorder(port, events=events)
    rec.start()
    for i in range(15):
        rec.on_packet(camera.frame(i))
    rec.stop()
    assert rec.state is RecorderState.STANDBY
    assert port.sealed_manifests == [] and port.opened == []
    assert events == ["recording_started", "recording_stopped"]
