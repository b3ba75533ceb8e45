"""SimBattery: the energy model, its stimulus verbs and its history."""

from __future__ import annotations

import pytest

from hw.power_sim import SimBattery


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_drains_by_load_state() -> None:
    """Energy falls by draw × time: 1 h recording at 4 W from 18.5 Wh leaves 14.5 Wh."""
    clock = Clock()
    battery = SimBattery(18.5, clock=clock)
    battery.set_load("recording")
    clock.advance(3600)
    reading = battery.read()
    assert reading.energy_wh == pytest.approx(14.5)
    assert reading.capacity_pct == pytest.approx(100 * 14.5 / 18.5, abs=0.01)
    assert reading.power_w == 4.0
    assert reading.status == "Discharging"
    assert reading.current_a == pytest.approx(4.0 / 3.95, rel=0.05)
    battery.set_load("off")
    clock.advance(3600)
    assert battery.read().energy_wh == pytest.approx(14.5)


def test_time_scale_fast_forwards() -> None:
    """With time_scale 60, one wall minute drains one battery hour."""
    clock = Clock()
    battery = SimBattery(10.0, clock=clock, time_scale=60, draw_w={"standby": 2.0})
    clock.advance(60)
    assert battery.read().energy_wh == pytest.approx(8.0)
    assert battery.battery_seconds == pytest.approx(3600)


def test_voltage_follows_the_curve_and_sags_under_load() -> None:
    """A fuller battery shows a higher voltage; recording sags it below standby."""
    clock = Clock()
    battery = SimBattery(clock=clock, percent=90)
    v_full = battery.read().voltage_v
    battery.set_capacity(20)
    v_low_standby = battery.read().voltage_v
    battery.set_load("recording")
    v_low_recording = battery.read().voltage_v
    assert v_full is not None and v_low_standby is not None and v_low_recording is not None
    assert v_full > v_low_standby > v_low_recording


def test_plug_charges_and_reports_full() -> None:
    """Plugged: status Charging and negative current until full; unplug resumes discharge."""
    clock = Clock()
    battery = SimBattery(10.0, percent=50, clock=clock, charge_w=10.0)
    battery.plug()
    clock.advance(900)
    reading = battery.read()
    assert reading.status == "Charging"
    assert reading.current_a is not None and reading.current_a < 0
    assert reading.external_power is True
    assert reading.energy_wh == pytest.approx(7.5)
    clock.advance(1800)
    assert battery.read().status == "Full"
    battery.unplug()
    assert battery.read().status == "Discharging"


def test_die_at_collapses_the_capacity() -> None:
    """A worn pack set to die at 20 % goes to zero there, flags undervoltage and logs it."""
    clock = Clock()
    battery = SimBattery(10.0, percent=25, clock=clock, draw_w={"standby": 10.0})
    battery.die_at(20)
    clock.advance(60)  # 0.167 Wh: 23.3 %
    assert battery.read().capacity_pct == pytest.approx(23.33, abs=0.01)
    clock.advance(180)  # past 20 %
    reading = battery.read()
    assert reading.capacity_pct == 0
    assert reading.undervoltage is True
    assert reading.power_w == 0.0
    assert [e.what for e in battery.history][-1] == "died"


def test_undervoltage_and_set_draw_stimuli_are_recorded() -> None:
    """Stimuli change the model and land in the history in order."""
    clock = Clock()
    battery = SimBattery(clock=clock)
    battery.set_draw("recording", 6.0)
    battery.undervoltage(True)
    battery.set_load("recording")
    reading = battery.read()
    assert reading.undervoltage is True
    assert reading.power_w == 6.0
    battery.undervoltage(False)
    assert battery.read().undervoltage is False
    assert [(e.what, e.detail) for e in battery.history] == [
        ("set_draw", "recording=6"), ("undervoltage", "True"), ("load", "recording"),
        ("undervoltage", "False")]
    assert battery.load == "recording"


def test_invalid_stimuli_are_refused() -> None:
    """Unknown load states and impossible values are ValueErrors."""
    battery = SimBattery()
    with pytest.raises(ValueError, match="unknown load state"):
        battery.set_load("streaming")
    with pytest.raises(ValueError):
        battery.set_capacity(120)
    with pytest.raises(ValueError):
        battery.set_draw("standby", -1)
    with pytest.raises(ValueError):
        SimBattery(0)
