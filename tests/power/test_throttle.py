"""Pi undervoltage/throttling from vcgencmd output and the rpi_volt hwmon."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from hw.errors import PowerError
from hw.power_sysfs import write_fake_rpi_volt
from hw.throttle import (
    RpiVoltHwmon,
    VcgencmdThrottle,
    find_rpi_volt,
    parse_get_throttled,
    pi_throttle_source,
)


def test_healthy_supply_has_no_flags() -> None:
    """throttled=0x0 means nothing now and nothing since boot."""
    state = parse_get_throttled("throttled=0x0\n")
    assert state.raw == 0
    assert not any((state.undervoltage, state.freq_capped, state.throttled,
                    state.soft_temp_limit, state.undervoltage_occurred))


def test_undervoltage_now_and_since_boot() -> None:
    """0x50005: under-voltage and throttled now (bits 0, 2), both also occurred (16, 18)."""
    state = parse_get_throttled("throttled=0x50005")
    assert state.undervoltage and state.throttled
    assert state.undervoltage_occurred and state.throttled_occurred
    assert not state.freq_capped and not state.soft_temp_limit
    assert not state.freq_capped_occurred and not state.soft_temp_limit_occurred


def test_each_bit_maps_to_its_flag() -> None:
    """Every documented bit sets exactly its own flag."""
    names = {0: "undervoltage", 1: "freq_capped", 2: "throttled", 3: "soft_temp_limit",
             16: "undervoltage_occurred", 17: "freq_capped_occurred",
             18: "throttled_occurred", 19: "soft_temp_limit_occurred"}
    for bit, name in names.items():
        state = parse_get_throttled(f"throttled={hex(1 << bit)}")
        set_flags = {n for n in names.values() if getattr(state, n)}
        assert set_flags == {name}


@pytest.mark.parametrize("output", ["", "error=1 error_msg=\"Command not registered\"",
                                    "throttled=0xZZ", "volt=1.2000V"])
def test_garbage_output_is_an_error(output: str) -> None:
    """Anything but throttled=<number> is refused loudly."""
    with pytest.raises(PowerError, match="unrecognised"):
        parse_get_throttled(output)


def test_vcgencmd_runner_is_injectable() -> None:
    """The command runner receives the command and its output is decoded."""
    seen: list[Sequence[str]] = []

    def runner(argv: Sequence[str]) -> str:
        seen.append(argv)
        return "throttled=0x80008\n"

    state = VcgencmdThrottle(runner=runner).read()
    assert seen == [("vcgencmd", "get_throttled")]
    assert state.soft_temp_limit and state.soft_temp_limit_occurred and not state.undervoltage


def test_vcgencmd_failure_is_a_power_error() -> None:
    """A missing or failing vcgencmd becomes a PowerError."""
    def missing(argv: Sequence[str]) -> str:
        raise FileNotFoundError(2, "No such file", argv[0])

    def failing(argv: Sequence[str]) -> str:
        raise subprocess.CalledProcessError(255, list(argv))

    for runner in (missing, failing):
        with pytest.raises(PowerError, match="vcgencmd get_throttled failed"):
            VcgencmdThrottle(runner=runner).read()


def test_real_runner_runs_a_command() -> None:
    """The default runner really executes (here: echo standing in for vcgencmd)."""
    state = VcgencmdThrottle(command=("echo", "throttled=0x1")).read()
    assert state.undervoltage


def test_rpi_volt_found_among_other_hwmon_devices(tmp_path: Path) -> None:
    """The hwmon device is found by its name, not its index."""
    (tmp_path / "hwmon0").mkdir()
    (tmp_path / "hwmon0/name").write_text("cpu_thermal\n")
    device = write_fake_rpi_volt(tmp_path, alarm=True, index=3)
    assert find_rpi_volt(tmp_path) == device
    monitor = RpiVoltHwmon(tmp_path)
    assert monitor.read().undervoltage is True
    write_fake_rpi_volt(tmp_path, alarm=False, index=3)
    assert monitor.read().undervoltage is False


def test_rpi_volt_absent_or_broken(tmp_path: Path) -> None:
    """No rpi_volt device is a PowerError at construction; a bad value at read."""
    with pytest.raises(PowerError, match="no rpi_volt"):
        RpiVoltHwmon(tmp_path)
    assert find_rpi_volt(tmp_path / "missing") is None
    device = write_fake_rpi_volt(tmp_path, alarm=False)
    (device / "in0_lcrit_alarm").write_text("x\n")
    with pytest.raises(PowerError, match="unexpected"):
        RpiVoltHwmon(tmp_path).read()


def test_pi_throttle_source_prefers_the_hwmon(tmp_path: Path) -> None:
    """rpi_volt is chosen when present; off a Pi (no hwmon, no vcgencmd) there is none."""
    write_fake_rpi_volt(tmp_path, alarm=False)
    assert isinstance(pi_throttle_source(tmp_path), RpiVoltHwmon)
    if shutil.which("vcgencmd") is None:
        assert pi_throttle_source(tmp_path / "none") is None
