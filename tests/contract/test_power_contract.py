"""The PowerMonitor contract, run against every implementation (see hw/power.py).

Fake sources always (sysfs trees modelled on real drivers, the INA219 register model, a
PiSugar server on a Unix socket, the simulator); with ``--hw pi`` also the real sources the
board has — ``/sys/class/power_supply``, ``pisugar-server`` on 127.0.0.1:8423, an INA219 at 0x40 on
``/dev/i2c-1`` — each skipped cleanly when absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hw.errors import PowerError
from hw.power import BatteryReading, PowerMonitor
from hw.power_ina219 import Ina219Battery, Ina219Chip
from hw.power_pisugar import PiSugarBattery, PiSugarServerSim
from hw.power_sim import SimBattery
from hw.power_sysfs import (
    BQ27441_DISCHARGING,
    MAX17040,
    SysfsBattery,
    find_battery,
    write_fake_supply,
)

pytestmark = pytest.mark.timeout(30)

STATUSES = {"Charging", "Discharging", "Full", "Not charging", "Unknown"}


@dataclass
class Bench:
    """A monitor, and a way to take its source away (None: it cannot go away)."""

    monitor: PowerMonitor
    remove_source: Callable[[], None] | None
    discharging: bool  # the arranged state is a discharge


def _sysfs(tmp_path: Path, name: str, attrs: dict[str, str]) -> Bench:
    supply = write_fake_supply(tmp_path / "power_supply", name, attrs)
    return Bench(SysfsBattery(tmp_path / "power_supply"), lambda: shutil.rmtree(supply),
                 attrs.get("status") == "Discharging")


def _hw(request: pytest.FixtureRequest) -> str:
    try:
        return str(request.config.getoption("--hw", default="sim") or "sim")
    except ValueError:
        return "sim"


def _real(kind: str) -> Bench:
    """A real source on a Pi, or a skip naming what is missing."""
    if kind == "pi-sysfs":
        if find_battery(Path("/sys/class/power_supply")) is None:
            pytest.skip("no fuel gauge under /sys/class/power_supply")
        return Bench(SysfsBattery(), None, False)
    if kind == "pi-pisugar":
        real = PiSugarBattery()  # TCP 127.0.0.1:8423, as the agent reads it under its unit
        try:
            real.query()
        except PowerError as exc:
            pytest.skip(f"no pisugar-server: {exc}")
        return Bench(real, None, False)
    smbus2 = pytest.importorskip("smbus2")
    try:
        return Bench(Ina219Battery(smbus2.SMBus(1)), None, False)
    except (OSError, PowerError) as exc:
        pytest.skip(f"no INA219 on i2c-1: {exc}")


@pytest.fixture(params=["sysfs-max17040", "sysfs-bq27441", "ina219", "pisugar", "sim",
                        "pi-sysfs", "pi-pisugar", "pi-ina219"])
def bench(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bench]:
    kind = request.param
    if kind.startswith("pi-"):
        if _hw(request) != "pi":
            pytest.skip("real power sources are checked with --hw pi")
        yield _real(kind)
    elif kind == "sysfs-max17040":
        yield _sysfs(tmp_path, "battery", dict(MAX17040))
    elif kind == "sysfs-bq27441":
        yield _sysfs(tmp_path, "bq27441-0", dict(BQ27441_DISCHARGING))
    elif kind == "ina219":
        chip = Ina219Chip(bus_voltage_v=3.8, current_a=0.9)
        yield Bench(Ina219Battery(chip, capacity_wh=18.5), chip.detach, True)
    elif kind == "pisugar":
        with PiSugarServerSim(tmp_path / "pisugar.sock") as server:
            yield Bench(PiSugarBattery(server.socket_path), server.close, True)
    else:
        yield Bench(SimBattery(clock=lambda: 0.0), None, True)


def test_is_a_power_monitor(bench: Bench) -> None:
    """Every implementation satisfies the Protocol."""
    assert isinstance(bench.monitor, PowerMonitor)


def test_reading_is_well_formed(bench: Bench) -> None:
    """Status is one of the kernel's words; numbers are in range; source names the driver."""
    reading = bench.monitor.read()
    assert isinstance(reading, BatteryReading)
    assert reading.status in STATUSES
    assert reading.source != "none"
    if reading.capacity_pct is not None:
        assert 0 <= reading.capacity_pct <= 100
    if reading.voltage_v is not None:
        assert 0 < reading.voltage_v < 30


def test_discharge_current_is_positive(bench: Bench) -> None:
    """Whatever the driver's sign convention, a discharge reads as positive current."""
    reading = bench.monitor.read()
    if bench.discharging and reading.current_a is not None:
        assert reading.current_a > 0
        assert reading.power_w is None or reading.power_w > 0


def test_set_load_accepts_recorder_states(bench: Bench) -> None:
    """The recorder may announce standby, recording and off to any monitor."""
    for state in ("recording", "standby", "off"):
        bench.monitor.set_load(state)
    bench.monitor.read()


def test_lost_source_is_a_power_error(bench: Bench) -> None:
    """When the source itself is gone, read() raises PowerError (and nothing else)."""
    if bench.remove_source is None:
        pytest.skip("this source cannot be taken away in a test")
    bench.remove_source()
    with pytest.raises(PowerError):
        bench.monitor.read()
