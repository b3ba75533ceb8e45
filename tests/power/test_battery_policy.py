"""BatteryPolicy: warn, critical, hysteresis, undervoltage grace, charging, admission."""

from __future__ import annotations

import pytest

from agent.power.battery_policy import CRITICAL, OK, WARN, BatteryPolicy
from agent.power.projection import PowerProjection, PowerProjector
from hw.power import BatteryReading
from hw.power_sim import SimBattery

DISCHARGING = BatteryReading("Discharging", capacity_pct=50.0)


def projected(recording_s: float | None) -> PowerProjection:
    return PowerProjection(4.0, recording_s, recording_s, 10.0, "power")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_thresholds_in_recording_seconds() -> None:
    """Above 15 min ok, at or below 15 min warn, at or below 3 min critical."""
    policy = BatteryPolicy()
    assert policy.evaluate(DISCHARGING, projected(901), 0).level == OK
    assert policy.evaluate(DISCHARGING, projected(900), 1).reasons == ("runtime_low",)
    verdict = policy.evaluate(DISCHARGING, projected(180), 2)
    assert verdict.level == CRITICAL and verdict.critical
    assert verdict.reasons == ("runtime_critical",)


def test_hysteresis_prevents_flapping() -> None:
    """Once warned, a projection bouncing just above the threshold stays a warning."""
    policy = BatteryPolicy(hysteresis_s=60)
    policy.evaluate(DISCHARGING, projected(890), 0)
    assert policy.evaluate(DISCHARGING, projected(950), 1).level == WARN
    assert policy.evaluate(DISCHARGING, projected(961), 2).level == OK
    policy.evaluate(DISCHARGING, projected(170), 3)
    assert policy.evaluate(DISCHARGING, projected(230), 4).level == CRITICAL
    assert policy.evaluate(DISCHARGING, projected(241), 5).level == WARN


def test_refuses_to_start_below_critical() -> None:
    """can_start is false with a reason while critical, true otherwise."""
    policy = BatteryPolicy()
    assert policy.can_start()
    policy.evaluate(DISCHARGING, projected(100), 0)
    admission = policy.can_start()
    assert not admission
    assert "battery critical" in admission.reason and "runtime_critical" in admission.reason


def test_undervoltage_grace_period() -> None:
    """Undervoltage warns at once and becomes critical only after persisting for the grace."""
    policy = BatteryPolicy(undervoltage_grace_s=10)
    sagging = BatteryReading("Discharging", capacity_pct=80, undervoltage=True)
    assert policy.evaluate(sagging, projected(5000), 100.0).reasons == ("undervoltage",)
    assert policy.evaluate(sagging, projected(5000), 109.9).level == WARN
    verdict = policy.evaluate(sagging, projected(5000), 110.0)
    assert verdict.level == CRITICAL and verdict.reasons == ("undervoltage_persistent",)
    # A dip that clears restarts the timer.
    assert policy.evaluate(DISCHARGING, projected(5000), 111).level == OK
    assert policy.evaluate(sagging, projected(5000), 112).level == WARN


def test_charging_clears_runtime_warnings_but_not_undervoltage() -> None:
    """On the charger a low battery is fine; a sagging supply is not."""
    policy = BatteryPolicy()
    charging = PowerProjection(None, None, None, 1.0, "charging", charging=True)
    assert policy.evaluate(BatteryReading("Charging", capacity_pct=3), charging, 0).level == OK
    plugged = BatteryReading("Not charging", capacity_pct=3, external_power=True)
    assert policy.evaluate(plugged, projected(30), 1).level == OK
    sagging = BatteryReading("Charging", capacity_pct=3, undervoltage=True)
    assert policy.evaluate(sagging, charging, 2).level == WARN


def test_percent_fallback_without_projection() -> None:
    """Before any projection exists, the percent decides (15 % warn, 5 % critical)."""
    policy = BatteryPolicy()
    none = PowerProjection(None, None, None, None, "none")
    assert policy.evaluate(BatteryReading(capacity_pct=16), none, 0).level == OK
    assert policy.evaluate(BatteryReading(capacity_pct=15), none, 1).reasons == ("capacity_low",)
    assert policy.evaluate(BatteryReading(capacity_pct=4), none, 2).reasons == (
        "capacity_critical",)
    assert policy.evaluate(BatteryReading(), none, 3).level == OK


def test_invalid_thresholds() -> None:
    """critical must lie below warn."""
    with pytest.raises(ValueError):
        BatteryPolicy(warn_s=100, critical_s=200)


def test_simulated_pack_drains_through_warn_then_critical() -> None:
    """A recording on a 2 Wh sim pack reaches warn at ≤15 min left, then critical at ≤3 min."""
    clock = Clock()
    battery = SimBattery(2.0, clock=clock)
    battery.set_load("recording")
    projector, policy = PowerProjector(), BatteryPolicy()
    levels: list[tuple[float, str]] = []
    while clock.t < 4 * 3600:
        reading = battery.read()
        projection = projector.update(reading, load="recording", now=clock.t)
        verdict = policy.evaluate(reading, projection, clock.t)
        if not levels or levels[-1][1] != verdict.level:
            levels.append((clock.t, verdict.level))
        if verdict.critical:
            break
        clock.t += 10
    assert [level for _, level in levels] == [OK, WARN, CRITICAL]
    # 2 Wh at 4 W lasts 1800 s: warn from 900 s left, critical from 180 s left.
    assert levels[1][0] == pytest.approx(1800 - 900, abs=10)
    assert levels[2][0] == pytest.approx(1800 - 180, abs=10)
    assert not policy.can_start()
    assert battery.read().energy_wh > 0  # stopped while energy remained
