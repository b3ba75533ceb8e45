"""Command rules, instantly, against fakes: triggers, live configuration, acknowledgements, covert.

Each test states one rule in its docstring and drives the real :class:`CommandSet` and
:class:`RecordingControl` through :class:`tests.recording.port_fakes.Rig` -- no threads, no
camera, no disk beyond a temporary directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.power.battery_policy import Admission
from agent.triggers import Activation
from tests.recording.port_fakes import Rig


def activation(action: str = "start", matter: str = "") -> Activation:
    return Activation(name="holster", pin=17, action=action, matter=matter, at=12.5)


# --- triggers ------------------------------------------------------------------------------
def test_a_trigger_starts_a_recording_flagged_with_its_name() -> None:
    """In standby a start trigger starts as a press would, the segment flagged
    ``trigger:<name>``, the start logged with the trigger as its origin."""
    rig = Rig()
    rig.commands.trigger(activation())
    assert rig.recorder.calls == [("start", "trigger")]
    assert rig.recorder.flags == ["trigger:holster"]
    (_kind, fields), = [e for e in rig.store.logged if e[0] == "command"]
    assert fields["outcome"] == "succeeded"
    assert fields["origin"] == {"via": "trigger", "name": "holster", "pin": 17}


def test_a_trigger_never_stops_a_recording() -> None:
    """While recording, any trigger only bookmarks (named after it); it never stops."""
    rig = Rig()
    rig.recorder.start(reason="button")
    rig.recorder.calls.clear()
    for action in ("start", "start_matter", "bookmark"):
        rig.commands.trigger(activation(action))
    assert [c for c, _ in rig.recorder.calls] == ["bookmark"] * 3
    assert rig.recorder.state == "recording"
    assert rig.indicators.calls == ["bookmark"] * 3


def test_a_trigger_refused_on_a_critical_battery_is_logged_as_refused() -> None:
    """A trigger passes the same admission as the button: refused, shown, logged, reported."""
    rig = Rig()
    rig.battery.admission = Admission(False, "battery critical: runtime_critical")
    rig.commands.trigger(activation())
    assert rig.recorder.calls == []
    assert rig.store.commands() == [("start", "refused")]
    assert rig.indicators.calls == ["refused"]
    assert rig.events()[-1] == "trigger"


# --- live configuration --------------------------------------------------------------------
def test_config_set_applies_the_change_and_persists_it(tmp_path: Path) -> None:
    """An allow-listed key is validated, applied to the running part and persisted; the answer
    carries the previous value, and the command is logged as succeeded."""
    rig = Rig(data_dir=tmp_path)
    applied: list[object] = []
    rig.settings.on_change("recording.segment_s", applied.append)
    reply = rig.commands.respond("config_set", {"key": "recording.segment_s", "value": 120})
    assert reply["ok"] and reply["result"]["previous"] == 60
    assert applied == [120] and rig.settings.cfg.recording.segment_s == 120
    saved = json.loads((tmp_path / "state" / "overrides.json").read_text())
    assert saved == {"recording.segment_s": 120}
    assert rig.store.commands() == [("config_set", "succeeded")]


def test_config_set_refuses_a_key_off_the_allow_list(tmp_path: Path) -> None:
    """Nothing that touches evidence can be set remotely: refused, logged, nothing written."""
    rig = Rig(data_dir=tmp_path)
    reply = rig.commands.respond("config_set", {"key": "evidence.encrypt", "value": False})
    assert not reply["ok"] and "cannot be set remotely" in reply["error"]
    assert rig.store.commands() == [("config_set", "refused")]
    assert not (tmp_path / "state").exists()


def test_an_unknown_default_matter_is_refused_before_anything_changes(tmp_path: Path) -> None:
    """The check registered for a key refuses before its effect runs and before persisting."""
    rig = Rig(data_dir=tmp_path)
    rig.settings.on_change("matters.default", rig.commands.default_matter,
                           check=rig.commands.check_matter)
    reply = rig.commands.respond("config_set", {"key": "matters.default", "value": "NO-SUCH"})
    assert not reply["ok"]
    assert rig.commands.matter_for_manifest() is None
    assert rig.settings.cfg.matters.default == ""
    assert not (tmp_path / "state").exists()


# --- acknowledgements and covert mode ------------------------------------------------------
def test_an_acknowledgement_by_device_seq_alone_is_refused() -> None:
    """Only a station's signed receipt makes a segment evictable; a bare number is refused."""
    rig = Rig()
    reply = rig.commands.respond("ack", {"device_seq": 3})
    assert not reply["ok"] and "signed receipt is required" in reply["error"]
    assert rig.store.commands() == [("ack", "refused")]


def test_double_press_and_hold_toggles_covert_mode() -> None:
    """The double_hold gesture turns covert mode on, then off, each logged as a command."""
    rig = Rig()
    rig.controller.gestures["double_hold"]()
    assert rig.indicators.covert
    rig.controller.gestures["double_hold"]()
    assert not rig.indicators.covert
    assert rig.store.commands() == [("covert", "succeeded"), ("covert", "succeeded")]
