"""The supervisor's reaction rules and the command set's admission, instantly, against fakes.

Each test states one rule (its docstring is the hypothesis) and builds only the parts the rule
involves (:mod:`tests.recording.port_fakes`): no threads, no camera, no disk, no sleeps.
"""

from __future__ import annotations

import itertools

import pytest

from agent.power.battery_policy import Admission, BatteryVerdict
from agent.storage.space_policy import StorageVerdict
from tests.recording.port_fakes import FakeMicrophone, Rig


def battery(level: str, *reasons: str) -> BatteryVerdict:
    return BatteryVerdict(level, reasons, 60.0)


def storage(level: str, *reasons: str) -> StorageVerdict:
    return StorageVerdict(level, reasons, 10, 100, 0, 1000.0)


# --- command admission ---------------------------------------------------------------------
def test_a_start_refused_when_battery_critical_is_refused_and_the_press_was_processed() -> None:
    """With the battery critical, ``ctl start`` is refused with the battery's reason; the
    refusal is shown to the officer, sent as an event and logged as a refused command, and the
    recorder was never told to start."""
    rig = Rig()
    rig.battery.admission = Admission(False, "battery critical: runtime_critical")
    reply = rig.commands.respond("start", {})
    assert not reply["ok"] and "battery critical" in reply["error"]
    assert rig.recorder.calls == [] and rig.recorder.state == "standby"
    assert rig.indicators.calls == ["refused"]
    assert "recording_refused" in rig.events()
    assert rig.store.commands() == [("start", "refused")]


def test_a_press_refused_when_battery_critical_is_processed_as_a_start() -> None:
    """A press in standby means start: with the battery critical it is judged by the same
    admission (refused, shown, logged with the button gesture as origin), not ignored."""
    rig = Rig()
    rig.battery.admission = Admission(False, "battery critical: runtime_critical")
    rig.controller.gestures["click"]()
    assert rig.recorder.calls == []
    assert rig.indicators.calls == ["refused"]
    (_kind, fields), = [e for e in rig.store.logged if e[0] == "command"]
    assert fields["outcome"] == "refused" and fields["origin"]["gesture"] == "click"


def test_storage_is_measured_afresh_for_every_start() -> None:
    """Admission asks the storage watch with the current time (a forced reading), and a full
    disk refuses like a critical battery."""
    rig = Rig()
    rig.storage.admission = Admission(False, "storage full: read-only")
    assert not rig.commands.respond("start", {})["ok"]
    assert len(rig.storage.measured_at) == 1
    rig.storage.admission = Admission(True)
    assert rig.commands.respond("start", {})["ok"]
    assert rig.recorder.calls == [("start", "ctl")] and len(rig.storage.measured_at) == 2


def test_a_faulted_recorder_refuses_to_start() -> None:
    """A recorder in fault is not started by a press; the fault is the reason given."""
    rig = Rig()
    rig.recorder.fault("camera stalled")
    reply = rig.commands.respond("start", {})
    assert not reply["ok"] and "recorder fault: camera stalled" in reply["error"]


def test_a_knock_on_the_ctl_press_path_does_not_stop_recording() -> None:
    """``bodycam ctl press`` while recording (a knock, a short press) changes nothing: only a
    hold stops. The press is answered with the status, and nothing is logged as a stop."""
    rig = Rig()
    rig.recorder.start(reason="button")
    rig.recorder.calls.clear()
    reply = rig.commands.respond("press", {})
    assert reply == {"ok": True, "result": {"state": "recording"}}
    assert rig.recorder.calls == [] and rig.recorder.state == "recording"
    assert ("stop", "succeeded") not in rig.store.commands()


def test_a_hold_on_the_ctl_path_stops_recording() -> None:
    """The counterpart of the knock rule: a hold on the same path does stop, logged as such."""
    rig = Rig()
    rig.recorder.start(reason="button")
    rig.commands.respond("hold", {})
    assert ("stop", "ctl") in rig.recorder.calls
    assert rig.store.commands() == [("stop", "succeeded")]


def test_a_fixed_camera_cannot_be_stopped_by_a_hold() -> None:
    """Profile ``fixed`` records continuously: a hold is not a stop."""
    rig = Rig(profile="fixed")
    rig.recorder.start(reason="continuous")
    rig.recorder.calls.clear()
    rig.commands.respond("hold", {})
    assert rig.recorder.calls == [] and rig.recorder.state == "recording"


def test_the_officer_reaches_the_picture_overlay() -> None:
    """``ctl officer`` sets the id for manifests and burns it into the picture."""
    rig = Rig()
    assert rig.commands.respond("officer", {"id": "PC 4711"})["ok"]
    assert rig.commands.officer_id == "PC 4711" and rig.camera.officer == "PC 4711"


# --- supervisor reactions ------------------------------------------------------------------
def test_critical_battery_stops_the_recording_and_logs_why() -> None:
    """A critical battery seals and stops with reason ``low_battery`` and logs
    ``low_battery_shutdown``; the indicators show the warning state."""
    rig = Rig()
    rig.recorder.start(reason="button")
    rig.battery.verdicts = [battery("critical", "runtime_critical")]
    rig.supervisor.tick(1.0)
    assert ("stop", "low_battery") in rig.recorder.calls
    assert rig.commands.stop_reason == "low_battery"
    assert "low_battery_shutdown" in rig.store.kinds()
    assert rig.indicators.calls[-1] == "show:stopping:warning"
    assert rig.battery.loads == ["recording"]


def test_a_battery_warning_warns_once_and_does_not_stop() -> None:
    """A warning is shown and sent once per change of level; recording goes on."""
    rig = Rig()
    rig.recorder.start(reason="button")
    rig.battery.verdicts = [battery("warn", "runtime_low"), battery("warn", "runtime_low")]
    rig.supervisor.tick(1.0)
    rig.supervisor.tick(2.0)
    assert rig.recorder.state == "recording"
    assert rig.indicators.calls.count("warning") == 1
    assert rig.events().count("battery") == 1


def test_full_storage_tries_eviction_then_stops() -> None:
    """Full storage first evicts acknowledged segments; still full, it stops the recording with
    ``storage_full`` and logs it."""
    rig = Rig()
    rig.recorder.start(reason="button")
    rig.storage.verdicts = [storage("full", "below_reserve"), storage("full", "below_reserve")]
    rig.supervisor.tick(1.0)
    assert rig.evictions == [1]
    assert ("stop", "storage_full") in rig.recorder.calls
    assert "storage_full" in rig.store.kinds()


def test_eviction_that_frees_enough_keeps_recording() -> None:
    """When eviction brings the disk back to ok, nothing is stopped."""
    rig = Rig()
    rig.recorder.start(reason="button")
    rig.storage.verdicts = [storage("full", "below_reserve"), storage("ok")]
    rig.supervisor.tick(1.0)
    assert rig.evictions == [1] and rig.recorder.state == "recording"


def test_a_camera_stall_faults_the_recording_and_restarts_the_camera() -> None:
    """No frames for ``stall_after_s`` while recording: the recorder faults (sealing what is
    open), the camera is restarted through its own ``restart`` and the restart is logged; the
    fault stays until frames flow again, then the recorder returns to standby."""
    rig = Rig(stall_after_s=2.0)
    rig.recorder.start(reason="button")
    rig.supervisor.tick(10.0)  # first sight of the frame count
    rig.supervisor.tick(12.5)
    assert rig.recorder.calls[1][0] == "fault"
    assert rig.camera.restarts == 1
    assert "camera_restart" in rig.store.kinds()
    assert "camera_stall" in rig.events()
    rig.supervisor.tick(12.6)
    assert rig.recorder.state == "fault", "cleared before a single frame came back"
    rig.camera.frames_delivered += 30
    rig.supervisor.tick(13.0)
    assert rig.recorder.state == "standby" and rig.indicators.calls[-1] == "show:standby"


def test_a_stall_that_survives_restarts_is_declared_a_failed_camera() -> None:
    """A camera that stays dark after three restarts: ``camera_failed`` is logged once, the
    fault is shown with a warning, and restarts go on with a growing pause (10 s, 20 s, ...
    at most 5 min) instead of every few seconds; frames coming back clear it all."""
    rig = Rig(stall_after_s=2.0)
    rig.recorder.start(reason="button")
    restarts_at = []
    t = 10.0
    rig.supervisor.tick(t)
    while t < 200.0:
        t += 0.5
        before = rig.camera.restarts
        rig.supervisor.tick(t)
        if rig.camera.restarts > before:
            restarts_at.append(t)
    assert rig.store.kinds().count("camera_failed") == 1
    assert rig.recorder.state == "fault" and "warning" in rig.indicators.calls
    assert rig.events().count("camera_failed") == 1
    gaps = [b - a for a, b in itertools.pairwise(restarts_at)]
    assert all(g <= 8 for g in gaps[:2]), gaps  # the first three restarts, seconds apart
    assert gaps[3] > gaps[2] >= 10 and max(gaps) <= 300, gaps
    rig.camera.frames_delivered += 30
    rig.supervisor.tick(t + 0.5)
    assert rig.recorder.state == "standby"
    rig.supervisor.tick(t + 3.0)  # a later stall is a fresh one: three quick restarts again
    assert rig.store.kinds().count("camera_failed") == 1


def test_a_camera_that_cannot_be_restarted_leaves_the_fault_shown() -> None:
    """When the restart fails the fault stays (and is retried after 5 s, not at every tick)."""
    rig = Rig(stall_after_s=2.0)
    rig.camera.restart_error = OSError("wedged")
    rig.recorder.start(reason="button")
    rig.supervisor.tick(10.0)
    rig.supervisor.tick(12.5)
    assert rig.recorder.state == "fault" and rig.indicators.calls[-1] == "show:fault"
    assert "camera_restart" not in rig.store.kinds()


def test_frames_flowing_never_trigger_the_watchdog() -> None:
    """A camera whose count advances is never restarted, however long it runs."""
    rig = Rig(stall_after_s=2.0)
    for t in range(100):
        rig.camera.frames_delivered += 30
        rig.supervisor.tick(float(t))
    assert rig.camera.restarts == 0 and rig.frame_watchdog.stalls == 0


@pytest.mark.parametrize("preroll, started", [(0, False), (30, True)])
def test_a_fixed_camera_starts_by_itself_once_it_has_pictures(preroll: int, started: bool) -> None:
    """Profile ``fixed`` starts recording on its own, but only once the pre-roll holds
    something (a recording must begin on a keyframe)."""
    rig = Rig(profile="fixed")
    rig.recorder.preroll.packets = preroll
    rig.camera.frames_delivered = 1
    rig.supervisor.tick(1.0)
    assert (("start", "continuous") in rig.recorder.calls) is started


def test_a_storage_fault_is_retried_until_the_disk_takes_writes() -> None:
    """In a storage fault the supervisor probes the disk every 5 s (after letting the fault be
    seen); while the probe fails the recorder stays in fault."""
    rig = Rig()
    rig.recorder.fault("storage: EIO writing a segment")
    for t in (1.0, 3.0, 6.5):  # the camera keeps delivering: only the disk is at fault
        rig.camera.frames_delivered += 30
        rig.supervisor.tick(t)
    assert ("drain", None) in rig.recorder.calls and rig.recorder.state == "fault"
    assert "storage_recovered" not in rig.events()


def test_a_dead_microphone_beside_a_camera_is_restarted_and_the_recording_goes_on() -> None:
    """Camera frames flowing, no audio for ``stall_after_s``: reported and warned, the stream
    is stopped and started again, the restart logged with the recording; nothing is stopped
    and the recorder never faults (the video is intact)."""
    rig = Rig(stall_after_s=2.0, microphone=FakeMicrophone())
    rig.recorder.start(reason="button")
    for t in (10.0, 11.0, 12.5):
        rig.camera.frames_delivered += 30
        rig.supervisor.tick(t)
    assert rig.microphone is not None and rig.microphone.calls == ["stop", "start"]
    assert "microphone_stall" in rig.events() and "warning" in rig.indicators.calls
    (_kind, fields), = [e for e in rig.store.logged if e[0] == "microphone_restart"]
    assert fields == {"reason": "stall", "recording_id": "r1"}
    assert rig.recorder.state == "recording" and rig.frame_watchdog.stalls == 0


def test_audio_flowing_beside_a_camera_never_restarts_the_microphone() -> None:
    """While chunks arrive the microphone is left alone, however long the recording runs."""
    rig = Rig(stall_after_s=2.0, microphone=FakeMicrophone())
    for t in range(60):
        rig.camera.frames_delivered += 30
        rig.audio_chunks += 10
        rig.supervisor.tick(float(t))
    assert rig.microphone is not None and rig.microphone.calls == []
