"""Fixes from a running gpsd (JSON over TCP, port 2947), for Pi setups that already run it.

The client sends ``?WATCH={"enable":true,"json":true}`` and turns gpsd's ``TPV`` reports into
:class:`~hw.gps.Fix`. gpsd has already verified the NMEA checksums (or the binary protocol's
own); its JSON carries no checksum of its own, so this source is as trustworthy as the local
gpsd, which the device owns.

gpsd may report several TPVs for one epoch as sentences arrive; the client holds the latest
TPV and delivers it once the time changes or the socket goes quiet, so the sink still gets
one Fix per epoch. ``SKY`` reports supply HDOP and satellites used when TPV lacks them.

Threading: one reader thread owns the socket; the sink is called from it, never with a lock
held, and its exceptions are counted, not propagated. ``_sock_lock`` guards the socket handle
that :meth:`GpsdClient.stop` shuts down to unblock a read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hw.errors import ConfigError
from hw.gps import Fix, FixSink
from hw.gps_nmea import stale_marker

__all__ = ["GpsdClient", "tpv_to_fix"]

_log = logging.getLogger(__name__)
_WATCH = b'?WATCH={"enable":true,"json":true}\n'
_MAX_LINE = 1 << 16
_QUIET_S = 0.15


def _parse_time(text: str) -> datetime | None:
    """gpsd's ``YYYY-MM-DDTHH:MM:SS[.fff…]Z`` to an exact UTC datetime."""
    if not text.endswith("Z") or len(text) < 20:
        return None
    head, _, frac = text[:-1].partition(".")
    if frac and not frac.isdigit():
        return None
    try:
        base = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return base.replace(microsecond=int((frac + "000000")[:6]) if frac else 0)


def _num(report: dict[str, Any], key: str) -> float | None:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def tpv_to_fix(tpv: dict[str, Any], sky: dict[str, Any], mono_ns: int) -> Fix:
    """One gpsd TPV report (plus the latest SKY) as a Fix."""
    mode = tpv.get("mode")
    mode = mode if mode in (2, 3) else 1
    utc = _parse_time(tpv["time"]) if isinstance(tpv.get("time"), str) else None
    lat, lon = _num(tpv, "lat"), _num(tpv, "lon")
    if mode == 1 or lat is None or lon is None:
        return Fix(mode=1, utc=utc, received_mono_ns=mono_ns)
    used = sky.get("uSat")
    alt = _num(tpv, "altMSL")
    return Fix(
        mode=mode, utc=utc, lat=lat, lon=lon,
        alt_msl=(alt if alt is not None else _num(tpv, "alt")) if mode == 3 else None,
        speed_mps=_num(tpv, "speed"), course_deg=_num(tpv, "track"), hdop=_num(sky, "hdop"),
        satellites=used if isinstance(used, int) and not isinstance(used, bool) else None,
        received_mono_ns=mono_ns,
    )


class GpsdClient:
    """A :class:`~hw.gps.GpsReceiver` backed by gpsd's JSON watch stream."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 2947, *, stale_after_s: float = 5.0,
        reconnect_backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        if stale_after_s <= 0:
            raise ConfigError(f"must be positive, got {stale_after_s}", key="gps.stale_after_s")
        if not 0 < reconnect_backoff[0] <= reconnect_backoff[1]:
            raise ConfigError(
                f"must be 0 < min <= max, got {reconnect_backoff}", key="gps.reconnect_backoff"
            )
        self.host, self.port = host, port
        self.stale_after_s = stale_after_s
        self._backoff = reconnect_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._sink: FixSink | None = None
        self._sky: dict[str, Any] = {}
        self._pending: dict[str, Any] | None = None
        self._pending_ns = 0
        self._first_ns = 0
        self.connected = threading.Event()
        self.last_fix: Fix | None = None
        self.reconnects = 0
        self.reports = 0
        self.bad_lines = 0
        self.sink_errors = 0

    def start(self, sink: FixSink) -> None:
        """Connect and start the reader thread."""
        if self._thread is not None:
            raise RuntimeError("GpsdClient already started")
        self._sink = sink
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpsd-client", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Disconnect and join the reader thread (idempotent)."""
        self._stop.set()
        with self._sock_lock:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stats(self) -> dict[str, int]:
        """Counters for telemetry."""
        return {"reconnects": self.reconnects, "reports": self.reports,
                "bad_lines": self.bad_lines, "sink_errors": self.sink_errors}

    # --- reader thread ----------------------------------------------------------------------
    def _run(self) -> None:
        delay = self._backoff[0]
        connected_before = False
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2.0)
            except OSError as exc:
                _log.debug("gpsd at %s:%d unavailable: %s", self.host, self.port, exc)
                self._check_stale(time.monotonic_ns())
                self._stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._backoff[1])
                continue
            if connected_before:
                self.reconnects += 1
            connected_before, delay = True, self._backoff[0]
            with self._sock_lock:
                self._sock = sock
            try:
                self._session(sock)
            except OSError as exc:
                if not self._stop.is_set():
                    _log.warning("gpsd connection lost: %s", exc)
            finally:
                with self._sock_lock:
                    self._sock = None
                sock.close()
                self.connected.clear()
                self._flush(time.monotonic_ns())

    def _session(self, sock: socket.socket) -> None:
        sock.settimeout(_QUIET_S)
        sock.sendall(_WATCH)
        self.connected.set()
        buf = bytearray()
        while not self._stop.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                now = time.monotonic_ns()
                self._flush(now)
                self._check_stale(now)
                continue
            if not data:
                return
            now = time.monotonic_ns()
            buf += data
            *lines, rest = bytes(buf).split(b"\n")
            buf = bytearray(rest if len(rest) <= _MAX_LINE else b"")
            for line in lines:
                self._handle(line, now)

    def _handle(self, line: bytes, now: int) -> None:
        try:
            report = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self.bad_lines += 1
            return
        if not isinstance(report, dict):
            self.bad_lines += 1
            return
        kind = report.get("class")
        if kind == "SKY":
            self._sky = report
        elif kind == "TPV":
            self.reports += 1
            if self._pending is not None and self._pending.get("time") != report.get("time"):
                self._flush(now)
            if self._pending is None:
                self._first_ns = now
            self._pending, self._pending_ns = report, now

    def _flush(self, now: int) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            fix = tpv_to_fix(pending, self._sky, self._pending_ns or now)
            self._deliver(replace(fix, epoch_mono_ns=self._first_ns or fix.received_mono_ns))

    def _check_stale(self, now_ns: int) -> None:
        last = self.last_fix
        if last is not None and not last.stale and \
                now_ns - last.received_mono_ns > self.stale_after_s * 1e9:
            self._deliver(stale_marker(now_ns))

    def _deliver(self, fix: Fix) -> None:
        self.last_fix = fix
        if self._sink is None:
            return
        try:
            self._sink(fix)
        except Exception:  # the sink's failure must not kill the receiver
            self.sink_errors += 1
            _log.exception("GPS fix sink raised")
