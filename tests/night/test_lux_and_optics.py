"""The light seam: every camera reports a per-frame lux estimate (the simulator from its
day/night model); the night optics drive the IR illuminator and IR-cut filter together."""

from __future__ import annotations

import itertools
import threading

import pytest
from gpiozero.pins.mock import MockFactory

from hw.camera import Camera, EncodedFrame
from hw.camera_sim import SimCamera
from hw.controls import Controls
from hw.ir import GpioNightOptics, NightOptics
from hw.light_sim import NIGHT_LUX, SimLight, daylight_lux

pytestmark = pytest.mark.timeout(30)


def test_sim_camera_reports_lux_per_frame() -> None:
    """None before the first frame; then the light model's level (within its flicker)."""
    light = SimLight(flicker=0.1)
    cam = SimCamera(width=160, height=120, fps=30, bitrate=200_000, light=light, overlay=False)
    assert isinstance(cam, Camera) and cam.lux() is None
    got = threading.Event()

    def sink(frame: EncodedFrame) -> None:
        if frame.index >= 3:
            got.set()

    light.hold(42.0)
    cam.start(sink)
    try:
        assert got.wait(10)
        lux = cam.lux()
        assert lux is not None and 42.0 * 0.9 <= lux <= 42.0 * 1.1
    finally:
        cam.stop()


def test_daylight_falls_through_dusk_and_rises_through_dawn() -> None:
    """Monotonic from noon to 18:00 and from 06:00 to noon; street light all night."""
    dusk = [daylight_lux(12 + i * 0.01) for i in range(601)]
    dawn = [daylight_lux(6 + i * 0.01) for i in range(601)]
    assert all(a >= b for a, b in itertools.pairwise(dusk))
    assert all(a <= b for a, b in itertools.pairwise(dawn))
    assert daylight_lux(0) == daylight_lux(23) == NIGHT_LUX


def test_the_cycle_is_accelerable_and_a_torch_overrides_it() -> None:
    """A 24 s day runs an hour a second; a held level wins until released."""
    now = [0.0]
    light = SimLight(day_s=24, hour=17, flicker=0, mono=lambda: now[0])
    now[0] = 2.0
    assert light.hour() == pytest.approx(19.0)
    assert light.lux() == NIGHT_LUX
    light.hold(5000)
    assert light.lux() == 5000
    light.release()
    assert light.lux() == NIGHT_LUX
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            light.hold(bad)
    with pytest.raises(ValueError):
        light.cycle(day_s=0)


def test_optics_switch_both_outputs_together_and_skip_unfitted_parts() -> None:
    """Night drives the LED and filter pins high, day low; a unit with only LEDs works."""
    factory = MockFactory()
    controls = Controls(pin_factory=factory, button=17, leds={})
    try:
        both = GpioNightOptics(controls, ir_led_pin=12, ircut_pin=13)
        assert isinstance(both, NightOptics) and not both.night
        both.set_night(True)
        assert factory.pin(12).state and factory.pin(13).state and both.night
        both.set_night(False)
        assert not factory.pin(12).state and not factory.pin(13).state
        leds_only = GpioNightOptics(controls, ir_led_pin=16, ircut_pin=0)
        leds_only.set_night(True)
        assert factory.pin(16).state
    finally:
        controls.close()
        factory.close()
