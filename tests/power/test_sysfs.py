"""SysfsBattery against fake power_supply trees modelled on real fuel-gauge drivers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hw.errors import PowerError
from hw.power_sysfs import (
    BQ27441_DISCHARGING,
    MAX17040,
    SysfsBattery,
    write_fake_rpi_volt,
    write_fake_supply,
)
from hw.throttle import RpiVoltHwmon


@pytest.fixture
def supplies(tmp_path: Path) -> Path:
    root = tmp_path / "sys/class/power_supply"
    root.mkdir(parents=True)
    return root


def test_max17040_reports_capacity_and_voltage_only(supplies: Path) -> None:
    """A bare SoC gauge gives percent and volts; everything else is None, status Unknown."""
    write_fake_supply(supplies, "battery", MAX17040)
    reading = SysfsBattery(supplies).read()
    assert reading.capacity_pct == 87.0
    assert reading.voltage_v == pytest.approx(4.012)
    assert reading.current_a is None
    assert reading.power_w is None
    assert reading.energy_wh is None
    assert reading.temperature_c is None
    assert reading.status == "Unknown"
    assert reading.external_power is None
    assert reading.source == "sysfs:battery"


def test_bq27441_full_set_normalised(supplies: Path) -> None:
    """Negative ABI current while discharging becomes positive; charge × voltage gives Wh."""
    write_fake_supply(supplies, "bq27441-0", BQ27441_DISCHARGING)
    reading = SysfsBattery(supplies).read()
    assert reading.status == "Discharging"
    assert reading.current_a == pytest.approx(1.05)
    assert reading.power_w == pytest.approx(4.034)
    assert reading.voltage_v == pytest.approx(3.842)
    assert reading.energy_wh == pytest.approx(3.2 * 3.842)
    assert reading.energy_full_wh == pytest.approx(5.0 * 3.842)
    assert reading.temperature_c == pytest.approx(31.2)
    assert reading.capacity_pct == 64.0


def test_old_driver_positive_current_while_discharging(supplies: Path) -> None:
    """A driver reporting a positive magnitude is still read as discharging from its status."""
    write_fake_supply(supplies, "bq27000-battery",
                      {**BQ27441_DISCHARGING, "current_now": "1050000"})
    assert SysfsBattery(supplies).read().current_a == pytest.approx(1.05)


def test_charging_current_is_negative_whatever_the_driver_sign(supplies: Path) -> None:
    """Charging current is negative in our convention, from either driver sign."""
    for raw in ("800000", "-800000"):
        write_fake_supply(supplies, "bq27441-0",
                          {**BQ27441_DISCHARGING, "status": "Charging", "current_now": raw})
        assert SysfsBattery(supplies).read().current_a == pytest.approx(-0.8)


def test_unknown_status_falls_back_to_abi_sign(supplies: Path) -> None:
    """Without a status, the ABI sign (negative = discharging) decides."""
    write_fake_supply(supplies, "gauge", {"type": "Battery", "current_now": "-500000"})
    assert SysfsBattery(supplies).read().current_a == pytest.approx(0.5)


def test_energy_attributes_preferred_and_percent_derived(supplies: Path) -> None:
    """energy_now/energy_full (µWh) are used directly and give the percent when capacity is absent."""
    write_fake_supply(supplies, "BAT0", {"type": "Battery", "status": "Discharging",
                                         "energy_now": "9250000", "energy_full": "18500000",
                                         "power_now": "4000000", "voltage_now": "3800000"})
    reading = SysfsBattery(supplies).read()
    assert reading.energy_wh == pytest.approx(9.25)
    assert reading.energy_full_wh == pytest.approx(18.5)
    assert reading.capacity_pct == pytest.approx(50.0)
    assert reading.power_w == pytest.approx(4.0)


def test_unreadable_attribute_becomes_none(supplies: Path) -> None:
    """A gauge that has not converted yet (garbage or unreadable file) yields None, not an error."""
    supply = write_fake_supply(supplies, "bq27441-0", BQ27441_DISCHARGING)
    (supply / "temp").write_text("not-a-number\n")
    (supply / "current_now").unlink()
    (supply / "current_now").mkdir()  # reading a directory raises IsADirectoryError
    reading = SysfsBattery(supplies).read()
    assert reading.temperature_c is None
    assert reading.current_a is None
    assert reading.capacity_pct == 64.0


def test_finds_battery_among_mains_and_peripherals(supplies: Path) -> None:
    """AC online sets external_power; a Device-scope battery (a keyboard) is skipped."""
    write_fake_supply(supplies, "hid-keyboard-battery", {"type": "Battery", "scope": "Device",
                                                         "capacity": "12"})
    write_fake_supply(supplies, "zz-battery", MAX17040)
    write_fake_supply(supplies, "ac", {"type": "Mains", "online": "1"})
    write_fake_supply(supplies, "usb", {"type": "USB", "online": "0"})
    battery = SysfsBattery(supplies)
    assert battery.path.name == "zz-battery"
    assert battery.read().external_power is True
    write_fake_supply(supplies, "ac", {"online": "0"})
    assert battery.read().external_power is False


def test_named_supply_and_missing_ones(supplies: Path) -> None:
    """A named supply is used as given; absent batteries are a PowerError."""
    with pytest.raises(PowerError, match="no battery"):
        SysfsBattery(supplies)
    with pytest.raises(PowerError, match="not found"):
        SysfsBattery(supplies, "bq27441-0")
    write_fake_supply(supplies, "bq27441-0", BQ27441_DISCHARGING)
    battery = SysfsBattery(supplies, "bq27441-0")
    shutil.rmtree(battery.path)
    with pytest.raises(PowerError, match="disappeared"):
        battery.read()


def test_pi_rpi_volt_undervoltage_is_reported(tmp_path: Path, supplies: Path) -> None:
    """On a Pi the rpi_volt hwmon alarm shows up as undervoltage in the battery reading."""
    hwmon = tmp_path / "sys/class/hwmon"
    (hwmon / "hwmon0").mkdir(parents=True)
    (hwmon / "hwmon0/name").write_text("cpu_thermal\n")
    write_fake_rpi_volt(hwmon, alarm=False, index=1)
    write_fake_supply(supplies, "battery", MAX17040)
    battery = SysfsBattery(supplies, throttle=RpiVoltHwmon(hwmon))
    assert battery.read().undervoltage is False
    write_fake_rpi_volt(hwmon, alarm=True, index=1)
    assert battery.read().undervoltage is True


def test_vanished_throttle_source_degrades_to_no_flags(tmp_path: Path, supplies: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Losing the hwmon device is logged once and the battery keeps reading."""
    hwmon = tmp_path / "hwmon"
    device = write_fake_rpi_volt(hwmon, alarm=True)
    write_fake_supply(supplies, "battery", MAX17040)
    battery = SysfsBattery(supplies, throttle=RpiVoltHwmon(hwmon))
    shutil.rmtree(device)
    for _ in range(3):
        reading = battery.read()
    assert reading.undervoltage is False
    assert reading.capacity_pct == 87.0
    assert sum("supply flags unavailable" in r.message for r in caplog.records) == 1
