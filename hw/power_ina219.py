"""Battery from a TI INA219 current/voltage monitor on I²C, plus a Li-ion discharge curve.

The INA219 measures the bus voltage and, across a shunt resistor, the current; it knows nothing
of the battery's state of charge. We estimate that from the open-circuit voltage (the bus
voltage plus the drop across the cell's internal resistance at the measured current) on a
Li-ion OCV curve.

Register map (INA219 datasheet, SBOS448): 0x00 configuration, 0x01 shunt voltage (LSB 10 µV,
signed), 0x02 bus voltage (bits 15..3, LSB 4 mV; bit 1 CNVR, bit 0 OVF), 0x03 power
(LSB 20 × current LSB), 0x04 current (signed, LSB chosen by calibration), 0x05 calibration
(``trunc(0.04096 / (current_LSB × R_shunt))``). The chip sends registers most significant byte
first, whereas SMBus "word" transfers are least significant byte first: reads therefore use
``read_i2c_block_data(addr, reg, 2)`` and writes swap the bytes for ``write_word_data``.

Wiring: the shunt sits high-side between the battery and the load, so a positive current is
the battery discharging (our convention); pass ``invert_current=True`` if it is wired the
other way round.

:class:`Ina219Chip` beside the driver is a stateful model of the register file behind an
smbus2-like interface (for tests and the simulator).
"""

from __future__ import annotations

import bisect
import errno
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hw.errors import PowerError
from hw.power import BatteryReading
from hw.throttle import ThrottleSource

__all__ = [
    "LIION_OCV",
    "DischargeCurve",
    "Ina219Battery",
    "Ina219Chip",
    "SMBusLike",
]

_log = logging.getLogger(__name__)

REG_CONFIG = 0x00
REG_SHUNT = 0x01
REG_BUS = 0x02
REG_POWER = 0x03
REG_CURRENT = 0x04
REG_CALIBRATION = 0x05
_CONFIG_RESET = 0x399F
_CONFIG_RST_BIT = 0x8000
_BRNG_32V = 0x2000
# PG = /8 (±320 mV), BADC = SADC = 12-bit, mode = shunt and bus, continuous.
_CONFIG_BASE = 0x1800 | 0x0180 | 0x0018 | 0x0007


class SMBusLike(Protocol):
    """The subset of :class:`smbus2.SMBus` the driver uses."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        """Read ``length`` bytes starting at ``register``."""
        ...

    def write_word_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        """Write a 16-bit SMBus word (low byte first on the wire)."""
        ...


@dataclass(frozen=True, slots=True)
class DischargeCurve:
    """Open-circuit voltage of one cell against state of charge, linearly interpolated."""

    points: tuple[tuple[float, float], ...]  # (percent, volts), ascending in both

    def __post_init__(self) -> None:
        pcts = [p for p, _ in self.points]
        volts = [v for _, v in self.points]
        if len(self.points) < 2 or pcts != sorted(pcts) or volts != sorted(volts):
            raise ValueError("a discharge curve needs >= 2 points ascending in % and volts")

    def percent(self, cell_volts: float) -> float:
        """State of charge (0–100) for a resting cell voltage."""
        volts = [v for _, v in self.points]
        if cell_volts <= volts[0]:
            return self.points[0][0]
        if cell_volts >= volts[-1]:
            return self.points[-1][0]
        i = bisect.bisect_right(volts, cell_volts)
        (p0, v0), (p1, v1) = self.points[i - 1], self.points[i]
        return p0 + (p1 - p0) * (cell_volts - v0) / (v1 - v0)

    def volts(self, percent: float) -> float:
        """Resting cell voltage at a state of charge (0–100)."""
        pcts = [p for p, _ in self.points]
        if percent <= pcts[0]:
            return self.points[0][1]
        if percent >= pcts[-1]:
            return self.points[-1][1]
        i = bisect.bisect_right(pcts, percent)
        (p0, v0), (p1, v1) = self.points[i - 1], self.points[i]
        return v0 + (v1 - v0) * (percent - p0) / (p1 - p0)


LIION_OCV = DischargeCurve((
    (0.0, 3.27), (5.0, 3.61), (10.0, 3.69), (15.0, 3.71), (20.0, 3.73), (25.0, 3.75),
    (30.0, 3.77), (35.0, 3.79), (40.0, 3.80), (45.0, 3.82), (50.0, 3.84), (55.0, 3.85),
    (60.0, 3.87), (65.0, 3.91), (70.0, 3.95), (75.0, 3.98), (80.0, 4.02), (85.0, 4.08),
    (90.0, 4.11), (95.0, 4.15), (100.0, 4.20),
))
"""A generic LiCoO₂/NMC cell at rest, 25 °C: the shape published in cell makers' datasheets
and summarised in Battery University BU-903 ("How to Measure State-of-charge"). It is an
approximation (±5–10 % SoC on the flat part); load the pack vendor's curve where known."""


def _to_signed(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def _round_up_2sig(value: float) -> float:
    """Round up to two significant digits: the datasheet advises a round current LSB."""
    scale = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(round(value / scale, 9)) * scale


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


class Ina219Battery:
    """An INA219 on ``bus``; one instance per chip, calls serialised by an internal lock."""

    def __init__(
        self,
        bus: SMBusLike,
        address: int = 0x40,
        *,
        shunt_ohms: float = 0.1,
        max_current_a: float = 3.2,
        cells: int = 1,
        curve: DischargeCurve = LIION_OCV,
        capacity_wh: float | None = None,
        internal_ohms: float = 0.05,
        invert_current: bool = False,
        idle_current_a: float = 0.02,
        throttle: ThrottleSource | None = None,
    ) -> None:
        if shunt_ohms <= 0 or max_current_a <= 0 or cells < 1:
            raise ValueError("shunt_ohms and max_current_a must be > 0 and cells >= 1")
        self._bus = bus
        self._address = address
        self._shunt = shunt_ohms
        # Bit 0 of the calibration register does not exist; the LSB actually in effect is
        # derived back from the value the chip will hold.
        calibration = int(0.04096 / (_round_up_2sig(max_current_a / 32768) * shunt_ohms))
        if not 2 <= calibration <= 0xFFFE:
            raise ValueError("shunt_ohms/max_current_a give a calibration outside the register")
        self._calibration = calibration & 0xFFFE
        self._current_lsb = 0.04096 / (self._calibration * shunt_ohms)
        self._config = _CONFIG_BASE | (_BRNG_32V if cells * 4.2 > 16 else 0)
        self._cells = cells
        self._curve = curve
        self._capacity_wh = capacity_wh
        self._internal_ohms = internal_ohms
        self._sign = -1.0 if invert_current else 1.0
        self._idle_a = idle_current_a
        self._throttle = throttle
        self._lock = threading.Lock()  # guards the bus transaction sequence
        with self._lock:
            self._configure()

    def set_load(self, state: str) -> None:
        """The INA219 measures the load itself; nothing to do."""

    def _write(self, register: int, value: int) -> None:
        self._bus.write_word_data(self._address, register, _swap(value))

    def _read(self, register: int) -> int:
        msb, lsb = self._bus.read_i2c_block_data(self._address, register, 2)
        return (msb << 8) | lsb

    def _configure(self) -> None:
        try:
            self._write(REG_CONFIG, self._config)
            self._write(REG_CALIBRATION, self._calibration)
        except OSError as exc:
            raise PowerError(f"INA219 at 0x{self._address:02x} not responding: {exc}") from exc

    def read(self) -> BatteryReading:
        """Read bus voltage, current and power; re-calibrate if the chip was reset."""
        with self._lock:
            try:
                if self._read(REG_CALIBRATION) != self._calibration:
                    _log.warning("INA219 lost its calibration (supply glitch?); rewriting it")
                    self._configure()
                bus = self._read(REG_BUS)
                current_raw = _to_signed(self._read(REG_CURRENT))
                power_raw = self._read(REG_POWER)
            except OSError as exc:
                raise PowerError(f"INA219 at 0x{self._address:02x} failed: {exc}") from exc
        volts = (bus >> 3) * 0.004
        overflow = bool(bus & 0x1)
        current = None if overflow else self._sign * current_raw * self._current_lsb
        power = None if overflow or current is None else power_raw * 20 * self._current_lsb
        if power is not None and current is not None and current < 0:
            power = -power
        ocv_cell = (volts + (current or 0.0) * self._internal_ohms) / self._cells
        pct = round(self._curve.percent(ocv_cell), 1)
        energy = self._capacity_wh * pct / 100 if self._capacity_wh is not None else None
        if current is None or abs(current) < self._idle_a:
            status = "Unknown" if current is None else "Not charging"
        else:
            status = "Discharging" if current > 0 else "Charging"
        undervoltage = throttled = False
        if self._throttle is not None:
            try:
                flags = self._throttle.read()
                undervoltage, throttled = flags.undervoltage, flags.throttled or flags.freq_capped
            except PowerError as exc:
                _log.warning("supply flags unavailable: %s", exc)
        return BatteryReading(
            status=status, capacity_pct=pct, voltage_v=round(volts, 3), current_a=current,
            power_w=power, energy_wh=energy, energy_full_wh=self._capacity_wh,
            undervoltage=undervoltage, throttled=throttled,
            source=f"ina219:0x{self._address:02x}",
            external_power=None if current is None else current < -self._idle_a,
        )


class Ina219Chip:
    """A stateful model of the INA219 register file, speaking the smbus2 calls the driver uses.

    Set the physical world with :meth:`set_bus_voltage` / :meth:`set_current`; the registers
    follow the datasheet arithmetic (shunt → current via calibration, power = current × bus /
    5000). :meth:`power_cycle` models a supply glitch (registers back to reset values) and
    :meth:`detach` a chip that no longer acknowledges (``OSError(EREMOTEIO)``). ``writes``
    records every register write for assertions. Thread-safe under one lock.
    """

    def __init__(self, address: int = 0x40, *, shunt_ohms: float = 0.1,
                 bus_voltage_v: float = 3.9, current_a: float = 0.5) -> None:
        self.address = address
        self.shunt_ohms = shunt_ohms
        self.bus_voltage_v = bus_voltage_v
        self.current_a = current_a
        self.writes: list[tuple[int, int]] = []
        self._regs = {REG_CONFIG: _CONFIG_RESET, REG_CALIBRATION: 0}
        self._attached = True
        self._lock = threading.Lock()

    # --- stimulus verbs -------------------------------------------------------------------
    def set_bus_voltage(self, volts: float) -> None:
        """Set the voltage on the bus (V)."""
        with self._lock:
            self.bus_voltage_v = volts

    def set_current(self, amps: float) -> None:
        """Set the current through the shunt (A, positive IN+ → IN−)."""
        with self._lock:
            self.current_a = amps

    def power_cycle(self) -> None:
        """Lose configuration and calibration, as after a brown-out."""
        with self._lock:
            self._regs = {REG_CONFIG: _CONFIG_RESET, REG_CALIBRATION: 0}

    def detach(self) -> None:
        """Stop acknowledging the address (a loose connector)."""
        with self._lock:
            self._attached = False

    # --- register model -------------------------------------------------------------------
    def _register(self, register: int) -> int:
        shunt = max(-32000, min(32000, round(self.current_a * self.shunt_ohms / 10e-6)))
        bus_units = max(0, min(0x1FFF, round(self.bus_voltage_v / 0.004)))
        full_scale = 32.0 if self._regs[REG_CONFIG] & _BRNG_32V else 16.0
        overflow = self.bus_voltage_v > full_scale
        cal = self._regs[REG_CALIBRATION]
        current = int(shunt * cal / 4096)
        if register == REG_SHUNT:
            return shunt & 0xFFFF
        if register == REG_BUS:
            return (bus_units << 3) | (0x2 if cal else 0) | int(overflow)
        if register == REG_CURRENT:
            return current & 0xFFFF
        if register == REG_POWER:
            return min(0xFFFF, abs(current) * bus_units // 5000)
        if register in self._regs:
            return self._regs[register]
        raise OSError(errno.EIO, f"INA219 has no register 0x{register:02x}")

    def _check(self, i2c_addr: int) -> None:
        if i2c_addr != self.address or not self._attached:
            raise OSError(errno.EREMOTEIO, f"no ACK from 0x{i2c_addr:02x}")

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        """Read a register MSB first, as the chip sends it."""
        with self._lock:
            self._check(i2c_addr)
            value = self._register(register)
            data = [value >> 8, value & 0xFF]
            return (data * ((length + 1) // 2))[:length]

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """SMBus read word: the first byte on the wire (the chip's MSB) lands in the low byte."""
        with self._lock:
            self._check(i2c_addr)
            return _swap(self._register(register))

    def write_word_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        """SMBus write word: the low byte goes first on the wire and becomes the MSB."""
        self.write_i2c_block_data(i2c_addr, register, [value & 0xFF, value >> 8])

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                             force: bool | None = None) -> None:
        """Write a register MSB first."""
        with self._lock:
            self._check(i2c_addr)
            if register not in (REG_CONFIG, REG_CALIBRATION) or len(data) != 2:
                raise OSError(errno.EIO, f"register 0x{register:02x} is read-only")
            value = (data[0] << 8) | data[1]
            self.writes.append((register, value))
            if register == REG_CONFIG and value & _CONFIG_RST_BIT:
                self._regs = {REG_CONFIG: _CONFIG_RESET, REG_CALIBRATION: 0}
                return
            self._regs[register] = value & (0xFFFE if register == REG_CALIBRATION else 0xFFFF)
