"""Covert mode: LEDs dark and buzzer silent, one discreet vibration per event; entered by
``bodycam ctl covert on`` or the double-press-and-hold gesture, and logged as a command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.cli import _ctl_args
from agent.command.ctl_server import ctl_request
from agent.evidence.canonical import parse_canonical
from agent.evidence.log import replay_entries
from agent.recording.feedback import Feedback
from agent.recording.gestures import GestureRecognizer
from agent.testing import running_agent, small_config, wait_for
from hw.controls import Controls
from hw.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

PINS = {"recording": 27, "standby": 22, "fault": 23}
BUZZER, VIBRATION = 24, 25


def _highs(factory: Any, pin: int) -> int:
    """How often a mock pin went high since its history was last cleared."""
    return sum(1 for s in factory.pin(pin).states[1:] if s.state)


def _clear(factory: Any) -> None:
    for pin in (*PINS.values(), BUZZER, VIBRATION):
        factory.pin(pin).clear_states()


def test_in_covert_mode_a_start_lights_no_led_and_sounds_no_buzzer() -> None:
    """On the mock pins: a covert start, refusal, bookmark, warning and stop never raise an LED
    or the buzzer; the vibration motor gives one pulse per event; leaving covert mode lights
    the LED of the current state again."""
    factory = MockFactory()
    controls = Controls(pin_factory=factory, button=17, leds=PINS, buzzer=BUZZER,
                        vibration=VIBRATION)
    try:
        fb = Feedback(controls, reminder_s=1)
        fb.show("standby")
        assert factory.pin(PINS["standby"]).state
        assert fb.set_covert(True) is False
        assert not any(factory.pin(p).state for p in PINS.values())
        _clear(factory)
        fb.started(0.0)
        fb.show("recording")
        fb.bookmark()
        fb.refused()
        fb.warning()
        fb.tick(5.0)  # reminder due, but covert: none
        fb.stopped()
        fb.show("standby")
        vib = [c for d, _, c in controls.pulses if d == "vibration"]
        assert vib == [1, 1, 1, 1, 1]
        assert not [d for d, _, _ in controls.pulses if d == "buzzer"]
        # back-to-back pulses restart gpiozero's blink, so the pin shows at least one
        wait_for(lambda: _highs(factory, VIBRATION) >= 1 and not factory.pin(VIBRATION).state,
                 timeout=10)
        assert all(_highs(factory, p) == 0 for p in (*PINS.values(), BUZZER))
        fb.set_covert(False)
        assert factory.pin(PINS["standby"]).state
        fb.started(10.0)
        assert [d for d, _, _ in list(controls.pulses)[-2:]] == ["buzzer", "vibration"]
    finally:
        controls.close()
        factory.close()


def test_double_press_and_hold_is_its_own_gesture_and_never_a_stop() -> None:
    """Press, release, press and hold: ``double`` then ``double_hold`` -- never ``hold``; a hold
    of a first press is still ``hold``."""
    g = GestureRecognizer(hold_s=2.0, double_press_s=0.5)
    seen = [*g.pressed(0.0), *g.released(0.1), *g.pressed(0.3), *g.poll(1.0), *g.poll(2.4),
            *g.poll(3.0), *g.released(3.1)]
    assert seen == ["press", "click", "double", "double_hold"]
    later = [*g.pressed(10.0), *g.poll(12.1), *g.released(12.2)]
    assert later == ["press", "hold"]


def test_ctl_covert_is_logged_and_a_covert_start_stays_dark(tmp_path: Path) -> None:
    """Whole agent: ``ctl covert on`` is a command entry with the caller's uid; the start that
    follows raises no LED and no buzzer pin; the gesture turns it off again (logged as the
    button's)."""
    data = tmp_path / "data"
    with running_agent(small_config(), data) as agent:
        pins = agent.hw.sim["pins"]
        assert ctl_request(data, "covert", {"on": True})["result"] == {"covert": True,
                                                                      "previous": False}
        _clear(pins)
        assert ctl_request(data, "start")["ok"]
        wait_for(lambda: agent.recorder.state == "recording")
        wait_for(lambda: _highs(pins, VIBRATION) == 1)
        assert all(_highs(pins, p) == 0 for p in (*PINS.values(), BUZZER))
        assert not ctl_request(data, "covert", {"on": "yes"})["ok"]
        c = agent.hw.controls  # the gesture, through the simulated button pin
        for down in (True, False):
            c.sim_press()
            if down:
                c.sim_release()
        wait_for(lambda: not agent.feedback.covert, timeout=10)
        c.sim_release()
        assert agent.recorder.state == "recording"  # the hold of a double press never stops
        wait_for(lambda: pins.pin(PINS["recording"]).state)
    records = replay_entries((data / "log" / "entries.bin").read_bytes()).records
    covert = [e for e in map(parse_canonical, records)
              if e.get("type") == "command" and e["command"] == "covert"]
    assert [(e["args"], e["outcome"]) for e in covert] == [
        ({"on": True}, "succeeded"), ({"on": "yes"}, "refused"), ({"on": False}, "succeeded")]
    assert covert[0]["origin"] == {"via": "ctl", "uid": os.getuid(), "pid": os.getpid()}
    assert covert[2]["origin"] == {"via": "button", "gesture": "double_hold"}


def test_ctl_covert_arguments() -> None:
    """``bodycam ctl covert on|off``; anything else is a usage error (exit 2)."""
    assert _ctl_args("covert", ["on"]) == ("covert", {"on": True})
    assert _ctl_args("covert", ["off"]) == ("covert", {"on": False})
    for bad in ([], ["maybe"], ["on", "off"]):
        with pytest.raises(ConfigError, match="covert on"):
            _ctl_args("covert", bad)
