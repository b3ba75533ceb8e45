"""Fixtures for the console tests: the agency PKI, a TLS broker with the shipped ACL, and a
station with its console (see harness.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.harness import ConsoleStation, make_broker, make_ca
from tests.station.conftest import postgres  # noqa: F401 -- the shared-index fixture, reused
from tests.sync.mqtt_harness import Broker

UNITS = ("BC-CON-1", "BC-CON-2", "BC-CON-3")
FORKED = "BC-CON-4"  # a unit whose log is forked (it has no position, so no map marker)
TILED = "BC-CON-5"  # the unit on the tile-server map (its own station)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agency CA, the station/broker server certificate, three units and the back office."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    return make_ca(tmp_path_factory.mktemp("pki"), *UNITS, FORKED, TILED)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[Broker]:
    """mosquitto with the shipped TLS + ACL configuration on loopback."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto not installed")
    b = make_broker(tmp_path_factory.mktemp("broker"), pki)
    yield b
    b.kill()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory, pki: Path,
            broker: Broker) -> Iterator[ConsoleStation]:
    """A station with its checkpoint monitor and the console on the monitor's MQTT identity,
    with a dispatcher (alice) and a viewer (bob)."""
    st = ConsoleStation(tmp_path_factory.mktemp("console"), pki, broker.port)
    st.write_config(monitor=True)
    st.add_user("alice", "dispatcher", "alice-password-1")
    st.add_user("bob", "viewer", "bob-password-12")
    st.add_user("carol", "dispatcher", "carol-password-1")  # the sign-in limit's victim
    st.start()
    yield st
    st.stop()
