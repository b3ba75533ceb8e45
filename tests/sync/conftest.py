"""Fixtures for the sync tests: real mosquitto brokers on loopback (plain and TLS+ACL)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_harness import Broker, free_port, make_ca, plain_broker_conf, tls_broker_conf

needs_mosquitto = pytest.mark.skipif(shutil.which("mosquitto") is None,
                                     reason="mosquitto binary not installed")


@pytest.fixture
def plain_broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto on 127.0.0.1:<free port>, anonymous, with persistence."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed")
    work = tmp_path / "broker"
    work.mkdir()
    port = free_port()
    broker = Broker(plain_broker_conf(work, port), "127.0.0.1", port, work)
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA with certificates for devices cam-a and cam-b and the back office."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    return make_ca(tmp_path_factory.mktemp("ca"), "cam-a", "cam-b")


@pytest.fixture
def tls_broker(tmp_path: Path, test_ca: Path) -> Iterator[Broker]:
    """mosquitto running the shipped reference config (TLS, client certs, ACL)."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed")
    work = tmp_path / "tlsbroker"
    work.mkdir()
    port = free_port()
    broker = Broker(tls_broker_conf(work, port, test_ca), "127.0.0.1", port, work)
    broker.start()
    yield broker
    broker.kill()
