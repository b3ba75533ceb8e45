"""Choosing the battery reader on a Pi: the configured one, or the first that answers."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from agent.config import parse_config
from hw.errors import DeviceMissing, PowerError
from hw.power_pisugar import PiSugarBattery, PiSugarServerSim
from hw.power_select import i2c_device_path, open_ina219, select_power
from hw.power_sysfs import MAX17040, SysfsBattery, write_fake_supply

pytestmark = pytest.mark.timeout(30)


def _free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _power(tmp_path: Path, **over: Any) -> Any:
    """A [power] section whose sysfs root is an empty fake tree and whose PiSugar port is dead."""
    (tmp_path / "power_supply").mkdir(exist_ok=True)
    raw = {"sysfs_root": str(tmp_path / "power_supply"), "pisugar_port": _free_port(), **over}
    return parse_config({"power": raw}).power


def test_pisugar_is_read_over_tcp_by_default() -> None:
    """The shipped default reaches pisugar-server over loopback TCP, not its /tmp socket."""
    p = parse_config({}).power
    assert p.pisugar_socket == "" and p.pisugar_port == 8423
    with PiSugarServerSim(None) as sim:
        reader = select_power(parse_config({"power": {"source": "pisugar",
                                                      "pisugar_port": sim.port}}).power,
                              throttle=None)
        assert isinstance(reader, PiSugarBattery)
        assert reader.read().capacity_pct == pytest.approx(76.5)


def test_pisugar_socket_is_still_an_option(tmp_path: Path) -> None:
    """Setting pisugar_socket uses the Unix socket (for a process without a private /tmp)."""
    with PiSugarServerSim(tmp_path / "pisugar-server.sock") as sim:
        reader = select_power(_power(tmp_path, source="pisugar", pisugar_socket=str(sim.socket_path)),
                              throttle=None)
        assert reader is not None and reader.read().source == "pisugar"
    assert sim.requests[0] == "get battery"


def test_auto_prefers_a_kernel_fuel_gauge(tmp_path: Path) -> None:
    """With a power_supply battery present, auto uses it."""
    p = _power(tmp_path)
    write_fake_supply(Path(p.sysfs_root), "max17040-0", MAX17040)
    reader = select_power(p, throttle=None, dev_root=tmp_path / "dev")
    assert isinstance(reader, SysfsBattery) and reader.path.name == "max17040-0"


def test_auto_finds_pisugar_and_says_what_it_passed_over(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No kernel gauge, a PiSugar on TCP: auto uses it and logs why sysfs was not used."""
    with PiSugarServerSim(None) as sim, caplog.at_level(logging.INFO, logger="hw.power_select"):
        reader = select_power(_power(tmp_path, pisugar_port=sim.port), throttle=None,
                              dev_root=tmp_path / "dev")
    assert isinstance(reader, PiSugarBattery)
    assert any("sysfs not used" in r.getMessage() and "no battery" in r.getMessage()
               for r in caplog.records)
    assert any("using pisugar" in r.getMessage() for r in caplog.records)


def test_auto_with_nothing_lists_every_reason(tmp_path: Path) -> None:
    """No gauge at all: the error names each reader tried and why, the i2c-dev module included."""
    p = _power(tmp_path)
    with pytest.raises(DeviceMissing) as err:
        select_power(p, throttle=None, dev_root=tmp_path / "dev")
    text = str(err.value)
    assert "sysfs: no battery" in text
    assert f"pisugar: pisugar-server at 127.0.0.1:{p.pisugar_port} unreachable" in text
    assert "ina219: " in text and "i2c-dev kernel module is not loaded" in text
    assert "power.source" in text


def test_missing_i2c_device_names_the_module_to_load(tmp_path: Path) -> None:
    """INA219 configured, /dev/i2c-1 absent: the error says to load i2c-dev, not 'no chip'."""
    with pytest.raises(DeviceMissing, match=r"i2c-1 does not exist: the i2c-dev kernel module"):
        select_power(_power(tmp_path, source="ina219"), throttle=None, dev_root=tmp_path / "dev")
    with pytest.raises(PowerError, match="modprobe i2c-dev"):
        i2c_device_path(1, tmp_path / "dev")


def test_i2c_node_that_is_not_a_bus_is_a_power_error(tmp_path: Path) -> None:
    """A /dev/i2c-N that cannot be driven (here: a plain file) is refused with its path."""
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "i2c-1").write_bytes(b"")
    assert i2c_device_path(1, dev) == dev / "i2c-1"
    with pytest.raises(PowerError, match=str(dev / "i2c-1")):
        open_ina219(1, 0x40, dev_root=dev)


def test_named_source_that_fails_is_device_missing(tmp_path: Path) -> None:
    """power.source = 'pisugar' with no server is a DeviceMissing naming where it looked."""
    p = _power(tmp_path, source="pisugar")
    with pytest.raises(DeviceMissing, match=rf"'pisugar'.*127\.0\.0\.1:{p.pisugar_port}"):
        select_power(p, throttle=None)


def test_none_means_no_reader(tmp_path: Path) -> None:
    """power.source = 'none' runs without battery monitoring."""
    assert select_power(_power(tmp_path, source="none"), throttle=None) is None
