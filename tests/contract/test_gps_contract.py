"""The GpsReceiver contract, run against the simulator always and a real port with --hw pi.

Simulated: SimGps writes NMEA into a pty and the real SerialGps reads it, so the serial
path is the one a device uses. On a Pi (``--hw pi``) the same checks run against the port in
``BODYCAM_GPS_PORT`` (default ``/dev/serial0``) at ``BODYCAM_GPS_BAUD`` (default 9600); they
are skipped cleanly when no receiver is attached.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from hw.gps import Fix, GpsReceiver
from hw.gps_serial import SerialGps
from hw.gps_sim import SimGps

pytestmark = pytest.mark.timeout(60)


@dataclass
class Rig:
    """A receiver under test and, when simulated, the simulator driving it."""

    receiver: SerialGps
    sim: SimGps | None
    first_fix_timeout: float


def _hw(request: pytest.FixtureRequest) -> str:
    try:
        return str(request.config.getoption("--hw", default="sim") or "sim")
    except ValueError:
        return "sim"


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    if _hw(request) == "pi":
        port = os.environ.get("BODYCAM_GPS_PORT", "/dev/serial0")
        if not os.path.exists(port):
            pytest.skip(f"no GPS receiver at {port} (set BODYCAM_GPS_PORT)")
        receiver = SerialGps(port, int(os.environ.get("BODYCAM_GPS_BAUD", "9600")))
        yield Rig(receiver, None, 30.0)
        receiver.stop()
        return
    with SimGps(rate_hz=10) as sim:
        receiver = SerialGps(sim.port_path, 9600, stale_after_s=1.0,
                             reconnect_backoff=(0.05, 0.2))
        yield Rig(receiver, sim, 10.0)
        receiver.stop()


class Sink:
    def __init__(self) -> None:
        self.fixes: list[Fix] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, fix: Fix) -> None:
        with self.lock:
            self.fixes.append(fix)
            self.threads.add(threading.current_thread().name)

    def snapshot(self) -> list[Fix]:
        with self.lock:
            return list(self.fixes)

    def wait(self, count: int, timeout: float) -> list[Fix]:
        deadline = time.monotonic() + timeout
        gate = threading.Event()
        while len(self.snapshot()) < count and time.monotonic() < deadline:
            gate.wait(0.05)
        return self.snapshot()


def test_receiver_implements_protocol(rig: Rig) -> None:
    """The driver is a GpsReceiver."""
    assert isinstance(rig.receiver, GpsReceiver)


def test_fixes_honour_the_contract(rig: Rig) -> None:
    """Fixes: gpsd modes, coordinates in range, UTC-aware times, monotonic stamps, off-thread."""
    sink = Sink()
    start_ns = time.monotonic_ns()
    rig.receiver.start(sink)
    fixes = sink.wait(5, rig.first_fix_timeout)
    assert len(fixes) >= 5, "receiver delivered no fixes"
    stamps = [f.received_mono_ns for f in fixes]
    assert stamps == sorted(stamps) and start_ns < stamps[0] <= time.monotonic_ns()
    for fix in fixes:
        assert fix.mode in (1, 2, 3)
        if fix.utc is not None:
            assert fix.utc.utcoffset() == timedelta(0)
        if fix.has_position:
            assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180  # type: ignore[operator]
        else:
            assert fix.lat is None or fix.mode == 1
    assert threading.current_thread().name not in sink.threads


def test_stop_ends_delivery(rig: Rig) -> None:
    """After stop() returns no further fix is delivered."""
    sink = Sink()
    rig.receiver.start(sink)
    assert sink.wait(1, rig.first_fix_timeout)
    rig.receiver.stop()
    count = len(sink.snapshot())
    time.sleep(0.3)  # settle: a late delivery would show up here
    assert len(sink.snapshot()) == count


def test_survives_unplug(rig: Rig) -> None:
    """Unplug and replug: the receiver reconnects by itself and fixes resume."""
    if rig.sim is None:
        pytest.skip("unplugging needs the simulator")
    sink = Sink()
    rig.receiver.start(sink)
    assert sink.wait(3, rig.first_fix_timeout)
    rig.sim.unplug()
    deadline = time.monotonic() + 5
    while rig.receiver.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not rig.receiver.connected.is_set(), "unplug went unnoticed"
    rig.sim.replug()
    before = len(sink.snapshot())
    assert len(sink.wait(before + 3, rig.first_fix_timeout)) >= before + 3
