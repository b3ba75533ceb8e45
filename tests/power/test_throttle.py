"""Pi undervoltage/throttling from vcgencmd output and the rpi_volt hwmon."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from hw.errors import PowerError
from hw.power_sysfs import write_fake_rpi_volt
from hw.throttle import (
    PiSupplyMonitor,
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


def test_pi_throttle_source_uses_every_source_the_board_has(tmp_path: Path) -> None:
    """rpi_volt and vcgencmd together when both exist; either alone; off a Pi none at all."""
    write_fake_rpi_volt(tmp_path, alarm=False)
    both = pi_throttle_source(tmp_path, vcgencmd="vcgencmd", runner=lambda argv: "throttled=0x0")
    assert isinstance(both, PiSupplyMonitor) and both.sources == ("rpi_volt", "get_throttled")
    hwmon_only = pi_throttle_source(tmp_path, vcgencmd="")
    assert hwmon_only is not None and hwmon_only.sources == ("rpi_volt",)
    firmware_only = pi_throttle_source(tmp_path / "none", vcgencmd="vcgencmd",
                                       runner=lambda argv: "throttled=0x0")
    assert firmware_only is not None and firmware_only.sources == ("get_throttled",)
    assert pi_throttle_source(tmp_path / "none", vcgencmd="") is None


class _Firmware:
    """get_throttled words in sequence, as the kernel's 2 s poll leaves them (sticky bits
    cleared by raspberrypi-hwmon between our readings)."""

    def __init__(self, *words: int) -> None:
        self.words = list(words)
        self.calls: list[Sequence[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(argv)
        return f"throttled={hex(self.words.pop(0))}\n"


def test_throttling_is_reported_alongside_the_hwmon(tmp_path: Path) -> None:
    """With rpi_volt present, throttling still comes from the firmware word (the hwmon has none)."""
    write_fake_rpi_volt(tmp_path, alarm=False)
    firmware = _Firmware(0x40004)  # throttled now, and since boot
    monitor = pi_throttle_source(tmp_path, vcgencmd="vcgencmd", runner=firmware)
    assert monitor is not None
    state = monitor.read()
    assert state.throttled and state.throttled_occurred and not state.undervoltage
    assert state.raw == 0x40004
    assert firmware.calls == [("vcgencmd", "get_throttled")]


def test_since_boot_flags_survive_the_kernel_clearing_them(tmp_path: Path) -> None:
    """Once seen, an under-voltage or a throttle stays in the *_occurred flags, although the
    firmware word the kernel keeps clearing no longer shows it."""
    device = write_fake_rpi_volt(tmp_path, alarm=True)
    firmware = _Firmware(0x20002, 0x0, 0x0)  # frequency capped; then cleared by the kernel
    monitor = PiSupplyMonitor(hwmon=RpiVoltHwmon(tmp_path),
                              firmware=VcgencmdThrottle(runner=firmware))
    first = monitor.read()
    assert first.undervoltage and first.undervoltage_occurred
    assert first.freq_capped and first.freq_capped_occurred
    write_fake_rpi_volt(tmp_path, alarm=False)
    assert device.exists()
    for _ in range(2):
        later = monitor.read()
        assert not later.undervoltage and not later.freq_capped
        assert later.undervoltage_occurred and later.freq_capped_occurred
        assert not later.throttled_occurred and not later.soft_temp_limit_occurred
        assert later.raw == 0


def test_a_failing_source_is_skipped_and_all_failing_is_an_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """vcgencmd refused (say /dev/vcio not allowed): rpi_volt still answers, with a warning
    once; with no source left the reading is a PowerError naming each failure."""
    def refused(argv: Sequence[str]) -> str:
        raise subprocess.CalledProcessError(255, list(argv), "", "VCHI initialization failed")

    write_fake_rpi_volt(tmp_path, alarm=True)
    monitor = PiSupplyMonitor(hwmon=RpiVoltHwmon(tmp_path), firmware=VcgencmdThrottle(runner=refused))
    with caplog.at_level("WARNING", logger="hw.throttle"):
        assert monitor.read().undervoltage
        assert monitor.read().undervoltage
    assert sum("get_throttled unavailable" in r.getMessage() for r in caplog.records) == 1
    lone = PiSupplyMonitor(firmware=VcgencmdThrottle(runner=refused))
    with pytest.raises(PowerError, match=r"no supply-flag source answered.*get_throttled"):
        lone.read()
    with pytest.raises(PowerError, match="no supply-flag source"):
        PiSupplyMonitor()


def test_batteries_report_firmware_throttling(tmp_path: Path) -> None:
    """A battery reading carries the firmware's throttle flag through the monitor."""
    from hw.power_sysfs import MAX17040, SysfsBattery, write_fake_supply

    write_fake_supply(tmp_path / "ps", "max17040-0", MAX17040)
    write_fake_rpi_volt(tmp_path / "hwmon", alarm=False)
    monitor = pi_throttle_source(tmp_path / "hwmon", vcgencmd="vcgencmd",
                                 runner=_Firmware(0x50005))
    reading = SysfsBattery(tmp_path / "ps", throttle=monitor).read()
    assert reading.undervoltage and reading.throttled
