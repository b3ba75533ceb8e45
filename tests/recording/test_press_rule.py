"""The press rule, instantly: feedback first, file work behind it, events in order.

The recorder runs with a worker that only *queues* the file work, so the test sees exactly
what the controller thread did at the press (decide, open, emit) and what it left to the
segment worker (mux the pre-roll, fsync it, seal). No threads, no sleeps; the media are real
H.264 access units (an ffmpeg clip) muxed by the real segment writer into memory.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.recording.packets import MediaPacket
from agent.recording.recorder import Recorder
from agent.recording.segment import SegmentStats
from hw.audio import AudioFormat
from hw.camera import VideoFormat
from hw.camera_replay import load_clip

FPS = 30


class QueuedWorker:
    """Holds the file work until the test runs it (a segment worker that has not yet run)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[[], Any], Any, bool]] = []
        self.done: list[tuple[Any, Any, BaseException | None]] = []

    def submit(self, job: Callable[[], Any], done: Any = None, *, errors_only: bool = False) -> None:
        self.jobs.append((job, done, errors_only))

    def run(self) -> None:
        jobs, self.jobs = self.jobs, []
        for job, done, errors_only in jobs:
            try:
                result, error = job(), None
            except Exception as exc:
                result, error = None, exc
            if done is not None and (error is not None or not errors_only):
                self.done.append((done, result, error))

    def poll(self) -> None:
        done, self.done = self.done, []
        for fn, result, error in done:
            fn(result, error)

    def drain(self) -> None:
        self.run()
        self.poll()

    @property
    def backlog(self) -> int:
        return len(self.jobs)


@dataclass
class _Handle:
    sink: io.BytesIO = field(default_factory=io.BytesIO)


class Port:
    """Records what the recorder asked for, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.handles: list[_Handle] = []

    def open_segment(self, **kw: Any) -> _Handle:
        self.calls.append("open")
        self.handles.append(_Handle())
        return self.handles[-1]

    def sync(self, handle: _Handle) -> None:
        self.calls.append(f"sync:{len(handle.sink.getvalue())}")

    def seal(self, handle: Any, **kw: Any) -> dict[str, Any]:
        raise AssertionError("the recorder seals in two steps")

    def seal_later(self, handle: _Handle, **kw: Any) -> Callable[[SegmentStats, list[str]], Any]:
        self.calls.append("seal_later")

        def finish(stats: SegmentStats, extra: list[str]) -> dict[str, Any]:
            self.calls.append("seal")
            return {"frames": stats.frames, "bytes": len(handle.sink.getvalue())}

        return finish

    def sealed(self, result: Any) -> dict[str, Any]:
        self.calls.append("sealed")
        return dict(result)

    def abandon(self, handle: Any) -> None:
        self.calls.append("abandon")


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bool]]:
    path = tmp_path_factory.mktemp("press") / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x240:rate={FPS}", "-t", "1", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=60)
    return list(load_clip(Path(path)).frames)


def test_feedback_comes_first_and_the_preroll_is_written_and_synced_behind_it(
        units: list[tuple[bytes, bool]]) -> None:
    """At a press the controller opens the segment and emits recording_started without
    muxing a byte; the worker then writes the whole pre-roll and fsyncs it; a stop is
    announced only after the seal it caused."""
    port, worker, events = Port(), QueuedWorker(), []
    rec = Recorder(port=port, video=VideoFormat(320, 240, FPS, 2_000_000, gop=15), audio=None,
                   prerecord_s=2, segment_s=60, worker=worker,
                   on_event=lambda kind, data: events.append(kind))
    interval = 1_000_000 // FPS
    for i in range(90):  # three seconds of video: the buffer holds two and a GOP at most
        data, key = units[i % len(units)]
        rec.on_packet(MediaPacket("video", data, 10_000_000 + i * interval, interval, key, i))
    held = len(rec.preroll)
    assert held >= 2 * FPS

    rec.start()
    assert events == ["recording_started"]
    assert port.calls == ["open"], "the controller did file work at the press"
    assert port.handles[0].sink.getvalue() == b"", "pre-roll muxed on the controller thread"
    assert worker.backlog == 2  # the whole pre-roll as one batch of writes, then the fsync

    worker.run()
    assert port.calls[-1].startswith("sync:") and int(port.calls[-1][5:]) > 0
    rec.stop()
    assert events == ["recording_started"], "stop announced before its seal was done"
    worker.drain()
    assert events == ["recording_started", "segment_sealed", "recording_stopped"]
    assert len(rec.sealed) == 1
    assert rec.sealed.last == {"frames": held, "bytes": len(port.handles[0].sink.getvalue())}


def test_packets_reach_the_worker_once_a_tick_not_once_each(
        units: list[tuple[bytes, bool]]) -> None:
    """While recording, routed packets wait on the controller until the next tick (or the
    next other file work) and go to the worker as one job: one worker wake-up per tick
    instead of one per packet; nothing is lost or reordered, and the recorder's backlog
    counts what is still waiting."""
    port, worker = Port(), QueuedWorker()
    rec = Recorder(port=port, video=VideoFormat(320, 240, FPS, 2_000_000, gop=15), audio=None,
                   prerecord_s=0, segment_s=60, worker=worker)
    interval = 1_000_000 // FPS
    rec.start()
    worker.drain()
    for i in range(6):
        data, key = units[i % len(units)]
        rec.on_packet(MediaPacket("video", data, 10_000_000 + i * interval, interval, key, i))
    assert worker.backlog == 0 and rec.backlog == 6
    rec.tick(10_000_000 + 6 * interval)
    assert worker.backlog == 1 and rec.backlog == 1
    worker.run()
    rec.stop()
    worker.drain()
    sealed = rec.sealed.last
    assert sealed is not None and sealed["frames"] == 6 and sealed["bytes"] > 0


class WorldPort(Port):
    """A port whose seal reports the matter in force when the recorder read the world."""

    def __init__(self) -> None:
        super().__init__()
        self.matter = "XCJC"

    def seal_later(self, handle: _Handle, **kw: Any) -> Callable[[SegmentStats, list[str]], Any]:
        matter, flags = self.matter, list(kw["flags"])

        def finish(stats: SegmentStats, extra: list[str]) -> dict[str, Any]:
            return {"matter": matter, "flags": [*flags, *extra], "frames": stats.frames}

        return finish


def test_a_matter_changed_while_the_audio_tail_arrives_belongs_to_the_next_segment(
        units: list[tuple[bytes, bool]]) -> None:
    """A roll ends a segment at its boundary keyframe; its audio tail arrives a little later
    and only then is it sealed. A matter chosen in between starts in the next segment: the
    ended one is sealed with the matter in force where it ended (read at the roll), and a
    flag added after the roll (a fault) still reaches its manifest."""
    port, worker = WorldPort(), QueuedWorker()
    rec = Recorder(port=port, video=VideoFormat(320, 240, FPS, 2_000_000, gop=15),
                   audio=AudioFormat(48_000, 1), prerecord_s=0, segment_s=1, worker=worker)
    interval, aac_us = 1_000_000 // FPS, 1024 * 1_000_000 // 48_000
    aac = b"\x21\x00\x49\x90\x02\x19\x00\x23\x80"
    rec.start()
    t_audio = 10_000_000
    for i in range(60):  # 2 s of video; audio lags 100 ms behind it
        data, key = units[i % len(units)]
        pts = 10_000_000 + i * interval
        rec.on_packet(MediaPacket("video", data, pts, interval, key, i))
        if i == 45:  # the roll keyframe (1.5 s) has just ended segment 0; its tail is due
            assert rec.sealed.count == 0 and rec.state == "recording"
            port.matter = "DCQZ"
        while t_audio < pts - 100_000:
            rec.on_packet(MediaPacket("audio", aac, t_audio, aac_us))
            t_audio += aac_us
    worker.drain()
    assert rec.sealed.count == 1
    assert rec.sealed.last is not None and rec.sealed.last["matter"] == "XCJC"
    rec.fault("camera: gone")  # segment 1 ends in a fault: flagged, with the new matter
    worker.drain()
    assert rec.sealed.last is not None and rec.sealed.last["matter"] == "DCQZ"
    assert "fault" in rec.sealed.last["flags"]
