"""Camera frames reach the controller without waking it for each one, and keep their order.

The real controller thread with a real recorder (video only, a port that keeps nothing):
frames handed to :meth:`Controller.on_frame` wait for the loop's next wake-up, and every frame
delivered before an event is handled before that event.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.recording.controller import Controller
from agent.recording.gestures import GestureRecognizer
from agent.recording.packets import MediaPacket
from agent.recording.recorder import Recorder
from agent.recording.segment import SegmentStats
from hw.camera import EncodedFrame, VideoFormat

FPS = 30
FRAME_US = 1_000_000 // FPS


@dataclass
class _Handle:
    seq: int
    sink: io.BytesIO = field(default_factory=io.BytesIO)


class NullPort:
    """Segments into memory, forgotten at the seal."""

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int,
                     flags: list[str]) -> _Handle:
        return _Handle(seq)

    def sync(self, handle: Any) -> None:
        pass

    def seal(self, handle: Any, **kw: Any) -> dict[str, Any]:
        raise AssertionError("the recorder seals in two steps")

    def seal_later(self, handle: Any, **kw: Any) -> Callable[[SegmentStats, list[str]], Any]:
        return lambda stats, extra: {"seq": handle.seq}

    def sealed(self, result: Any) -> dict[str, Any]:
        return dict(result)

    def abandon(self, handle: Any) -> None:
        pass


def frame(i: int) -> EncodedFrame:
    """An access unit the recorder only routes (a keyframe every 15)."""
    return EncodedFrame(data=b"\x00\x00\x00\x01\x65" if i % 15 == 0 else b"\x00\x00\x00\x01\x41",
                        pts_us=10_000_000 + i * FRAME_US, keyframe=i % 15 == 0, index=i)


def test_frames_wait_for_the_next_wake_up_and_precede_the_event_after_them() -> None:
    """Frames queue no event of their own (the loop is not woken 30 times a second); the
    frames delivered before an event are all handled, in order, before it."""
    rec = Recorder(port=NullPort(), video=VideoFormat(160, 120, FPS, 200_000, gop=15),
                   audio=None, prerecord_s=2.0)
    ctl = Controller(recorder=rec, aac=None, gestures=GestureRecognizer(),
                     frame_interval_us=FRAME_US)
    seen: list[int] = []
    ctl.observe_packets(lambda p: seen.append(p.index))
    marks: list[int] = []
    for i in range(45):
        ctl.on_frame(frame(i))
    assert ctl.queue_depth() == 45  # frames waiting are counted as the controller's backlog
    ctl.post("call", lambda: marks.append(len(seen)))
    ctl.start()
    for i in range(45, 60):
        ctl.on_frame(frame(i))
    ctl.post("call", lambda: marks.append(len(seen)))
    ctl.stop(timeout=30)
    assert seen == list(range(60)) and ctl.frames_in == 60
    assert ctl.wakeups < 30, "the loop woke for frames"
    # every frame delivered before an event is handled before it; frames the camera adds
    # while the loop is still taking the earlier ones in may join them (the loop had not
    # reached the event yet), so the first mark is at least 45
    assert marks[0] >= 45 and marks[1] == 60
    assert rec.preroll.span_s > 1.5  # the ring got them, as when each frame was an event


def test_frames_alone_are_handled_at_the_tick() -> None:
    """With no other event (no microphone), the loop's own tick takes the frames in."""
    rec = Recorder(port=NullPort(), video=VideoFormat(160, 120, FPS, 200_000, gop=15),
                   audio=None, prerecord_s=2.0)
    ctl = Controller(recorder=rec, aac=None, gestures=GestureRecognizer(),
                     frame_interval_us=FRAME_US)
    seen: list[MediaPacket] = []
    ctl.observe_packets(seen.append)
    ctl.start()
    try:
        for i in range(5):
            ctl.on_frame(frame(i))
        done = threading.Event()

        def check() -> None:
            if len(seen) == 5:
                done.set()

        ctl.every_tick(lambda _now: check())
        assert done.wait(10), f"{len(seen)} of 5 frames handled without another event"
    finally:
        ctl.stop(timeout=30)
