"""The Controls contract: button edges, LED modes, buzzer and vibration pulses, pin release.

Simulated with gpiozero's own ``MockFactory`` (the pins record every level change). With
``--hw pi`` the indicator checks run on the real GPIO chip through ``LGPIOFactory`` on the
pins in ``BODYCAM_GPIO_*`` (defaults as in ``config/default.toml``), reading the levels back
from the pins; checks that need a finger on the button run only in simulation.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gpiozero import LED, GPIOPinInUse
from gpiozero.pins.mock import MockFactory

from hw.controls import LEDS, Controls
from hw.factory import is_raspberry_pi

pytestmark = pytest.mark.timeout(30)

_DEFAULT_PINS = {"button": 17, "recording": 27, "standby": 22, "fault": 23, "buzzer": 24,
                 "vibration": 25}


@dataclass
class Rig:
    """Controls on a pin factory, and a way to watch a pin's levels over time."""

    controls: Controls
    factory: Any
    pins: dict[str, int]
    simulated: bool

    def level(self, name: str) -> bool:
        return bool(self.factory.pin(self.pins[name]).state)

    def watch(self, name: str) -> Watch:
        """Start recording a pin's levels now (before the action under test)."""
        return Watch(self.factory.pin(self.pins[name]), self.simulated)

    def levels_during(self, name: str, seconds: float) -> list[bool]:
        """The distinct successive levels of a pin over the next ``seconds``."""
        return self.watch(name).levels(seconds)


class Watch:
    """Level history of one pin: MockPin keeps it; a real pin is sampled every 5 ms."""

    def __init__(self, pin: Any, simulated: bool) -> None:
        self._pin = pin
        self._simulated = simulated
        self._samples: list[bool] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if simulated:
            pin.clear_states()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._samples.append(bool(self._pin.state))
            self._stop.wait(0.005)

    def levels(self, seconds: float) -> list[bool]:
        """Wait ``seconds``, then return the successive distinct levels seen since the start."""
        threading.Event().wait(seconds)
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            seen = self._samples
        else:
            seen = [bool(s.state) for s in self._pin.states]
        return [lvl for i, lvl in enumerate(seen) if i == 0 or lvl != seen[i - 1]]


def _pins_from_env() -> dict[str, int]:
    return {name: int(os.environ.get(f"BODYCAM_GPIO_{name.upper()}", str(pin)))
            for name, pin in _DEFAULT_PINS.items()}


@pytest.fixture
def rig(hw_kind: str) -> Iterator[Rig]:
    """Controls on MockFactory pins, or on the Pi's GPIO chip with --hw pi."""
    pins = dict(_DEFAULT_PINS)
    factory: Any
    if hw_kind == "pi":
        if not is_raspberry_pi():
            pytest.skip("--hw pi: not running on a Raspberry Pi")
        from gpiozero.pins.lgpio import LGPIOFactory

        pins = _pins_from_env()
        factory = LGPIOFactory()
    else:
        factory = MockFactory()
    controls = Controls(pin_factory=factory, button=pins["button"],
                        leds={name: pins[name] for name in LEDS}, buzzer=pins["buzzer"],
                        vibration=pins["vibration"])
    yield Rig(controls, factory, pins, hw_kind != "pi")
    controls.close()
    factory.close()


def _needs_sim(rig: Rig) -> None:
    if not rig.simulated:
        pytest.skip("needs a simulated button press")


def test_press_and_release_reach_the_callbacks_with_monotonic_times(rig: Rig) -> None:
    """Each edge calls its callback once, in order, stamped with time.monotonic()."""
    _needs_sim(rig)
    edges: list[tuple[str, float]] = []
    rig.controls.on_edges(lambda t: edges.append(("pressed", t)),
                          lambda t: edges.append(("released", t)))
    before = time.monotonic()
    rig.controls.sim_press()
    assert rig.controls.button_is_pressed
    rig.controls.sim_release()
    after = time.monotonic()
    assert not rig.controls.button_is_pressed
    assert [kind for kind, _ in edges] == ["pressed", "released"]
    times = [t for _, t in edges]
    assert before <= times[0] <= times[1] <= after


def test_the_button_costs_no_polling_thread() -> None:
    """The button is edge-driven: making it starts no thread of its own (gpiozero's Button
    would start a hold-detection thread waking ten times a second for the life of the unit;
    holds are the gesture recogniser's business), and presses still arrive."""
    before = set(threading.enumerate())
    factory = MockFactory()
    controls = Controls(pin_factory=factory, button=_DEFAULT_PINS["button"], leds={})
    try:
        started = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
        assert started == []
        edges: list[str] = []
        controls.on_edges(lambda _t: edges.append("p"), lambda _t: edges.append("r"))
        controls.sim_press()
        controls.sim_release()
        assert edges == ["p", "r"]
    finally:
        controls.close()


def test_repeated_presses_each_produce_one_edge_pair(rig: Rig) -> None:
    """Three presses give exactly three pressed and three released edges."""
    _needs_sim(rig)
    edges: list[str] = []
    rig.controls.on_edges(lambda _t: edges.append("p"), lambda _t: edges.append("r"))
    for _ in range(3):
        rig.controls.sim_press()
        rig.controls.sim_release()
    assert edges == ["p", "r"] * 3


def test_leds_on_and_off_drive_their_pins(rig: Rig) -> None:
    """'on' drives exactly that LED's pin high; 'off' drives it low; modes are remembered."""
    for name in LEDS:
        rig.controls.set_led(name, "on")
        assert rig.level(name)
        assert not any(rig.level(other) for other in LEDS if other != name)
        assert rig.controls.led_modes[name] == "on"
        rig.controls.set_led(name, "off")
        assert not rig.level(name)
        assert rig.controls.led_modes[name] == "off"


def test_blink_modes_toggle_the_pin_and_fast_is_faster(rig: Rig) -> None:
    """'blink' and 'fast' alternate the pin in the background, 'fast' more often; 'off' stops it."""
    rig.controls.set_led("fault", "blink")
    slow = rig.levels_during("fault", 1.2)
    rig.controls.set_led("fault", "fast")
    fast = rig.levels_during("fault", 1.2)
    rig.controls.set_led("fault", "off")
    after = rig.levels_during("fault", 0.3)
    assert len(slow) >= 3 and True in slow and False in slow
    assert len(fast) > len(slow) + 2
    assert after in ([False], [])
    assert not rig.level("fault")


def test_buzzer_pulses_the_requested_count_and_ends_silent(rig: Rig) -> None:
    """pulse('buzzer', count=3) beeps three times in the background and leaves the pin low."""
    watch = rig.watch("buzzer")
    before = time.monotonic()
    rig.controls.pulse("buzzer", count=3, on_s=0.06, off_s=0.06)
    returned = time.monotonic()
    levels = watch.levels(0.6)
    assert levels[0] is False and levels.count(True) == 3
    assert not rig.level("buzzer")
    device, at, count = rig.controls.pulses[-1]
    assert (device, count) == ("buzzer", 3) and before <= at <= returned


def test_vibration_pulses_on_its_own_pin(rig: Rig) -> None:
    """pulse('vibration') drives the motor pin, not the buzzer."""
    watch = rig.watch("vibration")
    rig.controls.pulse("vibration", count=2, on_s=0.06, off_s=0.06)
    levels = watch.levels(0.45)
    assert levels == [False, True, False, True, False]
    assert not rig.level("buzzer")


def test_close_releases_every_pin(rig: Rig) -> None:
    """While open the pins are reserved; after close() each can be claimed again."""
    with pytest.raises(GPIOPinInUse):
        LED(rig.pins["recording"], pin_factory=rig.factory)
    rig.controls.close()
    for name in ("recording", "standby", "fault", "buzzer", "vibration"):
        LED(rig.pins[name], pin_factory=rig.factory).close()


def test_unfitted_devices_are_accepted_and_recorded(hw_kind: str) -> None:
    """Pin 0 means 'not fitted': modes and pulses are recorded without touching any pin."""
    if hw_kind != "sim":
        pytest.skip("simulated pins only")
    factory = MockFactory()
    controls = Controls(pin_factory=factory, button=0, leds={"recording": 0}, buzzer=0)
    try:
        controls.on_edges(lambda _t: None, lambda _t: None)
        controls.set_led("recording", "on")
        controls.pulse("buzzer", count=2)
        assert controls.led_modes == {"recording": "on"}
        assert controls.pulses[-1][::2] == ("buzzer", 2)
        assert not controls.button_is_pressed
    finally:
        controls.close()
        factory.close()
