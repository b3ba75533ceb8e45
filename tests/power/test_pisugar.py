"""PiSugarBattery against a fake pisugar-server on a Unix socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hw.errors import PowerError
from hw.power_pisugar import PiSugarBattery, PiSugarServerSim

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PiSugarServerSim]:
    with PiSugarServerSim(tmp_path / "pisugar-server.sock") as sim:
        yield sim


def test_discharging_pisugar(server: PiSugarServerSim) -> None:
    """Percent, volts and the current magnitude come through; unplugged means discharging."""
    reading = PiSugarBattery(server.socket_path).read()
    assert reading.capacity_pct == pytest.approx(76.5)
    assert reading.voltage_v == pytest.approx(3.96)
    assert reading.current_a == pytest.approx(0.42)
    assert reading.power_w == pytest.approx(0.42 * 3.96)
    assert reading.status == "Discharging"
    assert reading.external_power is False
    assert reading.source == "pisugar"
    assert server.requests == ["get battery", "get battery_v", "get battery_i",
                               "get battery_charging", "get battery_power_plugged"]


def test_charging_current_is_negative_whatever_the_board_sign(server: PiSugarServerSim) -> None:
    """Plugged in and charging: negative current, whichever sign the board generation uses."""
    server.set("battery_power_plugged", "true")
    server.set("battery_charging", "true")
    for raw in ("0.6", "-0.6"):
        server.set("battery_i", raw)
        reading = PiSugarBattery(server.socket_path).read()
        assert reading.status == "Charging"
        assert reading.current_a == pytest.approx(-0.6)
        assert reading.external_power is True


def test_plugged_but_full(server: PiSugarServerSim) -> None:
    """Plugged and not charging is "Not charging"."""
    server.set("battery_power_plugged", "true")
    assert PiSugarBattery(server.socket_path).read().status == "Not charging"


def test_unanswered_fields_become_none(tmp_path: Path) -> None:
    """An older server that only knows `battery` still gives a usable reading."""
    with PiSugarServerSim(tmp_path / "old.sock", {"battery": "40"}) as sim:
        reading = PiSugarBattery(sim.socket_path).read()
    assert reading.capacity_pct == 40.0
    assert reading.voltage_v is None and reading.current_a is None and reading.power_w is None
    assert reading.status == "Unknown"


def test_garbage_values_become_none(server: PiSugarServerSim) -> None:
    """A non-numeric answer is treated as missing."""
    server.set("battery", "n/a")
    server.set("battery_power_plugged", "maybe")
    reading = PiSugarBattery(server.socket_path).read()
    assert reading.capacity_pct is None
    assert reading.external_power is None


def test_server_gone_is_a_power_error(tmp_path: Path) -> None:
    """No server on the socket (or TCP port) is a PowerError naming where it looked."""
    with pytest.raises(PowerError, match="unreachable"):
        PiSugarBattery(tmp_path / "nobody.sock").read()
    with pytest.raises(PowerError, match=r"127\.0\.0\.1:1"):
        PiSugarBattery(None, port=1).read()


def test_tcp_transport() -> None:
    """The same protocol over TCP, as pisugar-server offers on port 8423."""
    with PiSugarServerSim(None) as sim:
        reading = PiSugarBattery(None, port=sim.port).read()
    assert reading.capacity_pct == pytest.approx(76.5)
    assert reading.status == "Discharging"
