"""GpsdClient against a small fake gpsd on loopback that replays TPV reports."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from gps_helpers import Collector, wait_for
from gpsd_captures import CAPTURE_DIR, gpsd_epochs, iso

from hw.gps import GpsReceiver
from hw.gps_gpsd import GpsdClient, tpv_to_fix

pytestmark = pytest.mark.timeout(30)

WATCH = b'?WATCH={"enable":true,"json":true}\n'


def tpv(second: int, **extra: object) -> bytes:
    report = {"class": "TPV", "mode": 3, "time": f"2026-03-01T08:00:{second:02d}.250Z",
              "lat": 31.2304161, "lon": 121.4737012, "altMSL": 12.5, "speed": 1.25,
              "track": 41.0, **extra}
    return json.dumps(report).encode() + b"\n"


class FakeGpsd:
    """Accepts connections; each one gets the next batch of lines, then is closed."""

    def __init__(self, batches: list[list[bytes]]) -> None:
        self.batches = batches
        self.commands: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.release = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        for batch in self.batches:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b'{"class":"VERSION","release":"3.25","proto_major":3}\n')
                self.commands.append(conn.makefile("rb").readline())
                conn.sendall(b"".join(batch))
                self.release.wait(10)
                self.release.clear()

    def close(self) -> None:
        self.release.set()
        self.server.close()


@pytest.fixture
def gpsd_factory() -> Iterator[list[FakeGpsd]]:
    servers: list[FakeGpsd] = []
    yield servers
    for server in servers:
        server.close()


def test_is_a_receiver() -> None:
    """GpsdClient satisfies the GpsReceiver protocol."""
    assert isinstance(GpsdClient(), GpsReceiver)


def test_watch_then_one_fix_per_epoch(gpsd_factory: list[FakeGpsd]) -> None:
    """The client sends WATCH; several TPVs for one time become one Fix with the last values."""
    sky = b'{"class":"SKY","hdop":0.9,"uSat":9}\n'
    server = FakeGpsd([[tpv(1, lat=31.0), sky, tpv(1), tpv(2), b"not json\n", tpv(2, speed=2.0)]])
    gpsd_factory.append(server)
    client = GpsdClient("127.0.0.1", server.port)
    sink = Collector()
    client.start(sink)
    try:
        assert wait_for(lambda: len(sink.fixes) >= 2)
    finally:
        client.stop()
    assert server.commands == [WATCH]
    first, second = sink.fixes[:2]
    assert iso(first.utc) == "2026-03-01T08:00:01.250Z"  # type: ignore[arg-type]
    assert (first.lat, first.lon, first.alt_msl, first.hdop, first.satellites) == (
        31.2304161, 121.4737012, 12.5, 0.9, 9)
    assert second.speed_mps == 2.0
    assert client.stats()["bad_lines"] == 1


def test_reconnects_after_gpsd_restarts(gpsd_factory: list[FakeGpsd]) -> None:
    """gpsd closing the socket is survived: the client reconnects and fixes resume."""
    server = FakeGpsd([[tpv(1), tpv(2)], [tpv(3), tpv(4)]])
    gpsd_factory.append(server)
    client = GpsdClient("127.0.0.1", server.port, reconnect_backoff=(0.05, 0.1))
    sink = Collector()
    client.start(sink)
    try:
        assert wait_for(lambda: len(sink.positions()) >= 2)
        server.release.set()  # gpsd drops the first connection
        assert wait_for(lambda: len(sink.positions()) >= 4)
    finally:
        client.stop()
    assert [f.utc.second for f in sink.positions()] == [1, 2, 3, 4]  # type: ignore[union-attr]
    assert client.stats()["reconnects"] == 1
    assert len(server.commands) == 2


def test_no_fix_tpv_has_no_position() -> None:
    """mode 1 (or 0) TPVs become no-fix Fixes even if gpsd left coordinates in."""
    fix = tpv_to_fix({"class": "TPV", "mode": 1, "lat": 1.0, "lon": 2.0}, {}, 5)
    assert (fix.mode, fix.has_position, fix.utc, fix.received_mono_ns) == (1, False, None, 5)
    assert tpv_to_fix({"class": "TPV", "mode": 0}, {}, 1).mode == 1
    assert tpv_to_fix({"class": "TPV", "mode": 3, "time": "garbage"}, {}, 1).utc is None


@pytest.mark.skipif(not CAPTURE_DIR.is_dir(), reason=f"gpsd captures not found at {CAPTURE_DIR}")
def test_replayed_gpsd_session_matches_its_epochs(gpsd_factory: list[FakeGpsd]) -> None:
    """Real gpsd TPV output (bu353s4) through the socket: one fix per gpsd epoch, exact."""
    chk = CAPTURE_DIR / "bu353s4.log.chk"
    lines = [line + b"\n" for line in chk.read_bytes().splitlines() if line.startswith(b"{")]
    server = FakeGpsd([lines])
    gpsd_factory.append(server)
    client = GpsdClient("127.0.0.1", server.port)
    sink = Collector()
    client.start(sink)
    expected = gpsd_epochs(chk)
    try:
        assert wait_for(lambda: len([f for f in sink.fixes if f.utc]) >= len(expected))
    finally:
        client.stop()
    got = {iso(f.utc): f for f in sink.fixes if f.utc}
    assert list(got) == list(expected)
    for t, ref in expected.items():
        assert (got[t].lat, got[t].lon) == (ref.lat, ref.lon)
