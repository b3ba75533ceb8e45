"""A GNSS receiver simulator that speaks NMEA into a pseudo-terminal.

The simulated hardware set pairs :class:`SimGps` with :class:`~hw.gps_serial.SerialGps`
opened on :attr:`SimGps.port_path`, so the real serial path (pyserial, framing, checksums,
reconnects) is exercised on every run, as it is with a receiver on a UART.

:class:`PtyPort` is the wire: a pty pair in raw mode whose slave is reached through a
stable symlink. Unplugging closes both ends and removes the link (the reader sees EIO and
then a missing device); replugging opens a new pair and re-points the link atomically, since
the kernel gives the new slave a different ``/dev/pts/N``.

Locking: ``SimGps._lock`` guards the stimulus state (silence, offset, drift, pending
injections) and the port swap; the writer thread takes it for each epoch. ``PtyPort`` is
used under that lock by ``SimGps``; on its own it is single-threaded.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hw.errors import ConfigError

__all__ = ["DEFAULT_ROUTE", "PtyPort", "Route", "SimGps", "nmea_sentence"]

_EARTH_M_PER_DEG = 111_320.0


def nmea_sentence(body: str) -> bytes:
    """``$body*HH\\r\\n`` with the checksum computed over ``body``."""
    checksum = 0
    for char in body.encode("ascii"):
        checksum ^= char
    return f"${body}*{checksum:02X}\r\n".encode("ascii")


@dataclass(frozen=True)
class Route:
    """Waypoints walked at a constant speed, starting at ``start_utc`` (None: now)."""

    waypoints: tuple[tuple[float, float], ...]
    speed_mps: float = 1.4
    alt_msl: float = 35.0
    start_utc: datetime | None = None

    def position(self, elapsed_s: float) -> tuple[float, float, float]:
        """(lat, lon, course) after ``elapsed_s``; loops back and forth along the path."""
        legs = list(zip(self.waypoints, self.waypoints[1:], strict=False))
        if not legs:
            lat, lon = self.waypoints[0]
            return lat, lon, 0.0
        lengths = [_distance_m(a, b) for a, b in legs]
        total = sum(lengths) or 1.0
        travelled = (elapsed_s * self.speed_mps) % (2 * total)
        reverse = travelled > total
        travelled = 2 * total - travelled if reverse else travelled
        for (a, b), length in zip(legs, lengths, strict=True):
            if travelled <= length or (a, b) == legs[-1]:
                frac = travelled / length if length else 0.0
                lat = a[0] + (b[0] - a[0]) * frac
                lon = a[1] + (b[1] - a[1]) * frac
                course = _bearing(b, a) if reverse else _bearing(a, b)
                return lat, lon, course
            travelled -= length
        raise AssertionError("unreachable")  # pragma: no cover


DEFAULT_ROUTE = Route(
    waypoints=((31.230416, 121.473701), (31.231200, 121.474500), (31.231900, 121.473900)),
)
"""A short walk (about 200 m) used when no route is given."""


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * _EARTH_M_PER_DEG
    dlon = (b[1] - a[1]) * _EARTH_M_PER_DEG * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(dlat, dlon)


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = b[0] - a[0]
    dlon = (b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.degrees(math.atan2(dlon, dlat)) % 360.0


class PtyPort:
    """A raw pty pair whose slave is reachable at a stable symlink ``path``."""

    def __init__(self, path: Path | None = None) -> None:
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if path is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="gps-pty-")
            path = Path(self._own_dir.name) / "ttyGPS"
        self.path = Path(path)
        self._master = -1
        self._slave = -1
        self.plug()

    @property
    def plugged(self) -> bool:
        """True while the pair is open."""
        return self._master >= 0

    def plug(self) -> None:
        """Open a new pair and point ``path`` at its slave."""
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: bytes pass unchanged
        tmp = self.path.with_name(f".{self.path.name}.new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        os.replace(tmp, self.path)
        self._master, self._slave = master, slave

    def unplug(self) -> None:
        """Close both ends and remove the link, as a receiver pulled from USB would."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def write(self, data: bytes, *, block: bool = True) -> int:
        """Send bytes to the reader; unblocked writes drop what the line cannot take."""
        if not self.plugged:
            return 0
        os.set_blocking(self._master, block)
        view = memoryview(data)
        sent = 0
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                break
            sent += n
            view = view[n:]
        return sent

    def close(self) -> None:
        """Unplug and remove the private directory."""
        self.unplug()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None


@dataclass
class _Stimulus:
    silent: bool = False
    offset_s: float = 0.0
    drift_ppm: float = 0.0
    injections: list[bytes] = field(default_factory=list)


class SimGps:
    """A receiver on a simulated serial line: GGA+RMC+GSA+ZDA per epoch for ``route``.

    Stimulus verbs: :meth:`silence`, :meth:`resume`, :meth:`unplug`, :meth:`replug`,
    :meth:`inject`, :meth:`set_time_offset`, :meth:`drift`. History: :attr:`epochs_sent`
    and :attr:`sent` (the last sentences written).
    """

    def __init__(
        self, route: Route = DEFAULT_ROUTE, *, rate_hz: float = 1.0, talker: str = "GN",
        port_path: Path | None = None,
    ) -> None:
        if not 0.1 <= rate_hz <= 50:
            raise ConfigError(f"must be within 0.1..50, got {rate_hz}", key="rate_hz")
        if len(talker) != 2 or not talker.isalpha():
            raise ConfigError(f"must be two letters, got {talker!r}", key="talker")
        self.route = route
        self.rate_hz = rate_hz
        self.talker = talker.upper()
        self._port = PtyPort(port_path)
        self._lock = threading.Lock()
        self._stim = _Stimulus()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.epochs_sent = 0
        self.sent: deque[bytes] = deque(maxlen=64)

    @property
    def port_path(self) -> str:
        """The stable path a reader opens (a symlink to the current pty slave)."""
        return str(self._port.path)

    def start(self) -> None:
        """Begin emitting epochs from a writer thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gps-sim", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the writer and remove the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            self._port.close()

    def __enter__(self) -> SimGps:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- stimulus verbs ----------------------------------------------------------------------
    def silence(self) -> None:
        """The receiver stops talking (antenna lost, firmware hang); the port stays open."""
        with self._lock:
            self._stim.silent = True

    def resume(self) -> None:
        """The receiver talks again."""
        with self._lock:
            self._stim.silent = False

    def unplug(self) -> None:
        """Pull the cable: the reader sees an I/O error and the device node vanishes."""
        with self._lock:
            self._port.unplug()

    def replug(self) -> None:
        """Plug it back: a new pty behind the same :attr:`port_path`."""
        with self._lock:
            self._port.plug()

    def inject(self, data: bytes) -> None:
        """Write ``data`` verbatim before the next epoch (garbage, binary, bad checksums)."""
        with self._lock:
            self._stim.injections.append(bytes(data))

    def set_time_offset(self, seconds: float) -> None:
        """Report UTC shifted by ``seconds`` (a receiver with a wrong time)."""
        with self._lock:
            self._stim.offset_s = seconds

    def drift(self, ppm: float) -> None:
        """Make reported UTC run fast (positive) or slow relative to the monotonic clock."""
        with self._lock:
            self._stim.drift_ppm = ppm

    # --- writer ------------------------------------------------------------------------------
    def _run(self) -> None:
        start_mono = time.monotonic()
        start_utc = self.route.start_utc or datetime.now(UTC)
        period = 1.0 / self.rate_hz
        drift_s = 0.0
        k = 0
        while not self._stop.is_set():
            due = start_mono + k * period
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            elapsed = k * period
            with self._lock:
                drift_s += period * self._stim.drift_ppm * 1e-6
                utc = start_utc + timedelta(seconds=elapsed + self._stim.offset_s + drift_s)
                payload = b"".join(self._stim.injections)
                self._stim.injections.clear()
                if not self._stim.silent:
                    sentences = self._epoch(utc, elapsed)
                    payload += b"".join(sentences)
                    self.sent.extend(sentences)
                    self.epochs_sent += 1
                self._port.write(payload, block=False)
            k += 1

    def _epoch(self, utc: datetime, elapsed_s: float) -> list[bytes]:
        lat, lon, course = self.route.position(elapsed_s)
        hhmmss = f"{utc:%H%M%S}.{utc.microsecond // 1000:03d}"  # as SiRF/MediaTek do
        lat_f = _ddmm(abs(lat), 2) + ("N" if lat >= 0 else "S")
        lon_f = _ddmm(abs(lon), 3) + ("E" if lon >= 0 else "W")
        knots = self.route.speed_mps / (1852.0 / 3600.0)
        t = self.talker
        return [
            nmea_sentence(f"{t}GGA,{hhmmss},{lat_f},{lon_f},1,09,0.9,{self.route.alt_msl:.1f},M,"
                          "12.0,M,,"),
            nmea_sentence(f"{t}GSA,A,3,01,03,06,09,14,17,19,22,28,,,,1.6,0.9,1.3"),
            nmea_sentence(f"{t}ZDA,{hhmmss},{utc:%d,%m,%Y},00,00"),
            nmea_sentence(f"{t}RMC,{hhmmss},A,{lat_f},{lon_f},{knots:.2f},{course:.1f},"
                          f"{utc:%d%m%y},,,A"),
        ]


def _ddmm(value: float, degree_digits: int) -> str:
    """Degrees to ``(d)ddmm.mmmmmm,`` with six decimals of minutes (~2 mm)."""
    degrees = int(value)
    minutes = (value - degrees) * 60.0
    if round(minutes, 6) >= 60.0:
        degrees, minutes = degrees + 1, 0.0
    return f"{degrees:0{degree_digits}d}{minutes:09.6f},"
