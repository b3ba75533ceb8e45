"""SerialGps on the simulator's pty: reconnects, staleness, garbage, a failing sink."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from gps_helpers import Collector, wait_for

from hw.gps import Fix, GpsReceiver
from hw.gps_serial import SerialGps
from hw.gps_sim import SimGps, nmea_sentence

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sim() -> Iterator[SimGps]:
    with SimGps(rate_hz=10) as gps:
        yield gps


@pytest.fixture
def reader(sim: SimGps) -> Iterator[SerialGps]:
    gps = SerialGps(sim.port_path, 9600, stale_after_s=0.5, reconnect_backoff=(0.05, 0.2))
    yield gps
    gps.stop()


def test_serial_gps_is_a_receiver(reader: SerialGps) -> None:
    """SerialGps satisfies the GpsReceiver protocol."""
    assert isinstance(reader, GpsReceiver)


def test_fixes_carry_position_time_and_monotonic_stamp(sim: SimGps, reader: SerialGps) -> None:
    """Each epoch from the simulator becomes one 3D fix with UTC and a monotonic stamp."""
    sink = Collector()
    before = time.monotonic_ns()
    reader.start(sink)
    assert wait_for(lambda: len(sink.positions()) >= 5)
    fixes = sink.positions()
    assert all(f.mode == 3 and f.utc is not None and f.satellites == 9 for f in fixes)
    assert all(before < f.received_mono_ns <= time.monotonic_ns() for f in fixes)
    assert len({f.utc for f in fixes}) == len(fixes), "one fix per epoch"
    assert fixes[0].lat == pytest.approx(31.2304, abs=0.01)


def test_reconnects_after_unplug_and_fixes_resume(sim: SimGps, reader: SerialGps) -> None:
    """The pty is closed and reopened mid-stream; the reader reconnects and fixes resume."""
    sink = Collector()
    reader.start(sink)
    assert wait_for(lambda: len(sink.positions()) >= 3)
    sim.unplug()
    assert wait_for(lambda: not reader.connected.is_set())
    count_while_unplugged = len(sink.positions())
    sim.replug()
    assert wait_for(lambda: len(sink.positions()) >= count_while_unplugged + 3)
    assert reader.stats()["reconnects"] == 1
    utcs = [f.utc for f in sink.positions() if f.utc]
    assert utcs == sorted(utcs), "no epoch replayed or reordered across the reconnect"


def test_reader_waits_for_a_port_that_is_absent_at_start(sim: SimGps) -> None:
    """A receiver plugged in after the agent started is picked up."""
    sim.unplug()
    gps = SerialGps(sim.port_path, 9600, reconnect_backoff=(0.05, 0.1))
    sink = Collector()
    gps.start(sink)
    try:
        assert not gps.connected.wait(0.3)
        sim.replug()
        assert wait_for(lambda: len(sink.positions()) >= 2)
    finally:
        gps.stop()


def test_silence_delivers_one_stale_marker_then_fixes_resume(
    sim: SimGps, reader: SerialGps
) -> None:
    """A silent receiver yields a single stale marker; talking again yields fixes."""
    sink = Collector()
    reader.start(sink)
    assert wait_for(lambda: len(sink.positions()) >= 2)
    sim.silence()
    assert wait_for(lambda: any(f.stale for f in sink.fixes))
    marker = next(f for f in sink.fixes if f.stale)
    assert marker.mode == 1 and not marker.has_position and marker.utc is None
    sim.resume()
    seen = len(sink.fixes)
    assert wait_for(lambda: len([f for f in sink.fixes[seen:] if f.has_position]) >= 2)
    assert sum(f.stale for f in sink.fixes) == 1


def test_injected_garbage_is_counted_and_harmless(sim: SimGps, reader: SerialGps) -> None:
    """UBX binary, NULs, a forged sentence with a bad checksum: counted, never a fix."""
    sink = Collector()
    reader.start(sink)
    assert wait_for(lambda: len(sink.positions()) >= 2)
    forged = nmea_sentence("GPGGA,120000.00,0000.0000,N,00000.0000,E,1,09,0.9,1.0,M,0,M,,")
    forged = forged[:-4] + b"00\r\n"
    sim.inject(b"\xb5\x62\x01\x07\x5c\x00" + bytes(range(256)) + b"\x00" * 64 + forged)
    assert wait_for(lambda: reader.stats()["bad_checksum"] >= 1)
    assert wait_for(lambda: len(sink.positions()) >= 6)
    assert reader.stats()["garbage_bytes"] > 0
    assert all(abs(f.lat or 0) > 1 for f in sink.positions()), "forged position never used"


def test_a_failing_sink_does_not_stop_the_reader(sim: SimGps, reader: SerialGps) -> None:
    """An exception in the consumer is counted; the reader keeps delivering."""
    calls: list[Fix] = []

    def sink(fix: Fix) -> None:
        calls.append(fix)
        raise RuntimeError("consumer bug")

    reader.start(sink)
    assert wait_for(lambda: len(calls) >= 3)
    assert reader.running
    assert reader.stats()["sink_errors"] >= 3


def test_stop_is_prompt_and_idempotent(sim: SimGps, reader: SerialGps) -> None:
    """stop() closes the port and joins the thread; calling it twice is harmless."""
    reader.start(Collector())
    assert reader.connected.wait(5)
    reader.stop()
    reader.stop()
    assert not reader.running and not reader.connected.is_set()


@pytest.mark.parametrize("bad", [{"stale_after_s": 0}, {"reconnect_backoff": (2.0, 1.0)}])
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    """Nonsense settings fail at construction with a clear message."""
    with pytest.raises(ValueError, match="must be"):
        SerialGps("/dev/null", 9600, **bad)  # type: ignore[arg-type]


def test_noise_without_fixes_still_goes_stale(sim: SimGps, reader: SerialGps) -> None:
    """A line full of noise (wrong baud, broken receiver) is not mistaken for a live fix."""
    sink = Collector()
    reader.start(sink)
    assert wait_for(lambda: len(sink.positions()) >= 2)
    sim.silence()
    stop = threading.Event()

    def babble() -> None:
        while not stop.is_set():
            sim.inject(b"\x55\xaa" * 20 + b"\r\n")
            stop.wait(0.02)

    noise = threading.Thread(target=babble, daemon=True)
    noise.start()
    try:
        assert wait_for(lambda: any(f.stale for f in sink.fixes))
    finally:
        stop.set()
        noise.join()
