"""power_telemetry: flat JSON-able dicts with integer units."""

from __future__ import annotations

import json

from agent.power.battery_policy import BatteryVerdict
from agent.power.battery_telemetry import power_telemetry
from agent.power.projection import PowerProjection
from hw.power import BatteryReading


def test_full_reading_flattens_to_integers() -> None:
    """Volts, amps and watts become mV, mA, mW; temperature deci-degrees; times whole seconds."""
    reading = BatteryReading("Discharging", capacity_pct=64.4, voltage_v=3.842, current_a=1.05,
                             power_w=4.034, energy_wh=12.2944, temperature_c=31.2,
                             source="sysfs:bq27441-0", external_power=False)
    out = power_telemetry(reading, PowerProjection(4.0, 11064.96, 11064.96, 12.29, "power"),
                          BatteryVerdict("ok"))
    assert out == {
        "battery_status": "Discharging", "battery_source": "sysfs:bq27441-0",
        "battery_pct": 64, "battery_voltage_mv": 3842, "battery_current_ma": 1050,
        "battery_power_mw": 4034, "battery_energy_mwh": 12294, "battery_temp_dc": 312,
        "battery_undervoltage": False, "battery_throttled": False,
        "battery_external_power": False, "battery_draw_mw": 4000,
        "battery_runtime_s": 11065, "battery_recording_s": 11065,
        "battery_projection": "power", "battery_level": "ok", "battery_reasons": "",
    }
    assert json.loads(json.dumps(out)) == out


def test_unknown_values_are_left_out() -> None:
    """A bare gauge produces no null keys, only what it knows."""
    out = power_telemetry(BatteryReading(capacity_pct=87.0, voltage_v=4.012),
                          verdict=BatteryVerdict("warn", ("capacity_low", "undervoltage")))
    assert None not in out.values()
    assert "battery_current_ma" not in out and "battery_external_power" not in out
    assert out["battery_reasons"] == "capacity_low,undervoltage"
    assert all(isinstance(v, int | str | bool) for v in out.values())
