"""Battery telemetry: a flat, JSON-ready dict for the MQTT ``telemetry`` topic and status line.

Values are ints, strings and bools only. Physical quantities are integers in milli-units
(mV, mA, mW) or deci-degrees, and times and percents are whole numbers, so that a
"publish on change" comparison is not triggered by float noise and the back office never
parses locale-dependent decimals. A key whose value is unknown is left out rather than sent
as null, so a consumer's schema stays simple (absent = the device cannot tell).
"""

from __future__ import annotations

from agent.power.battery_policy import BatteryVerdict
from agent.power.projection import PowerProjection
from hw.power import BatteryReading

__all__ = ["power_telemetry"]


def _milli(value: float | None) -> int | None:
    return round(value * 1000) if value is not None else None


def _whole(value: float | None) -> int | None:
    return round(value) if value is not None else None


def power_telemetry(
    reading: BatteryReading,
    projection: PowerProjection | None = None,
    verdict: BatteryVerdict | None = None,
) -> dict[str, int | str | bool]:
    """Flatten one reading, its projection and verdict into ``battery_*`` keys."""
    out: dict[str, int | str | bool | None] = {
        "battery_status": reading.status,
        "battery_source": reading.source,
        "battery_pct": _whole(reading.capacity_pct),
        "battery_voltage_mv": _milli(reading.voltage_v),
        "battery_current_ma": _milli(reading.current_a),
        "battery_power_mw": _milli(reading.power_w),
        "battery_energy_mwh": _milli(reading.energy_wh),
        "battery_temp_dc": (round(reading.temperature_c * 10)
                            if reading.temperature_c is not None else None),
        "battery_undervoltage": reading.undervoltage,
        "battery_throttled": reading.throttled,
        "battery_external_power": reading.external_power,
    }
    if projection is not None:
        out["battery_draw_mw"] = _milli(projection.draw_w)
        out["battery_runtime_s"] = _whole(projection.runtime_s)
        out["battery_recording_s"] = _whole(projection.recording_s)
        out["battery_projection"] = projection.method
    if verdict is not None:
        out["battery_level"] = verdict.level
        out["battery_reasons"] = ",".join(verdict.reasons)
    return {key: value for key, value in out.items() if value is not None}
