"""PowerProjector: smoothed draw and remaining time from each kind of gauge."""

from __future__ import annotations

import pytest

from agent.power.projection import PowerProjector
from hw.power import BatteryReading


def test_power_readings_are_smoothed() -> None:
    """A one-off 20 W spike barely moves a 60 s EWMA fed every 5 s."""
    projector = PowerProjector(tau_s=60)
    for i in range(20):
        projector.update(BatteryReading("Discharging", energy_wh=10, power_w=4.0),
                         load="recording", now=i * 5.0)
    spike = projector.update(BatteryReading("Discharging", energy_wh=10, power_w=20.0),
                             load="recording", now=100.0)
    assert spike.method == "power"
    assert spike.draw_w is not None and 4.0 < spike.draw_w < 5.5
    assert spike.runtime_s == pytest.approx(10 / spike.draw_w * 3600)
    assert spike.recording_s == pytest.approx(spike.runtime_s)


def test_current_times_voltage_when_no_power() -> None:
    """Without power_w the draw is I × V; energy from percent × energy_full."""
    projector = PowerProjector()
    projection = projector.update(
        BatteryReading("Discharging", capacity_pct=50, energy_full_wh=20, current_a=1.0,
                       voltage_v=4.0), load="recording", now=0)
    assert projection.method == "current"
    assert projection.draw_w == pytest.approx(4.0)
    assert projection.energy_wh == pytest.approx(10)
    assert projection.runtime_s == pytest.approx(9000)


def test_standby_projects_recording_time_at_nominal_draw() -> None:
    """In standby, recording time uses the nominal recording draw until one is measured."""
    projector = PowerProjector(nominal_recording_w=5.0)
    standby = projector.update(BatteryReading("Discharging", energy_wh=10, power_w=2.0),
                               load="standby", now=0)
    assert standby.runtime_s == pytest.approx(18000)
    assert standby.recording_s == pytest.approx(7200)
    projector.update(BatteryReading("Discharging", energy_wh=10, power_w=4.0),
                     load="recording", now=10)
    again = projector.update(BatteryReading("Discharging", energy_wh=10, power_w=2.0),
                             load="standby", now=20)
    assert again.recording_s == pytest.approx(9000)


def test_capacity_slope_for_a_bare_percent_gauge() -> None:
    """A MAX17040 (percent only) is projected from the percent slope once it moves by 1 %."""
    projector = PowerProjector(pack_wh=18.5)
    first = projector.update(BatteryReading(capacity_pct=80), load="recording", now=0)
    assert first.runtime_s is None and first.method == "none"
    still = projector.update(BatteryReading(capacity_pct=80), load="recording", now=60)
    assert still.runtime_s is None
    moved = projector.update(BatteryReading(capacity_pct=78), load="recording", now=240)
    assert moved.method == "capacity_slope"
    assert moved.runtime_s == pytest.approx(78 / (2 / 240))
    assert moved.recording_s == pytest.approx(moved.runtime_s)
    assert moved.draw_w == pytest.approx(18.5 * 0.78 / moved.runtime_s * 3600)


def test_charging_suspends_projection() -> None:
    """While charging there is no runtime to project, and old slopes are forgotten."""
    projector = PowerProjector()
    projection = projector.update(BatteryReading("Charging", capacity_pct=40, power_w=-8.0),
                                  load="standby", now=0)
    assert projection.charging and projection.method == "charging"
    assert projection.runtime_s is None


def test_nothing_known_means_no_projection() -> None:
    """A reading with no figures at all projects nothing rather than guessing."""
    projection = PowerProjector().update(BatteryReading(), load="standby", now=0)
    assert projection.runtime_s is None and projection.recording_s is None
