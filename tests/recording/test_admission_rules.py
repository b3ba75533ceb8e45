"""Starting a recording, whoever asks: the admission rule and what a refusal leaves behind.

Instant tests of :class:`RecordingControl` wired to fakes (``port_fakes.Rig``, as the agent
wires the real parts): a dying battery, a full disk or a recorder in fault refuses a start
with the reason the officer is shown and the fleet is sent; an admitted start reaches the
recorder with its origin and flags; a stop remembers why.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from agent.power.battery_policy import Admission
from agent.recording.control import RecordingControl
from hw.errors import RecordingRefused
from hw.still import Still
from tests.recording.port_fakes import FakeRecorder, Rig


class Link:
    """The fleet link's view: what reached it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sealed: list[Any] = []

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def segment_sealed(self, signed: Any) -> None:
        self.sealed.append(signed)


def test_an_admitted_start_reaches_the_recorder_with_its_origin_and_flags() -> None:
    rig = Rig()
    rig.recording.stop_reason = "button"  # the last recording's
    assert rig.recording.admission() is None
    assert rig.recording.start_recording("trigger:holster", flags=["trigger"]) == "r1"
    assert rig.recorder.calls == [("start", "trigger:holster")]
    assert rig.recorder.flags == ["trigger"]
    assert rig.recording.stop_reason is None  # a running recording has no stop reason
    assert rig.recording.refusals == 0 and "refused" not in rig.indicators.calls


@pytest.mark.parametrize("cause", ["battery", "storage", "fault"])
def test_each_cause_refuses_with_its_own_reason_and_leaves_a_trace(cause: str) -> None:
    """Refused: the recorder is not touched, the officer gets the refusal feedback, the event
    names the reason and the origin (for the fleet), the exception carries the reason."""
    rig = Rig()
    link = Link()
    rig.recording.sync = link  # type: ignore[assignment]
    if cause == "battery":
        rig.battery.admission = Admission(False, "battery critical (3 %)")
        reason = "battery critical (3 %)"
    elif cause == "storage":
        rig.storage.admission = Admission(False, "storage full")
        reason = "storage full"
    else:
        rig.recorder.fault("camera stalled")
        reason = "recorder fault: camera stalled"
    rig.recorder.calls.clear()
    assert rig.recording.admission() == reason
    with pytest.raises(RecordingRefused) as refused:
        rig.recording.start_recording("ctl")
    assert str(refused.value) == f"recording refused: {reason}"
    assert rig.recorder.calls == [] and rig.recorder.state != "recording"
    assert rig.recording.refusals == 1 and rig.indicators.calls.count("refused") == 1
    expected = ("recording_refused", {"reason": reason, "origin": "ctl"})
    assert rig.recording.events[-1] == expected and link.events[-1] == expected
    with pytest.raises(RecordingRefused):
        rig.recording.start_recording("button")
    assert rig.recording.refusals == 2  # counted, for status and telemetry


def test_the_battery_is_asked_first_and_storage_measured_now() -> None:
    """Both refuse: the officer is told about the battery (the more urgent); the storage rule
    is judged at the present monotonic time, not a stale one."""
    rig = Rig()
    rig.battery.admission = Admission(False, "battery critical")
    rig.storage.admission = Admission(False, "storage full")
    assert rig.recording.admission() == "battery critical"
    rig.battery.admission = Admission(True)
    before = time.monotonic()
    assert rig.recording.admission() == "storage full"
    assert rig.storage.measured_at and rig.storage.measured_at[-1] >= before


def test_a_unit_without_a_battery_gauge_is_admitted_on_storage_alone() -> None:
    rig = Rig()
    rig.recording._battery = None  # a mains-powered fixed unit
    assert rig.recording.admission() is None
    rig.storage.admission = Admission(False, "storage full")
    assert rig.recording.admission() == "storage full"


def test_a_stop_remembers_its_reason() -> None:
    rig = Rig(recorder=FakeRecorder("recording"))
    rig.recording.stop_recording("console:alice: scene cleared")
    assert rig.recording.stop_reason == "console:alice: scene cleared"
    assert rig.recorder.calls == [("stop", "console:alice: scene cleared")]


def test_recorder_events_drive_the_feedback_and_a_fault_is_logged_as_evidence() -> None:
    rig = Rig()
    link = Link()
    rig.recording.sync = link  # type: ignore[assignment]
    started: list[float] = []
    rig.indicators.started = started.append  # type: ignore[method-assign]
    before = time.monotonic()
    rig.recording.recorder_event("recording_started", {"recording_id": "r1"})
    assert len(started) == 1 and before <= started[0] <= time.monotonic()  # the reminder's clock
    rig.recording.recorder_event("recording_stopped", {"recording_id": "r1", "manifest": {}})
    rig.recording.recorder_event("fault", {"reason": "disk"})
    assert rig.indicators.calls == ["show:recording", "stopped", "show:standby", "show:fault"]
    assert rig.meter.paused == 1
    assert rig.store.logged == [("fault", {"reason": "disk"})]
    # the manifest is the evidence's business, not the event stream's
    assert [k for k, _ in link.events] == ["recording_started", "recording_stopped", "fault"]
    assert link.events[1][1] == {"recording_id": "r1"}


def test_a_fresh_control_has_refused_nothing_and_no_stop_reason() -> None:
    rig = Rig()
    assert (rig.recording.refusals, rig.recording.stop_reason, rig.recording.events) == (
        0, None, [])


def test_only_the_latest_events_are_kept_and_each_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    """The event list lives as long as the process: bounded (the latest 200); every event is
    in the agent's log, kind and data."""
    rig = Rig()
    with caplog.at_level(logging.INFO, logger="agent.recording.control"):
        for i in range(250):
            rig.recording.event("bookmark", {"i": i})
    assert caplog.messages[-1] == "event bookmark {'i': 249}"
    assert len(rig.recording.events) == 200
    assert rig.recording.events[0] == ("bookmark", {"i": 50})
    assert rig.recording.events[-1] == ("bookmark", {"i": 249})


def test_a_sealed_segment_goes_to_the_fleet_link_when_there_is_one() -> None:
    rig = Rig()
    rig.recording.segment_sealed("m")  # type: ignore[arg-type]  # no link: nothing, no error
    link = Link()
    rig.recording.sync = link  # type: ignore[assignment]
    rig.recording.segment_sealed("m")  # type: ignore[arg-type]
    assert link.sealed == ["m"]


class StillCamera:
    """A camera that also takes stills (the stills profile's); keeps what it took."""

    frames_delivered = frames_dropped = 0

    def __init__(self) -> None:
        self.taken: list[Still] = []

    def capture_still(self) -> Still:
        self.taken.append(Still(b"\xff\xd8jpeg\xff\xd9", 64, 48, 1_000_000))
        return self.taken[-1]


def test_the_stills_profile_takes_a_sealed_picture_under_the_same_admission() -> None:
    """A press on a stills unit seals one picture as its own recording (bookmark feedback,
    a ``still`` event); a refusal is the same rule and feedback as a recording's, and a camera
    that cannot take stills refuses instead of recording video."""
    sealed: list[tuple[Still, dict[str, Any]]] = []

    def seal_still(still: Still, **kw: Any) -> dict[str, Any]:
        sealed.append((still, kw))
        return {"device_seq": 7}

    rig = Rig(profile="stills")
    camera = StillCamera()
    control = RecordingControl(recorder=rig.recorder, indicators=rig.indicators,
                               store=rig.store, storage=rig.storage, battery=rig.battery,
                               meter=rig.meter, camera=camera,  # type: ignore[arg-type]
                               seal_still=seal_still, profile="stills")
    rid = control.start_recording("button")
    assert len(rid) == 32 and int(rid, 16) >= 0  # a fresh recording id, hex
    assert len(sealed) == 1 and sealed[0][0] is camera.taken[0]
    assert sealed[0][1] == {"recording_id": rid, "flags": [], "bookmarks": []}
    assert rig.recorder.calls == []  # no video recording
    assert rig.indicators.calls == ["bookmark"]
    assert control.events[-1] == ("still", {"recording_id": rid, "device_seq": 7,
                                            "origin": "button"})
    rig.storage.admission = Admission(False, "storage full")
    with pytest.raises(RecordingRefused, match="still refused: storage full"):
        control.start_recording("button")
    assert len(sealed) == 1 and rig.indicators.calls[-1] == "refused"
    assert control.events[-1] == ("recording_refused",
                                  {"reason": "storage full", "origin": "button"})
    video_only = RecordingControl(recorder=rig.recorder, indicators=rig.indicators,
                                  store=rig.store, storage=rig.storage, battery=rig.battery,
                                  meter=rig.meter, camera=rig.camera,  # type: ignore[arg-type]
                                  seal_still=seal_still, profile="stills")
    with pytest.raises(RecordingRefused) as refused:
        video_only.start_recording("button")
    assert str(refused.value) == "this camera cannot take stills"
