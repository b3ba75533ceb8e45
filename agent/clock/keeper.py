"""Time and place for evidence: monotonic → UTC, the clock's source, the GPS track.

Media timestamps are ``CLOCK_MONOTONIC`` (never steps); manifests need UTC a court can trust.
The mapping is taken at the moment it is needed from a (monotonic, realtime) pair read
back-to-back, so a later clock step cannot rewrite an earlier segment's times; the step itself
is detected (the realtime−monotonic offset jumps) and logged as an event.

Which source disciplines the clock and how wrong it may be is decided by
:class:`agent.clock.discipline.ClockDiscipline`; the per-segment GPS track by
:class:`agent.location.track.TrackRecorder`.

Locking: ``on_fix`` runs on the GPS reader's thread; ``_lock`` guards the discipline and the
track. Everything else is called from the controller thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from agent.clock.discipline import ClockDiscipline
from agent.config import TimeConfig
from agent.evidence.manifest import ClockInfo, GpsSummary
from agent.evidence.utc import iso_utc
from agent.location.track import TrackRecorder
from hw.gps import Fix

__all__ = ["TimeKeeper"]


class TimeKeeper:
    """Owns the clock discipline and the GPS track for the agent."""

    def __init__(self, cfg: TimeConfig, *, on_step: Callable[[dict[str, Any]], None]) -> None:
        self._lock = threading.Lock()
        self.discipline = ClockDiscipline(
            step_threshold_ms=cfg.step_threshold_ms, trust_max_error_ms=cfg.trusted_error_ms,
            on_clock_step=lambda step: on_step(step.as_event()))
        self.track = TrackRecorder()
        self.last_fix: Fix | None = None
        self._track_start: int | None = None
        self._finished: dict[int, GpsSummary] = {}

    def on_fix(self, fix: Fix) -> None:
        """GPS sink (reader thread)."""
        with self._lock:
            self.last_fix = fix
        self.discipline.observe_fix(fix)
        self.track.add(fix)

    def utc_for_mono_us(self, mono_us: int) -> str:
        """UTC of a monotonic instant, using the realtime clock's current offset."""
        self.discipline.check_step()
        return iso_utc(self.discipline.utc_for_mono(mono_us * 1000))

    def clock_info(self) -> ClockInfo:
        """Source and estimated error for the manifest."""
        return self.discipline.status_for_recording().clock_info()

    def open_track(self, start_mono_us: int) -> None:
        """A segment opened: start its track (finishing the previous segment's, if open)."""
        if self._track_start is not None:  # rolls are gapless: it ends where this one starts
            self._finished[self._track_start] = self.track.end_segment(start_mono_us * 1000)
        self._track_start = start_mono_us
        self.track.start_segment(start_mono_us * 1000)

    def gps_summary(self, start_mono_us: int, end_mono_us: int) -> GpsSummary:
        """The track of the segment that started at ``start_mono_us`` (controller thread)."""
        done = self._finished.pop(start_mono_us, None)
        if done is not None:
            return done
        if self._track_start == start_mono_us:
            self._track_start = None
            return self.track.end_segment(end_mono_us * 1000)
        return GpsSummary()

    def status(self, now_mono_ns: int | None = None) -> dict[str, Any]:
        """``gps_*`` and ``clock_*`` fields for status and telemetry."""
        now = now_mono_ns if now_mono_ns is not None else time.monotonic_ns()
        with self._lock:
            fix = self.last_fix
        st = self.discipline.status()
        out: dict[str, Any] = {"clock_source": str(st.source), "clock_error_ms": st.error_ms,
                               "clock_trusted": st.trusted}
        drift = self.discipline.drift()
        if drift is not None:
            out["clock_drift_ppm"] = round(drift.ppm, 3)
            out["clock_drift_s_per_day"] = round(drift.s_per_day, 3)
        if fix is None:
            out["gps_mode"] = 0
            return out
        out["gps_mode"] = fix.mode
        out["gps_age_s"] = max(0, (now - fix.received_mono_ns) // 1_000_000_000)
        if fix.has_position:
            assert fix.lat is not None and fix.lon is not None
            out["gps_lat_e7"] = round(fix.lat * 1e7)
            out["gps_lon_e7"] = round(fix.lon * 1e7)
        if fix.satellites is not None:
            out["gps_satellites"] = fix.satellites
        return out
