"""Battery rules at their edges (agent/power/battery_policy.py): the defaults an agency relies on, the
refusals of nonsense settings, inclusive hysteresis bands, and how supply and energy combine.
Pure rules with explicit times, like tests/power/test_battery_policy.py."""

from __future__ import annotations

import re

import pytest

from agent.power.battery_policy import CRITICAL, OK, WARN, BatteryPolicy
from agent.power.projection import PowerProjection
from hw.power import BatteryReading

DISCHARGING = BatteryReading("Discharging", capacity_pct=50.0)
NO_PROJECTION = PowerProjection(None, None, None, None, "none")


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


def projected(recording_s: float | None, *, charging: bool = False) -> PowerProjection:
    return PowerProjection(4.0, recording_s, recording_s, 10.0, "power", charging=charging)


def test_defaults() -> None:
    """Warn at 15 min, critical at 3 min, 10 s undervoltage grace, 1 min hysteresis, and
    15 % / 5 % / 2 % for a bare percent gauge."""
    p = BatteryPolicy()
    assert (p.warn_s, p.critical_s, p.undervoltage_grace_s, p.hysteresis_s, p.warn_pct,
            p.critical_pct, p.hysteresis_pct) == (900, 180, 10, 60, 15.0, 5.0, 2.0)
    assert p.verdict.level == OK and p.verdict.reasons == () and p.verdict.recording_s is None
    assert p.can_start() and p.can_start().reason == ""


@pytest.mark.parametrize("kw", [
    {"critical_s": -1}, {"critical_s": 900}, {"warn_s": 100, "critical_s": 200},
    {"critical_pct": -1}, {"critical_pct": 15.0}, {"warn_pct": 5, "critical_pct": 10},
])
def test_critical_must_lie_below_warn(kw: dict[str, float]) -> None:
    """For seconds and for percent: 0 <= critical < warn, with the rule in the message."""
    with pytest.raises(ValueError, match=exactly(
            "need 0 <= critical < warn for both seconds and percent")):
        BatteryPolicy(**kw)


@pytest.mark.parametrize("kw", [{"undervoltage_grace_s": -1}, {"hysteresis_s": -0.1},
                                {"hysteresis_pct": -0.1}])
def test_grace_and_hysteresis_cannot_be_negative(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=exactly("grace and hysteresis cannot be negative")):
        BatteryPolicy(**kw)


def test_zero_is_a_legitimate_setting_everywhere() -> None:
    """Critical at zero, no grace, no hysteresis: allowed (a bench may want them)."""
    p = BatteryPolicy(critical_s=0, critical_pct=0, undervoltage_grace_s=0, hysteresis_s=0,
                      hysteresis_pct=0)
    sagging = BatteryReading("Discharging", capacity_pct=80, undervoltage=True)
    assert p.evaluate(sagging, projected(5000), 1.0).level == CRITICAL  # no grace at all


def test_critical_band_is_inclusive_and_leads_to_warn() -> None:
    """Once critical, exactly critical + hysteresis is still critical; beyond it is a warning
    (not OK), and warn + hysteresis is still a warning."""
    p = BatteryPolicy(warn_s=900, critical_s=180, hysteresis_s=60)
    assert p.evaluate(DISCHARGING, projected(100), 0).level == CRITICAL
    assert p.evaluate(DISCHARGING, projected(240), 1).level == CRITICAL
    assert p.evaluate(DISCHARGING, projected(240.5), 2).level == WARN
    assert p.evaluate(DISCHARGING, projected(960), 3).level == WARN
    assert p.evaluate(DISCHARGING, projected(960.5), 4).level == OK


def test_percent_hysteresis_uses_the_percent_margin() -> None:
    """On a percent gauge the band is hysteresis_pct wide, not hysteresis_s."""
    p = BatteryPolicy()
    assert p.evaluate(BatteryReading(capacity_pct=15), NO_PROJECTION, 0).reasons == (
        "capacity_low",)
    assert p.evaluate(BatteryReading(capacity_pct=17), NO_PROJECTION, 1).level == WARN
    verdict = p.evaluate(BatteryReading(capacity_pct=17.5), NO_PROJECTION, 2)
    assert verdict.level == OK and verdict.reasons == ()
    critical = p.evaluate(BatteryReading(capacity_pct=5), NO_PROJECTION, 3)
    assert critical.reasons == ("capacity_critical",)
    assert p.evaluate(BatteryReading(capacity_pct=7), NO_PROJECTION, 4).level == CRITICAL


@pytest.mark.parametrize("reading", [
    BatteryReading("Full", capacity_pct=3), BatteryReading("Charging", capacity_pct=3),
    BatteryReading("Discharging", capacity_pct=3, external_power=True)])
def test_on_external_power_a_low_battery_is_fine(reading: BatteryReading) -> None:
    """Full, charging or plugged in: no runtime or capacity warning, whatever the figures."""
    p = BatteryPolicy()
    verdict = p.evaluate(reading, projected(30), 0)
    assert verdict.level == OK and verdict.reasons == ()


def test_a_charging_projection_is_fine_too() -> None:
    """The projector's own view that the pack is charging also clears runtime warnings."""
    p = BatteryPolicy()
    assert p.evaluate(DISCHARGING, projected(30, charging=True), 0).level == OK


def test_supply_and_energy_combine_worst_first_with_both_reasons() -> None:
    """A sagging supply during a low runtime: the worse level, supply reasons first, and the
    verdict carries the projected recording time."""
    p = BatteryPolicy()
    sagging = BatteryReading("Discharging", capacity_pct=20, undervoltage=True)
    v = p.evaluate(sagging, projected(100), 0)
    assert (v.level, v.reasons, v.recording_s) == (CRITICAL, ("undervoltage",
                                                              "runtime_critical"), 100)
    v = p.evaluate(sagging, projected(5000), 20)
    assert (v.level, v.reasons) == (CRITICAL, ("undervoltage_persistent",))
    assert p.can_start().reason == "battery critical: undervoltage_persistent"


def test_supply_criticality_does_not_enter_the_energy_hysteresis() -> None:
    """A critical supply with plenty of energy leaves the energy level at OK: when the supply
    recovers, a runtime in the critical band's margin is a warning, not critical."""
    p = BatteryPolicy(undervoltage_grace_s=0)
    sagging = BatteryReading("Discharging", capacity_pct=80, undervoltage=True)
    assert p.evaluate(sagging, projected(5000), 0).level == CRITICAL
    assert p.evaluate(DISCHARGING, projected(200), 1).level == WARN


def test_can_start_names_every_reason() -> None:
    """A refusal lists all the reasons of the critical verdict."""
    p = BatteryPolicy(undervoltage_grace_s=0)
    sagging = BatteryReading("Discharging", capacity_pct=80, undervoltage=True)
    p.evaluate(sagging, projected(10), 0)
    admission = p.can_start()
    assert not admission
    assert admission.reason == "battery critical: undervoltage_persistent, runtime_critical"
    p.evaluate(DISCHARGING, projected(5000), 1)
    assert p.can_start()


def test_a_new_warning_threshold_applies_from_the_next_reading() -> None:
    """A live power.warn_min change moves the warning threshold for the next verdict."""
    p = BatteryPolicy()
    assert p.evaluate(DISCHARGING, projected(1000), 0).level == OK
    p.set_warn_s(1200)
    assert p.warn_s == 1200
    assert p.evaluate(DISCHARGING, projected(1000), 1).reasons == ("runtime_low",)
