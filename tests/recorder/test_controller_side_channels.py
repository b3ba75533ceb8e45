"""The controller loop: observers, periodic tasks and the event consumer cannot stop a recording.

The real controller thread runs a real recorder (audio-only: real AAC from the agent's encoder,
muxed by the real segment writer into memory). Everything is queued before the loop is asked
to quit, and quitting processes the queue and drains the recorder first, so the test waits on
the loop's end, never on time.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.recording.aac import AacEncoder
from agent.recording.controller import Controller, Request
from agent.recording.gestures import GestureRecognizer
from agent.recording.packets import MediaPacket
from agent.recording.recorder import Recorder
from agent.recording.segment import SegmentStats
from hw.audio import AudioChunk, AudioFormat

AUDIO = AudioFormat(48_000, 1)
CHUNK_US = 20_000
BASE_US = 10_000_000


@dataclass
class _Handle:
    seq: int
    flags: list[str]
    sink: io.BytesIO = field(default_factory=io.BytesIO)


class MemoryPort:
    """Segments in memory; a seal returns what the writer muxed."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int,
                     flags: list[str]) -> _Handle:
        return _Handle(seq, flags)

    def sync(self, handle: _Handle) -> None:
        pass

    def seal(self, handle: Any, **kw: Any) -> dict[str, Any]:
        raise AssertionError("the recorder seals in two steps")

    def seal_later(self, handle: _Handle, **kw: Any) -> Callable[[SegmentStats, list[str]], Any]:
        def finish(stats: SegmentStats, extra: list[str]) -> dict[str, Any]:
            return {"seq": handle.seq, "opened_with": handle.flags, "flags": extra,
                    "packets": stats.audio_packets, "first_us": stats.audio_first_pts_us,
                    "end_us": stats.audio_end_us}
        return finish

    def sealed(self, result: dict[str, Any]) -> dict[str, Any]:
        self.results.append(result)
        return result

    def abandon(self, handle: Any) -> None:
        raise AssertionError("no storage failure here")


def broken(*_args: Any) -> None:
    raise RuntimeError("this side channel is broken")


def test_failing_observers_ticks_and_event_consumer_leave_the_recording_whole() -> None:
    """A packet observer, a periodic task and the event consumer that raise every time: the
    recording starts, rolls, stops on command and every packet is in one segment, in order."""
    port = MemoryPort()
    rec = Recorder(port=port, video=None, audio=AUDIO, segment_s=0.5, prerecord_s=0.2,
                   on_event=broken)
    encoder = AacEncoder(AUDIO, bitrate=64_000)
    ctl = Controller(recorder=rec, aac=encoder, gestures=GestureRecognizer(),
                     frame_interval_us=0)
    seen: list[MediaPacket] = []
    ctl.observe_packets(seen.append)
    ctl.observe_packets(broken)
    ctl.every_tick(broken)
    ctl.handle("start", lambda req: {"recording_id": rec.start()})
    ctl.handle("stop", lambda req: rec.stop() or {"state": str(rec.state)})
    pcm = bytes(2 * AUDIO.sample_rate * CHUNK_US // 1_000_000)
    chunks = (AudioChunk(pcm, BASE_US + i * CHUNK_US, len(pcm) // 2) for i in itertools.count())

    ctl.start()
    for chunk in itertools.islice(chunks, 50):  # one second of pre-event audio
        ctl.on_audio(chunk)
    started = ctl.submit(Request("start"))
    for chunk in itertools.islice(chunks, 150):  # three seconds: several rolls
        ctl.on_audio(chunk)
    stopped = ctl.submit(Request("stop"))
    for chunk in itertools.islice(chunks, 20):  # the tail, then the ring again
        ctl.on_audio(chunk)
    ctl.stop(timeout=60)

    assert not ctl.running
    assert started.result and started.result["recording_id"] and stopped.result
    assert port.results[0]["opened_with"] == ["preroll"]
    assert rec.state == "standby" and rec.fault_reason is None
    assert len(port.results) >= 5 and len(rec.sealed) == len(port.results)
    assert all(not s["flags"] for s in port.results)
    for before, after in itertools.pairwise(port.results):  # AAC pts are rounded to the µs
        assert abs(after["first_us"] - before["end_us"]) <= 1, "a gap or overlap between segments"
    first, end = port.results[0]["first_us"], port.results[-1]["end_us"]
    assert sum(s["packets"] for s in port.results) == sum(first <= p.pts_us < end for p in seen)
    assert ctl.side_channel_failures >= len(seen) + rec.events.calls
    assert rec.events.failures == rec.events.calls >= 2 + len(port.results)
