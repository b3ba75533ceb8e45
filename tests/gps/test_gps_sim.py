"""SimGps: valid NMEA for its route, talkers, time offset and drift, stimulus verbs."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gps_helpers import Collector, wait_for

from hw.errors import ConfigError
from hw.gps_nmea import NmeaDecoder
from hw.gps_serial import SerialGps
from hw.gps_sim import DEFAULT_ROUTE, PtyPort, Route, SimGps

pytestmark = pytest.mark.timeout(30)


def test_route_walks_between_waypoints_and_back() -> None:
    """Positions interpolate along the legs at the route speed, then turn back."""
    route = Route(((0.0, 0.0), (0.0, 0.001)), speed_mps=10.0)
    lat, lon, course = route.position(0)
    assert (lat, lon, course) == (0.0, 0.0, 90.0)
    leg_m = 0.001 * 111_320.0
    lat, lon, _ = route.position(leg_m / 10 / 2)
    assert lon == pytest.approx(0.0005)
    _, lon, course = route.position(leg_m / 10 * 1.5)
    assert lon == pytest.approx(0.0005) and course == pytest.approx(270.0)


def test_sentences_are_valid_and_decode_to_the_route() -> None:
    """What the simulator writes passes checksum validation and decodes to its route."""
    start = datetime(2026, 3, 1, 23, 59, 59, 500000, tzinfo=UTC)
    with SimGps(Route(DEFAULT_ROUTE.waypoints, start_utc=start), rate_hz=10, talker="GB") as sim:
        assert wait_for(lambda: sim.epochs_sent >= 8)
        sent = list(sim.sent)
    assert all(line.startswith(b"$GB") for line in sent)
    decoder = NmeaDecoder()
    fixes = decoder.feed(b"".join(sent), 1)
    assert decoder.stats.bad_checksum == 0 and decoder.stats.garbage_bytes == 0
    assert all(f.mode == 3 for f in fixes)
    assert fixes[0].lat == pytest.approx(DEFAULT_ROUTE.waypoints[0][0], abs=1e-4)
    assert any(f.utc is not None and f.utc.day == 2 for f in fixes), "date rolls at midnight"


def test_time_offset_shifts_reported_utc() -> None:
    """set_time_offset makes the receiver report UTC shifted by that much."""
    with SimGps(rate_hz=10) as sim:
        reader = SerialGps(sim.port_path, 9600)
        sink = Collector()
        reader.start(sink)
        try:
            assert wait_for(lambda: len(sink.positions()) >= 2)
            sim.set_time_offset(3600)
            seen = len(sink.fixes)
            assert wait_for(lambda: len(sink.fixes) >= seen + 3)
        finally:
            reader.stop()
    last = sink.fixes[-1]
    assert last.utc is not None
    assert last.utc - datetime.now(UTC) > timedelta(minutes=59)


def test_unplug_removes_the_device_and_replug_repoints_it() -> None:
    """The stable path vanishes on unplug and points at a new pty on replug."""
    port = PtyPort()
    try:
        assert Path(os.readlink(port.path)).exists()
        port.unplug()
        assert not port.path.exists() and port.write(b"x") == 0
        port.plug()
        assert port.path.is_symlink() and Path(os.readlink(port.path)).exists()
    finally:
        port.close()


def test_inject_reaches_the_line_verbatim() -> None:
    """inject() bytes appear on the line before the next epoch."""
    with SimGps(rate_hz=10) as sim:
        reader = SerialGps(sim.port_path, 9600)
        reader.start(Collector())
        try:
            assert reader.connected.wait(5)
            sim.inject(b"\x00\x01garbage-without-newline\xff\r\n")
            assert wait_for(lambda: reader.stats()["garbage_bytes"] >= 20)
        finally:
            reader.stop()


def test_silence_stops_epochs() -> None:
    """silence() stops the epochs; resume() restarts them."""
    with SimGps(rate_hz=20) as sim:
        assert wait_for(lambda: sim.epochs_sent >= 2)
        sim.silence()
        time.sleep(0.1)
        count = sim.epochs_sent
        time.sleep(0.3)
        assert sim.epochs_sent == count
        sim.resume()
        assert wait_for(lambda: sim.epochs_sent > count)


@pytest.mark.parametrize("kwargs", [{"rate_hz": 0}, {"rate_hz": 100}, {"talker": "G"}])
def test_bad_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    """Out-of-range simulator settings are refused with the key named."""
    with pytest.raises(ConfigError):
        SimGps(**kwargs)  # type: ignore[arg-type]
