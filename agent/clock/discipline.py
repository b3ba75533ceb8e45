"""Trustworthy time: which source disciplines the clock, how wrong it may be, and steps.

Evidence carries UTC timestamps a court may rely on, so every segment records *where its
time came from* and an honest error bound, and media time (``CLOCK_MONOTONIC`` stamps from
the sensor) is mapped to UTC through a monotonic↔UTC pair recorded per segment.

Sources, best first:

* ``ntp`` — the kernel reports the clock synchronised (``adjtimex``; chrony or
  systemd-timesyncd, possibly itself fed by GPS): error = the kernel's ``esterror``.
* ``gps`` — a recent fix's UTC compared with the system clock at the fix's
  ``received_mono_ns``. NMEA arrives some hundreds of milliseconds after the epoch, so the
  error bound is ``|offset| + gps_uncertainty_ms``; if the system clock is off by more than
  that uncertainty, :meth:`ClockDiscipline.utc_for_mono` corrects it by the GPS offset.
* ``rtc`` — only a battery-backed RTC set the clock at boot: untrusted (drifts seconds/day).
* ``none`` — nothing vouches for the clock: untrusted.

GPS times before ``min_valid_utc`` (a receiver with the week-number rollover bug reports
dates 19.6 years in the past) are ignored, never used to "correct" the clock.

A *clock step* (system UTC minus monotonic jumps by more than ``step_threshold_ms``) is
reported once through ``on_clock_step`` so the caller can log it as an evidence event.

The manifest's ``clock`` object is :class:`agent.evidence.manifest.ClockInfo`, which
:meth:`ClockStatus.clock_info` gives; the list of sources is that module's
:class:`~agent.evidence.manifest.ClockSource`. UTC text is :func:`agent.evidence.utc.iso_utc`.

Locking: ``_lock`` guards the GPS sample window, the step baseline and the last fix; public
methods may be called from the GPS reader thread and the controller thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from agent.evidence.manifest import ClockInfo, ClockSource
from agent.evidence.utc import iso_utc, parse_utc
from hw.errors import ClockError
from hw.gps import Fix

__all__ = [
    "AdjtimexProbe",
    "ClockDiscipline",
    "ClockSource",
    "ClockStatus",
    "ClockStep",
    "DriftEstimate",
    "NtpProbe",
    "NtpState",
    "TimesyncFileProbe",
]

_log = logging.getLogger(__name__)
_NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class NtpState:
    """What the kernel (or timesyncd) says about synchronisation."""

    synchronized: bool
    error_ms: int | None = None


class NtpProbe(Protocol):
    """Reads the NTP synchronisation state; pluggable so tests can fake it."""

    def read(self) -> NtpState:
        """The current state; never raises (an unreadable state is 'not synchronised')."""
        ...


class _Timex(ctypes.Structure):
    """``struct timex`` from ``<sys/timex.h>`` (Linux); modes=0 makes adjtimex read-only."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11),
    ]


_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


class AdjtimexProbe:
    """The kernel's view via ``adjtimex(2)`` (read-only; no privilege needed)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(name, use_errno=True) if name else None

    def read(self) -> NtpState:
        """Synchronised unless the kernel says TIME_ERROR / STA_UNSYNC."""
        if self._libc is None:
            return NtpState(False)
        tx = _Timex()
        state = self._libc.adjtimex(ctypes.byref(tx))
        if state < 0 or state == _TIME_ERROR or tx.status & _STA_UNSYNC:
            return NtpState(False)
        return NtpState(True, max(1, math.ceil(tx.esterror / 1000)))


class TimesyncFileProbe:
    """systemd-timesyncd's flag file ``/run/systemd/timesync/synchronized`` under ``root``."""

    def __init__(self, root: Path = Path("/"), *, error_ms: int = 100) -> None:
        self._flag = Path(root) / "run/systemd/timesync/synchronized"
        self._error_ms = error_ms

    def read(self) -> NtpState:
        """Synchronised while the flag file exists (timesyncd gives no error figure)."""
        if self._flag.exists():
            return NtpState(True, self._error_ms)
        return NtpState(False)


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The system clock jumped relative to the monotonic clock."""

    mono_ns: int
    old_offset_ms: int
    new_offset_ms: int

    @property
    def delta_ms(self) -> int:
        """Size of the jump (positive: the clock moved forward)."""
        return self.new_offset_ms - self.old_offset_ms

    def as_event(self) -> dict[str, int | str]:
        """The evidence-log event body."""
        return {
            "type": "clock_step", "mono_us": self.mono_ns // 1000,
            "old_offset_ms": self.old_offset_ms, "new_offset_ms": self.new_offset_ms,
            "delta_ms": self.delta_ms,
        }


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Where the time comes from and how far it may be off."""

    source: ClockSource
    error_ms: int | None
    trusted: bool
    gps_offset_ms: int | None = None
    ntp_synchronized: bool = False
    rtc_present: bool = False

    def clock_info(self) -> ClockInfo:
        """The manifest's ``clock`` object: source, error bound and trust verdict (the GPS
        offset and NTP/RTC presence are for status and telemetry, not evidence)."""
        return ClockInfo(str(self.source), self.error_ms, self.trusted)


@dataclass(frozen=True, slots=True)
class DriftEstimate:
    """How fast the system clock runs against GPS (positive: the system clock gains)."""

    ppm: float
    samples: int
    span_s: float

    @property
    def s_per_day(self) -> float:
        """The same rate as seconds gained per day."""
        return self.ppm * 86400e-6


class ClockDiscipline:
    """Tracks the clock's source, error, steps and drift; maps monotonic time to UTC."""

    def __init__(
        self, *, ntp: NtpProbe | None = None, root: Path = Path("/"),
        gps_max_age_s: float = 5.0, gps_uncertainty_ms: int = 250,
        step_threshold_ms: int = 500, trust_max_error_ms: int = 1000,
        on_clock_step: Callable[[ClockStep], None] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        drift_window: int = 3600,
        min_valid_utc: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    ) -> None:
        self._ntp = ntp if ntp is not None else AdjtimexProbe()
        self._rtc = Path(root) / "sys/class/rtc/rtc0"
        self._gps_max_age_ns = int(gps_max_age_s * 1e9)
        self._gps_uncertainty_ms = gps_uncertainty_ms
        self._step_threshold_ns = step_threshold_ms * _NS_PER_MS
        self._trust_max_error_ms = trust_max_error_ms
        self._on_step = on_clock_step
        self._wall_ns = wall_ns
        self._mono_ns = mono_ns
        self._lock = threading.Lock()
        self._samples: deque[tuple[int, int]] = deque(maxlen=drift_window)  # (mono, offset)
        self._last_gps_mono: int | None = None
        self._base_ns = self._wall_minus_mono()
        self._min_valid_utc = min_valid_utc
        self._warned_implausible = False

    # --- inputs -----------------------------------------------------------------------------
    def observe_fix(self, fix: Fix) -> None:
        """Compare a fix's UTC with the system clock at the moment it was received."""
        if fix.stale or fix.utc is None or not fix.has_position or fix.received_mono_ns <= 0:
            return
        if fix.utc < self._min_valid_utc:
            # A receiver with the GPS week-number rollover bug reports dates 1024 weeks
            # (19.6 years) in the past: such a time must never discipline evidence.
            if not self._warned_implausible:
                _log.warning("GPS reports %s, before %s: not used for time", fix.utc,
                             self._min_valid_utc.date())
                self._warned_implausible = True
            return
        self.check_step()
        gps_ns = _epoch_ns(fix.utc)
        arrival = fix.epoch_mono_ns or fix.received_mono_ns  # least-delayed local instant
        system_ns = arrival + self._wall_minus_mono()
        with self._lock:
            self._samples.append((arrival, gps_ns - system_ns))
            self._last_gps_mono = fix.received_mono_ns

    def check_step(self) -> ClockStep | None:
        """Detect a jump of system UTC against monotonic time; report it once."""
        now_base = self._wall_minus_mono()
        with self._lock:
            old = self._base_ns
            if abs(now_base - old) <= self._step_threshold_ns:
                return None
            self._base_ns = now_base
            self._samples.clear()  # offsets measured before the step no longer apply
        step = ClockStep(self._mono_ns(), _round_ms(old), _round_ms(now_base))
        _log.warning("clock step of %d ms detected", step.delta_ms)
        if self._on_step is not None:
            self._on_step(step)
        return step

    # --- outputs ----------------------------------------------------------------------------
    def status(self) -> ClockStatus:
        """The current source, error bound and trust verdict."""
        ntp = self._ntp.read()
        rtc = self._rtc.exists()
        gps_offset = self._gps_offset_ns()
        gps_offset_ms = _round_ms(gps_offset) if gps_offset is not None else None
        if ntp.synchronized:
            source, error = ClockSource.NTP, ntp.error_ms
        elif gps_offset_ms is not None:
            source = ClockSource.GPS
            error = self._gps_uncertainty_ms
            if abs(gps_offset_ms) <= self._gps_uncertainty_ms:
                error += abs(gps_offset_ms)  # system clock used as is, within this bound
        elif rtc:
            source, error = ClockSource.RTC, None
        else:
            source, error = ClockSource.NONE, None
        trusted = error is not None and error <= self._trust_max_error_ms
        return ClockStatus(source, error, trusted, gps_offset_ms, ntp.synchronized, rtc)

    def status_for_recording(self) -> ClockStatus:
        """:meth:`status`, with a warning logged when recording on an untrusted clock."""
        status = self.status()
        if not status.trusted:
            _log.warning(
                "recording with an untrusted clock (source=%s, error_ms=%s)",
                status.source, status.error_ms,
            )
        return status

    def mapping(self) -> dict[str, int | str]:
        """A monotonic↔UTC pair taken now, for the segment manifest."""
        mono = self._mono_ns()
        mono_us = mono // 1000
        return {"mono_us": mono_us, "utc": iso_utc(self.utc_for_mono(mono_us * 1000))}

    def utc_for_mono(self, mono_ns: int, mapping: dict[str, int | str] | None = None) -> datetime:
        """UTC for a ``CLOCK_MONOTONIC`` instant, from ``mapping`` or the current timebase.

        With a recorded mapping the result is exact to the microsecond (integer arithmetic):
        this is how a verifier maps media timestamps of a past segment to UTC.
        """
        if mapping is not None:
            try:
                base = parse_utc(str(mapping["utc"]))
                anchor_us = int(mapping["mono_us"])
            except (KeyError, ValueError, TypeError) as exc:
                raise ClockError(f"invalid monotonic↔UTC mapping {mapping!r}: {exc}") from exc
            return base + timedelta(microseconds=mono_ns // 1000 - anchor_us)
        offset = self._wall_minus_mono() + self._correction_ns()
        return _from_epoch_ns(mono_ns + offset)

    def drift(self) -> DriftEstimate | None:
        """System clock rate against GPS by least squares over the sample window."""
        with self._lock:
            samples = list(self._samples)
        if len(samples) < 3:
            return None
        span_ns = samples[-1][0] - samples[0][0]
        if span_ns <= 0:
            return None
        points = _latency_envelope(samples)
        xs = [(m - samples[0][0]) / 1e9 for m, _ in points]
        ys = [o / 1e9 for _, o in points]
        if len(points) < 2 or xs[-1] == xs[0]:
            return None
        slope = statistics.linear_regression(xs, ys).slope  # GPS minus system, s per s
        return DriftEstimate(-slope * 1e6, len(samples), span_ns / 1e9)

    # --- internals --------------------------------------------------------------------------
    def _wall_minus_mono(self) -> int:
        mono = self._mono_ns()
        wall = self._wall_ns()
        return wall - mono

    def _gps_offset_ns(self) -> int | None:
        """Median GPS-minus-system offset of the last few fixes, if GPS is fresh."""
        with self._lock:
            if self._last_gps_mono is None or not self._samples:
                return None
            if self._mono_ns() - self._last_gps_mono > self._gps_max_age_ns:
                return None
            recent = [o for _, o in list(self._samples)[-9:]]
        return int(statistics.median(recent))

    def _correction_ns(self) -> int:
        """Apply the GPS offset when NTP is absent and the clock is off beyond NMEA latency."""
        offset = self._gps_offset_ns()
        if offset is None or abs(offset) <= self._gps_uncertainty_ms * _NS_PER_MS:
            return 0
        if self._ntp.read().synchronized:
            return 0
        return offset


def _latency_envelope(samples: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The least-delayed sample of each time bin.

    A fix is always received *after* its epoch, so ``gps - system`` is the true offset
    minus a positive, jittery latency; the largest offset in a bin is the one closest to the
    truth (the minimum-delay filter NTP uses). Regressing on those rejects scheduling and
    serial-line jitter that would otherwise swamp a few ppm.
    """
    if len(samples) < 20:
        return samples
    bins = max(2, math.isqrt(len(samples)))
    first, last = samples[0][0], samples[-1][0]
    width = (last - first) / bins or 1
    best: dict[int, tuple[int, int]] = {}
    for mono, offset in samples:
        index = min(bins - 1, int((mono - first) / width))
        if index not in best or offset > best[index][1]:
            best[index] = (mono, offset)
    return [best[i] for i in sorted(best)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_ns(utc: datetime) -> int:
    delta = utc - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _from_epoch_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _round_ms(ns: int) -> int:
    return (ns + _NS_PER_MS // 2) // _NS_PER_MS
