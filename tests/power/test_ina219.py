"""Ina219Battery against a register-level model of the chip, and the Li-ion curve."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw.errors import PowerError
from hw.power_ina219 import LIION_OCV, DischargeCurve, Ina219Battery, Ina219Chip


def test_configures_and_calibrates_the_chip() -> None:
    """0.1 Ω, 3.2 A: LSB 98 µA, calibration 4178 (bit 0 unused), 16 V, PGA /8, continuous."""
    chip = Ina219Chip()
    Ina219Battery(chip)
    assert chip.writes == [(0x00, 0x199F), (0x05, 4178)]


def test_four_cell_pack_selects_the_32v_range() -> None:
    """A pack above 16 V needs BRNG=1, otherwise the bus voltage overflows."""
    chip = Ina219Chip(bus_voltage_v=15.6, current_a=0.3)
    battery = Ina219Battery(chip, cells=4)
    assert chip.writes[0] == (0x00, 0x399F)
    reading = battery.read()
    assert reading.voltage_v == pytest.approx(15.6, abs=0.004)
    assert reading.current_a == pytest.approx(0.3, abs=0.001)


def test_reads_voltage_current_power_and_charge() -> None:
    """Register arithmetic gives back the physical values; SoC comes from the OCV curve."""
    chip = Ina219Chip(bus_voltage_v=3.80, current_a=1.0)
    reading = Ina219Battery(chip, capacity_wh=18.5).read()
    assert reading.voltage_v == pytest.approx(3.80, abs=0.004)
    assert reading.current_a == pytest.approx(1.0, abs=0.001)
    assert reading.power_w == pytest.approx(3.80, rel=0.01)
    assert reading.status == "Discharging"
    # OCV = 3.80 + 1.0 A × 0.05 Ω = 3.85 V → 55 % on the table.
    assert reading.capacity_pct == pytest.approx(55.0, abs=0.5)
    assert reading.energy_wh == pytest.approx(18.5 * reading.capacity_pct / 100)
    assert reading.source == "ina219:0x40"


def test_charging_current_is_negative() -> None:
    """Current flowing back into the battery reads negative, status Charging, power negative."""
    chip = Ina219Chip(bus_voltage_v=4.05, current_a=-0.9)
    reading = Ina219Battery(chip).read()
    assert reading.status == "Charging"
    assert reading.current_a == pytest.approx(-0.9, abs=0.001)
    assert reading.power_w is not None and reading.power_w < 0
    assert reading.external_power is True


def test_inverted_shunt_wiring() -> None:
    """invert_current fixes a shunt wired the other way round."""
    chip = Ina219Chip(current_a=-0.5)
    assert Ina219Battery(chip, invert_current=True).read().current_a == pytest.approx(0.5, abs=1e-3)


def test_recalibrates_after_a_brownout(caplog: pytest.LogCaptureFixture) -> None:
    """A power-cycled chip reads zero current until recalibrated; the driver notices."""
    chip = Ina219Chip(current_a=0.7)
    battery = Ina219Battery(chip)
    chip.power_cycle()
    reading = battery.read()
    assert reading.current_a == pytest.approx(0.7, abs=0.001)
    assert chip.writes[-1] == (0x05, 4178)
    assert "lost its calibration" in caplog.text


def test_detached_chip_is_a_power_error() -> None:
    """No ACK at the address is a PowerError at construction and at read."""
    with pytest.raises(PowerError, match="not responding"):
        Ina219Battery(Ina219Chip(address=0x41))
    chip = Ina219Chip()
    battery = Ina219Battery(chip)
    chip.detach()
    with pytest.raises(PowerError, match="failed"):
        battery.read()


def test_smbus_word_byte_order_is_modelled() -> None:
    """read_word_data returns the chip's MSB in the low byte, as a real SMBus adapter does."""
    chip = Ina219Chip()
    Ina219Battery(chip)
    msb, lsb = chip.read_i2c_block_data(0x40, 0x05, 2)
    assert (msb << 8 | lsb) == 0x1052  # 4178
    assert chip.read_word_data(0x40, 0x05) == 0x5210


def test_bad_parameters_are_refused() -> None:
    """A calibration that does not fit the register is a ValueError, not a silent wrap."""
    with pytest.raises(ValueError, match="calibration"):
        Ina219Battery(Ina219Chip(), shunt_ohms=0.0001, max_current_a=0.01)
    with pytest.raises(ValueError):
        Ina219Battery(Ina219Chip(), cells=0)


def test_curve_end_points_and_clamping() -> None:
    """The curve clamps outside its table and hits its end points."""
    assert LIION_OCV.percent(4.25) == 100.0
    assert LIION_OCV.percent(3.0) == 0.0
    assert LIION_OCV.volts(100) == pytest.approx(4.20)
    assert LIION_OCV.volts(0) == pytest.approx(3.27)
    with pytest.raises(ValueError):
        DischargeCurve(((0.0, 4.0), (100.0, 3.0)))


@given(st.floats(min_value=0.0, max_value=100.0))
def test_curve_round_trips(percent: float) -> None:
    """percent(volts(p)) == p: the curve is strictly monotonic and interpolates consistently."""
    assert LIION_OCV.percent(LIION_OCV.volts(percent)) == pytest.approx(percent, abs=1e-6)


@given(st.floats(min_value=3.0, max_value=4.3), st.floats(min_value=3.0, max_value=4.3))
def test_curve_is_monotonic(v1: float, v2: float) -> None:
    """A higher resting voltage never means less charge."""
    low, high = sorted((v1, v2))
    assert LIION_OCV.percent(low) <= LIION_OCV.percent(high)
