"""The track of one segment: start/end positions and 1 Hz samples, bounded.

A manifest is canonical JSON without floats, so a position is
:class:`agent.evidence.manifest.Position`: UTC to the millisecond, latitude and longitude in
degrees × 10⁷ (~1 cm), altitude in mm; :meth:`TrackRecorder.end_segment` gives the segment's
:class:`~agent.evidence.manifest.GpsSummary`, the manifest's ``gps`` object.

The track keeps at most one sample per ``interval_s`` seconds of GPS time (1 s to start).
When a long segment would exceed ``max_samples``, every other sample is dropped and the
interval doubles, so the track stays evenly spread over the whole segment and its size is
bounded whatever the segment length; the exact end position is kept separately.

A segment may start in the past: a recording opens with its pre-event buffer, up to
``prerecord_s`` (plus one GOP) before the press. The recorder therefore remembers the fixes
that arrived while no segment was open (``history_s``, bounded in time and count) and
:meth:`TrackRecorder.start_segment` takes its start position from the newest fix at or before
the segment's start and replays those received since then into the new track. A fix already
recorded in an open segment's track is never replayed into the next one.

Locking: ``_lock`` guards all state; :meth:`TrackRecorder.add` may be called from the GPS
reader thread while the controller starts and ends segments.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from agent.evidence.manifest import GpsSummary, Position
from agent.evidence.utc import iso_utc
from hw.gps import Fix

__all__ = ["TrackRecorder", "fix_position"]


def fix_position(fix: Fix) -> Position:
    """The integer manifest position of a positioned, dated fix (UTC to the millisecond)."""
    if fix.utc is None or fix.lat is None or fix.lon is None:
        raise ValueError("a track position needs a fix with UTC and a position")
    alt = round(fix.alt_msl * 1000) if fix.alt_msl is not None else None
    return Position(iso_utc(fix.utc, 3), round(fix.lat * 1e7), round(fix.lon * 1e7), alt)


class TrackRecorder:
    """Collects fixes into per-segment tracks."""

    def __init__(self, *, max_samples: int = 3600, start_max_age_s: float = 5.0,
                 history_s: float = 150.0, history_max: int = 3000) -> None:
        if max_samples < 2:
            raise ValueError(f"max_samples must be at least 2, got {max_samples}")
        self._max = max_samples
        self._start_max_age_ns = int(start_max_age_s * 1e9)
        self._lock = threading.Lock()
        # Fixes of the last ``history_s`` (longest pre-roll 120 s + a GOP), with a flag
        # saying whether an open track already holds them; ``history_max`` bounds a flood.
        self._history_ns = int(history_s * 1e9)
        self._history: deque[tuple[Fix, bool]] = deque(maxlen=history_max)
        self._open = False
        self._start: Position | None = None
        self._end: Position | None = None
        self._rows: list[Position] = []
        self._slots: list[int] = []  # GPS second of each row, for the interval check
        self._row_ns: list[int] = []  # when each row's fix was received (monotonic)
        self._start_ns = 0  # where the open (or last ended) track's segment starts
        self._interval = 1
        self._fixes = 0

    def add(self, fix: Fix) -> None:
        """Offer a fix; only dated fixes with a position are recorded."""
        if fix.stale or not fix.has_position or fix.utc is None:
            return
        with self._lock:
            self._history.append((fix, self._open))
            while self._history and (fix.received_mono_ns - self._history[0][0].received_mono_ns
                                     > self._history_ns):
                self._history.popleft()
            if self._open:
                self._record(fix)

    def _record(self, fix: Fix) -> None:
        """Put one dated, positioned fix into the open track (``_lock`` held)."""
        assert fix.utc is not None
        row = fix_position(fix)
        self._fixes += 1
        self._end = row
        if self._start is None:
            self._start = row
        second = int(fix.utc.timestamp())
        if self._slots and second < self._slots[-1] + self._interval:
            return
        self._rows.append(row)
        self._slots.append(second)
        self._row_ns.append(fix.received_mono_ns)
        if len(self._rows) > self._max:
            self._decimate()

    def start_segment(self, now_mono_ns: int | None = None) -> None:
        """Begin a new track for a segment starting at ``now_mono_ns`` (default: now).

        The newest fix at or before the start, if at most ``start_max_age_s`` old, is the
        start position; fixes received since the start that no track holds yet (the
        pre-event buffer's span) are recorded first.
        """
        start_ns = time.monotonic_ns() if now_mono_ns is None else now_mono_ns
        with self._lock:
            self._open = True
            self._start_ns = start_ns
            self._rows, self._slots, self._row_ns, self._interval, self._fixes = [], [], [], 1, 0
            self._start = self._end = None
            before = [f for f, _ in self._history if f.received_mono_ns <= start_ns]
            if before and start_ns - before[-1].received_mono_ns <= self._start_max_age_ns:
                self._start = self._end = fix_position(before[-1])
            replay = [f for f, held in self._history
                      if f.received_mono_ns > start_ns and not held]
            self._history = deque(((f, held or f.received_mono_ns > start_ns)
                                   for f, held in self._history), maxlen=self._history.maxlen)
            for fix in replay:
                self._record(fix)

    def end_segment(self, end_mono_ns: int | None = None) -> GpsSummary:
        """Close the track and return the manifest's ``gps`` part (empty if no fix arrived).

        With ``end_mono_ns`` (where the segment ends), fixes received after it leave this
        track and are replayed into the next one: the controller closes a track when it
        handles the roll, which on a loaded device is later than the boundary itself, and a
        segment's track must not hold positions from after its end."""
        with self._lock:
            self._open = False
            if end_mono_ns is not None:
                self._cut(end_mono_ns)
            return GpsSummary(self._start, self._end, tuple(self._rows))

    def _cut(self, end_ns: int) -> None:
        """Drop what was received after ``end_ns`` from the closing track and leave it to the
        next one (``_lock`` held)."""
        late = [f for f, held in self._history if held and f.received_mono_ns > end_ns]
        if not late:
            return
        keep = sum(1 for ns in self._row_ns if ns <= end_ns)
        self._rows, self._slots, self._row_ns = (
            self._rows[:keep], self._slots[:keep], self._row_ns[:keep])
        self._history = deque(((f, held and f.received_mono_ns <= end_ns)
                               for f, held in self._history), maxlen=self._history.maxlen)
        mine = [f for f, held in self._history
                if held and self._start_ns < f.received_mono_ns <= end_ns]
        self._end = fix_position(mine[-1]) if mine else self._start
        self._fixes = max(0, self._fixes - len(late))

    @property
    def interval_s(self) -> int:
        """Seconds between the samples of the open (or last ended) track."""
        with self._lock:
            return self._interval

    @property
    def fixes(self) -> int:
        """Fixes recorded into the open (or last ended) track, sampled or not."""
        with self._lock:
            return self._fixes

    def _decimate(self) -> None:
        self._rows = self._rows[::2]
        self._slots = self._slots[::2]
        self._row_ns = self._row_ns[::2]
        self._interval *= 2
