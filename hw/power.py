"""Power seam: battery and supply readings.

Contract (checked by ``tests/contract/test_power_contract.py``): ``read()`` never raises for a
missing optional attribute (it becomes None) and returns promptly; it raises
:class:`hw.errors.PowerError` only when the source itself is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["BatteryReading", "PowerMonitor"]


@dataclass(frozen=True, slots=True)
class BatteryReading:
    """A snapshot of the battery and supply; every field but ``status`` is optional."""

    status: str = "Unknown"  # Charging | Discharging | Full | Not charging | Unknown
    capacity_pct: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None  # positive while discharging
    power_w: float | None = None
    energy_wh: float | None = None  # energy remaining, where the gauge knows it
    energy_full_wh: float | None = None
    temperature_c: float | None = None
    undervoltage: bool = False
    throttled: bool = False
    source: str = "none"
    external_power: bool | None = None  # mains/USB present (None: the source cannot tell)


@runtime_checkable
class PowerMonitor(Protocol):
    """Anything that can report the battery (sysfs gauge, INA219, PiSugar, simulator)."""

    def read(self) -> BatteryReading:
        """Take one reading."""
        ...

    def set_load(self, state: str) -> None:
        """Tell the source what the recorder is doing (only simulators act on it)."""
        ...
