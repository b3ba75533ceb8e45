"""Battery from the Linux ``power_supply`` class (fuel-gauge drivers).

``/sys/class/power_supply/<name>/`` holds one small file per attribute. Which attributes exist
depends on the driver, so every one is optional:

==================  ======================  =====================================================
attribute           unit                    notes
==================  ======================  =====================================================
``type``            text                    ``Battery``, ``Mains``, ``USB``, ...
``status``          text                    Charging, Discharging, Full, Not charging, Unknown
``capacity``        %                       MAX17040/MAX1704x, BQ27xxx
``voltage_now``     µV
``current_now``     µA                      sign differs by driver (see below)
``power_now``       µW                      some drivers give ``power_avg`` instead
``energy_now``      µWh                     and ``energy_full``
``charge_now``      µAh                     and ``charge_full``; energy = charge × voltage_now
``temp``            0.1 °C
``online``          0/1                     on ``Mains``/``USB`` supplies: external power present
==================  ======================  =====================================================

Current sign: the ABI document (``Documentation/ABI/testing/sysfs-class-power``) says negative
while discharging, and current BQ27xxx drivers follow it, but older drivers (and some
out-of-tree gauges) report a positive magnitude whatever the direction. The reader therefore
trusts ``status`` first: Discharging → positive, Charging → negative (our convention,
:class:`hw.power.BatteryReading`: positive = discharging); only when the status says neither
does it fall back to the ABI sign. ``power_now`` is treated the same way.

A read error on one attribute (some gauges answer ``ENODATA`` until their first conversion)
makes that field None; only a vanished supply directory raises :class:`hw.errors.PowerError`.

:func:`write_fake_supply` builds trees modelled on real drivers, so tests and the simulator
share them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from hw.errors import PowerError
from hw.power import BatteryReading
from hw.throttle import ThrottleSource

__all__ = [
    "BQ27441_DISCHARGING",
    "MAX17040",
    "SysfsBattery",
    "find_battery",
    "write_fake_rpi_volt",
    "write_fake_supply",
]

_log = logging.getLogger(__name__)

_EXTERNAL_TYPES = frozenset({"Mains", "USB", "USB_C", "USB_PD", "USB_DCP", "USB_CDP", "Wireless"})

MAX17040: Mapping[str, str] = {
    # max17040_battery.c: a bare SoC gauge, no current sense.
    "type": "Battery",
    "present": "1",
    "capacity": "87",
    "voltage_now": "4012000",
}
"""A MAX17040/MAX1704x fuel gauge: capacity and voltage only."""

BQ27441_DISCHARGING: Mapping[str, str] = {
    # bq27xxx_battery.c on a BQ27441: the full set, current negative while discharging.
    "type": "Battery",
    "present": "1",
    "status": "Discharging",
    "capacity": "64",
    "capacity_level": "Normal",
    "voltage_now": "3842000",
    "current_now": "-1050000",
    "power_avg": "-4034000",
    "charge_now": "3200000",
    "charge_full": "5000000",
    "charge_full_design": "5000000",
    "temp": "312",
    "technology": "Li-ion",
}
"""A BQ27441 gauge mid-discharge (3.2 of 5 Ah, 1.05 A, 31.2 °C)."""


def write_fake_supply(root: Path, name: str, attrs: Mapping[str, str | int]) -> Path:
    """Create or update ``root/name`` with one file per attribute (for tests and demos)."""
    supply = Path(root) / name
    supply.mkdir(parents=True, exist_ok=True)
    for key, value in attrs.items():
        (supply / key).write_text(f"{value}\n")
    return supply


def write_fake_rpi_volt(hwmon_root: Path, *, alarm: bool, index: int = 0) -> Path:
    """Create or update a Pi's ``rpi_volt`` hwmon device under ``hwmon_root``."""
    device = Path(hwmon_root) / f"hwmon{index}"
    device.mkdir(parents=True, exist_ok=True)
    (device / "name").write_text("rpi_volt\n")
    (device / "in0_lcrit_alarm").write_text(f"{int(alarm)}\n")
    return device


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def find_battery(root: Path) -> Path | None:
    """The first supply of type ``Battery`` that powers the system (``scope`` not Device)."""
    try:
        entries = sorted(Path(root).iterdir())
    except OSError:
        return None
    for entry in entries:
        if _read_text(entry / "type") != "Battery":
            continue
        if _read_text(entry / "scope") == "Device":  # a peripheral's battery, not ours
            continue
        return entry
    return None


def _signed_discharge(raw: int | None, status: str, scale: float) -> float | None:
    """Normalise a driver's signed value to our convention (positive = discharging)."""
    if raw is None:
        return None
    magnitude = abs(raw) * scale
    if status == "Discharging":
        return magnitude
    if status == "Charging":
        return -magnitude
    return -raw * scale  # ABI convention: negative while discharging


class SysfsBattery:
    """A fuel gauge under ``/sys/class/power_supply``; stateless, safe from any thread."""

    def __init__(
        self,
        root: Path = Path("/sys/class/power_supply"),
        name: str | None = None,
        *,
        throttle: ThrottleSource | None = None,
    ) -> None:
        self._root = Path(root)
        if name is not None:
            self._dir = self._root / name
            if not self._dir.is_dir():
                raise PowerError(f"power supply {name!r} not found under {self._root}")
        else:
            found = find_battery(self._root)
            if found is None:
                raise PowerError(f"no battery (type=Battery) under {self._root}")
            self._dir = found
        self._throttle = throttle
        self._throttle_warned = False

    @property
    def path(self) -> Path:
        """The supply directory in use."""
        return self._dir

    def set_load(self, state: str) -> None:
        """A real gauge measures the load itself; nothing to do."""

    def read(self) -> BatteryReading:
        """Read every attribute the driver offers."""
        if not self._dir.is_dir():
            raise PowerError(f"power supply {self._dir} disappeared")
        get = self._dir.joinpath
        status = _read_text(get("status")) or "Unknown"
        voltage_uv = _read_int(get("voltage_now"))
        voltage = voltage_uv / 1e6 if voltage_uv is not None else None
        current = _signed_discharge(_read_int(get("current_now")), status, 1e-6)
        power_raw = _read_int(get("power_now"))
        if power_raw is None:
            power_raw = _read_int(get("power_avg"))
        power = _signed_discharge(power_raw, status, 1e-6)
        energy, energy_full = self._energy(voltage)
        capacity = _read_int(get("capacity"))
        capacity_pct: float | None = float(capacity) if capacity is not None else None
        if capacity_pct is None and energy is not None and energy_full:
            capacity_pct = round(100.0 * energy / energy_full, 1)
        temp = _read_int(get("temp"))
        undervoltage, throttled = self._supply_flags()
        return BatteryReading(
            status=status,
            capacity_pct=capacity_pct,
            voltage_v=voltage,
            current_a=current,
            power_w=power,
            energy_wh=energy,
            energy_full_wh=energy_full,
            temperature_c=temp / 10.0 if temp is not None else None,
            undervoltage=undervoltage,
            throttled=throttled,
            source=f"sysfs:{self._dir.name}",
            external_power=self._external_power(),
        )

    def _energy(self, voltage: float | None) -> tuple[float | None, float | None]:
        now = _read_int(self._dir / "energy_now")
        full = _read_int(self._dir / "energy_full")
        if now is not None or full is not None:
            return (now / 1e6 if now is not None else None,
                    full / 1e6 if full is not None else None)
        charge = _read_int(self._dir / "charge_now")
        charge_full = _read_int(self._dir / "charge_full")
        if voltage is None:
            return None, None
        # µAh × V: an approximation that reads low under heavy load; good enough to project.
        return (charge * voltage / 1e6 if charge is not None else None,
                charge_full * voltage / 1e6 if charge_full is not None else None)

    def _external_power(self) -> bool | None:
        seen = False
        try:
            entries = sorted(self._root.iterdir())
        except OSError:
            return None
        for entry in entries:
            if _read_text(entry / "type") not in _EXTERNAL_TYPES:
                continue
            seen = True
            if _read_int(entry / "online") == 1:
                return True
        return False if seen else None

    def _supply_flags(self) -> tuple[bool, bool]:
        if self._throttle is None:
            return False, False
        try:
            state = self._throttle.read()
        except PowerError as exc:
            if not self._throttle_warned:
                _log.warning("supply flags unavailable, assuming none: %s", exc)
                self._throttle_warned = True
            return False, False
        return state.undervoltage, state.throttled or state.freq_capped
