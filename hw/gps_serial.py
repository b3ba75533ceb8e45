"""NMEA receiver on a serial port (UART, USB CDC-ACM, or the simulator's pty).

One reader thread owns the port and a :class:`~hw.gps_nmea.NmeaDecoder`. It survives what a
real line does: garbage and binary frames are dropped by the decoder; when the port fails
(``SerialException``/``OSError``: cable pulled, device node gone) it closes, waits with
exponential backoff plus jitter, and reopens; when the receiver falls silent for
``stale_after_s`` it delivers one stale marker (``Fix(mode=1, stale=True)``).

Threading: the sink is called from the reader thread only, never with a lock held; an
exception raised by the sink is logged and counted, never propagated. Counters are plain
integers written only by the reader thread; :meth:`SerialGps.stats` returns a snapshot.
``_port_lock`` guards the ``_serial`` handle, which :meth:`stop` closes to unblock a read.
"""

from __future__ import annotations

import logging
import random
import select
import termios
import threading
import time

import serial

from hw.errors import ConfigError
from hw.gps import Fix, FixSink
from hw.gps_nmea import NmeaDecoder, stale_marker

__all__ = ["SerialGps"]

_log = logging.getLogger(__name__)
# A read returns when the receiver has been quiet this long after a byte (the end of a
# sentence burst) or when the next deadline is due -- not on a fixed short poll, so the
# thread wakes about once per burst instead of ~20 times a second.
_BURST_GAP_S = 0.02
_READ_SIZE = 4096
_IDLE_WAIT_S = 1.0


class SerialGps:
    """A :class:`~hw.gps.GpsReceiver` reading NMEA 0183 from ``port`` at ``baud``."""

    def __init__(
        self, port: str, baud: int = 9600, *, stale_after_s: float = 5.0,
        reconnect_backoff: tuple[float, float] = (0.5, 10.0), quiet_flush_s: float = 0.15,
    ) -> None:
        if stale_after_s <= 0:
            raise ConfigError(f"must be positive, got {stale_after_s}", key="gps.stale_after_s")
        low, high = reconnect_backoff
        if not 0 < low <= high:
            raise ConfigError(
                f"must be 0 < min <= max, got {reconnect_backoff}", key="gps.reconnect_backoff"
            )
        self.port = port
        self.baud = baud
        self.stale_after_s = stale_after_s
        self.quiet_flush_s = quiet_flush_s
        self._backoff = (low, high)
        self._decoder = NmeaDecoder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port_lock = threading.Lock()
        self._serial: serial.Serial | None = None
        self._sink: FixSink | None = None
        self.reconnects = 0
        self.bytes_read = 0
        self.sink_errors = 0
        self.reads = 0  # reader wake-ups (returned reads), for the CPU budget
        self.connected = threading.Event()
        self.last_fix: Fix | None = None

    # --- GpsReceiver ------------------------------------------------------------------------
    def start(self, sink: FixSink) -> None:
        """Start the reader thread; ``sink`` receives one Fix per epoch."""
        if self._thread is not None:
            raise RuntimeError("SerialGps already started")
        self._sink = sink
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"gps:{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and close the port (idempotent)."""
        self._stop.set()
        self._close_port()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        """True while the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def epoch_open(self) -> bool:
        """True while an epoch is being assembled (not yet delivered)."""
        return self._decoder.epoch_open

    def stats(self) -> dict[str, int]:
        """Counters for telemetry (sentences ok, bad checksums, garbage, reconnects…)."""
        counters = self._decoder.stats.as_dict()
        counters.update(
            reconnects=self.reconnects, bytes_read=self.bytes_read, sink_errors=self.sink_errors
        )
        return counters

    # --- reader thread ----------------------------------------------------------------------
    def _run(self) -> None:
        delay = self._backoff[0]
        first = True
        while not self._stop.is_set():
            if not self._open_port():
                wait = delay * random.uniform(0.5, 1.0)  # jitter: never in lockstep
                delay = min(delay * 2, self._backoff[1])
                self._stop.wait(wait)
                continue
            if not first:
                self.reconnects += 1
                _log.warning("GPS port %s reopened (reconnect %d)", self.port, self.reconnects)
            first = False
            delay = self._backoff[0]
            self._read_until_failure()
            self._close_port()
            self._decoder.reset()

    def _open_port(self) -> bool:
        try:
            # exclusive: a second reader on the same UART would steal half the sentences
            handle = serial.Serial(self.port, self.baud, timeout=_BURST_GAP_S, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            _log.debug("GPS port %s unavailable: %s", self.port, exc)
            self._check_stale(time.monotonic_ns())
            return False
        with self._port_lock:
            if self._stop.is_set():
                handle.close()
                return False
            self._serial = handle
        self.connected.set()
        return True

    def _close_port(self) -> None:
        with self._port_lock:
            handle, self._serial = self._serial, None
        self.connected.clear()
        if handle is not None:
            try:
                handle.close()
            except (serial.SerialException, OSError) as exc:
                _log.debug("closing GPS port %s: %s", self.port, exc)

    def _read_until_failure(self) -> None:
        handle = self._serial
        assert handle is not None
        last_data_ns = time.monotonic_ns()
        flushed = True
        while not self._stop.is_set():
            try:
                # Wait for the pending epoch's quiet flush, else for the stale check.
                wait = self.quiet_flush_s if not flushed else self._idle_wait_s()
                data, arrived_ns = _read_burst(handle, wait)
            except (serial.SerialException, OSError, ValueError, termios.error, TypeError,
                    AttributeError) as exc:
                # ValueError/TypeError/AttributeError/termios.error: a handle closed by stop()
                if not self._stop.is_set():
                    _log.warning("GPS port %s failed: %s", self.port, exc)
                return
            self.reads += 1
            now = time.monotonic_ns()
            if data:
                last_data_ns, flushed = now, False
                # Stamped with the burst's first byte: a fix's time is when its sentences
                # began to arrive, not when the line went quiet (the clock discipline and
                # the drift estimate depend on it).
                for fix in self._decoder.feed(data, arrived_ns):
                    self._deliver(fix)
                self.bytes_read += len(data)  # after delivery: "all read" means "all decoded"
                self._check_stale(now)  # bytes are not fixes: noise alone must not look fresh
                continue
            if not flushed and now - last_data_ns >= self.quiet_flush_s * 1e9:
                flushed = True
                pending = self._decoder.flush(now)
                if pending is not None:
                    self._deliver(pending)
            self._check_stale(now)

    def _idle_wait_s(self) -> float:
        """Longest read wait with nothing pending: a stale fix is noticed within a quarter of
        ``stale_after_s`` (at most a second late)."""
        return min(_IDLE_WAIT_S, self.stale_after_s / 4)

    def _check_stale(self, now_ns: int) -> None:
        last = self.last_fix
        reference = last.received_mono_ns if last is not None else None
        if last is not None and last.stale:
            return
        if reference is not None and now_ns - reference > self.stale_after_s * 1e9:
            _log.warning("GPS %s silent for %.1f s: fix is stale", self.port, self.stale_after_s)
            self._deliver(stale_marker(now_ns))

    def _deliver(self, fix: Fix) -> None:
        self.last_fix = fix
        sink = self._sink
        if sink is None:
            return
        try:
            sink(fix)
        except Exception:  # the sink's failure must not kill the receiver
            self.sink_errors += 1
            _log.exception("GPS fix sink raised")


def _read_burst(handle: serial.Serial, wait_s: float) -> tuple[bytes, int]:
    """Wait up to ``wait_s`` for a byte, then read until the line has been quiet for
    ``_BURST_GAP_S`` (or ``_READ_SIZE`` bytes came): one wake-up per sentence burst.

    Returns the bytes and the monotonic time the first of them was seen -- when nothing came,
    ``b""`` and the time the wait ended.
    """
    fd = handle.fileno()
    ready, _, _ = select.select([fd], [], [], wait_s)
    first_ns = time.monotonic_ns()
    if not ready:
        return b"", first_ns
    chunks: list[bytes] = []
    size = 0
    while size < _READ_SIZE:
        data = handle.read(max(1, min(handle.in_waiting, _READ_SIZE - size)))
        if not data:
            break
        chunks.append(data)
        size += len(data)
        ready, _, _ = select.select([fd], [], [], _BURST_GAP_S)
        if not ready:
            break
    return b"".join(chunks), first_ns
