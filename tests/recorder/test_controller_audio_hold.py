"""The controller's audio hold: standby encodes a second at a time, a press takes in all of it.

The real controller thread, a real recorder and the agent's AAC encoder (audio-only, muxed
into memory by the real segment writer). Everything is queued before the loop is asked to
quit; quitting processes the queue first, so the test waits on the loop's end, never on time.
"""

from __future__ import annotations

import itertools
from typing import Any

from agent.recording.aac import AacEncoder
from agent.recording.controller import Controller, Request
from agent.recording.gestures import GestureRecognizer
from agent.recording.packets import MediaPacket
from agent.recording.recorder import Recorder
from hw.audio import AudioChunk
from tests.recorder.test_controller_side_channels import AUDIO, BASE_US, CHUNK_US, MemoryPort

FRAME_US = 1024 * 1_000_000 // AUDIO.sample_rate


def test_standby_encodes_in_second_runs_and_a_press_takes_the_held_audio_after_its_feedback(
) -> None:
    port = MemoryPort()
    timeline: list[tuple[str, Any, int]] = []  # (what, detail, chunks taken in by then)
    ctl: Controller | None = None

    def event(kind: str, data: dict[str, Any]) -> None:
        assert ctl is not None
        timeline.append(("event", kind, ctl.audio_chunks_in))

    def seen(p: MediaPacket) -> None:
        assert ctl is not None
        timeline.append(("packet", p.pts_us, ctl.audio_chunks_in))

    rec = Recorder(port=port, video=None, audio=AUDIO, segment_s=60, prerecord_s=4,
                   on_event=event)
    ctl = Controller(recorder=rec, aac=AacEncoder(AUDIO, bitrate=64_000),
                     gestures=GestureRecognizer(), frame_interval_us=0)
    ctl.observe_packets(seen)
    ctl.handle("start", lambda req: {"recording_id": rec.start()})
    ctl.handle("stop", lambda req: rec.stop() or {"state": str(rec.state)})
    pcm = bytes(2 * AUDIO.sample_rate * CHUNK_US // 1_000_000)
    chunks = (AudioChunk(pcm, BASE_US + i * CHUNK_US, len(pcm) // 2) for i in itertools.count())

    ctl.start()
    for chunk in itertools.islice(chunks, 150):  # three seconds of standby
        ctl.on_audio(chunk)
    started = ctl.submit(Request("start"))
    for chunk in itertools.islice(chunks, 25):
        ctl.on_audio(chunk)
    ctl.submit(Request("stop"))
    for chunk in itertools.islice(chunks, 25):
        ctl.on_audio(chunk)
    ctl.stop(timeout=60)
    assert started.result and not ctl.running

    start_at = timeline.index(("event", "recording_started", 150))
    standby = [t for t in timeline[:start_at] if t[0] == "packet"]
    # three seconds in standby: packets come out in at most three runs, not one per chunk
    assert standby and len({taken for _, _, taken in standby}) <= 3
    released = [t for t in timeline[start_at + 1:] if t[0] == "packet" and t[2] == 150]
    # the press took in what was held, after its feedback and before the next chunk came:
    # the recording's audio reaches the press, short of it only by what no encoder can give
    # yet: the part of a frame not complete, and libavcodec's own delay (two frames at most)
    assert released, "the held audio waited for the next chunk"
    press_us = BASE_US + 150 * CHUNK_US
    assert press_us - 3 * FRAME_US <= released[-1][1] + FRAME_US <= press_us
    pts = [t[1] for t in timeline if t[0] == "packet"]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert sum(r["packets"] for r in port.results) == sum(
        port.results[0]["first_us"] <= p < port.results[-1]["end_us"] for p in pts)
