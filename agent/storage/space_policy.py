"""When the evidence disk is getting full, and whether a recording can start.

A recording needs room for the segment being written plus one more (``reserve_segments``,
default 2): the open segment must be able to finish and seal, and the roll to the next one must
not fail mid-event. The reserve is sized from the measured bitrate (smoothed, because a scene
change can double the encoder's output for seconds) or, before anything was measured, from
the configured nominal bitrate, with ``headroom`` for container overhead and manifests.

Verdicts: ``ok``; ``warn`` when less than ``warn_s`` of recording is left above the reserve;
``full`` when free space is below the reserve (seal and stop; refuse to start) or the
filesystem is read-only. ``warn`` is left only ``hysteresis_s`` beyond its threshold.

Thread model: the :class:`BitrateMeter` is fed by the segment writer and read by the controller,
so it takes a lock; :class:`StoragePolicy` is owned by the controller thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from agent.power.battery_policy import Admission
from agent.storage.eviction import EvictionPlan, SealedSegment, plan_eviction
from hw.storage import StorageReading

__all__ = ["FULL", "OK", "WARN", "BitrateMeter", "StoragePolicy", "StorageVerdict"]

OK = "ok"
WARN = "warn"
FULL = "full"


class BitrateMeter:
    """Smoothed bytes per second of evidence written (EWMA with time constant ``tau_s``).

    Bytes are accumulated and turned into a rate sample once at least ``min_interval_s`` has
    passed, so one large keyframe does not read as a burst. Call :meth:`pause` when recording
    stops, so the idle gap is not averaged in as zero bitrate. ``_lock`` guards all state.
    """

    def __init__(self, nominal_bps: float, *, tau_s: float = 30.0,
                 min_interval_s: float = 1.0) -> None:
        if nominal_bps <= 0 or tau_s <= 0 or min_interval_s <= 0:
            raise ValueError("nominal_bps, tau_s and min_interval_s must be > 0")
        self._nominal = nominal_bps
        self._tau = tau_s
        self._min_interval = min_interval_s
        self._rate: float | None = None
        self._since: float | None = None
        self._pending = 0
        self._lock = threading.Lock()

    def add(self, nbytes: int, now: float) -> None:
        """Count ``nbytes`` written at monotonic time ``now`` (the first call only starts the clock)."""
        with self._lock:
            if self._since is None:
                # These bytes were produced before the clock started: they start it only.
                self._since = now
                return
            self._pending += nbytes
            dt = now - self._since
            if dt < self._min_interval:
                return
            sample = self._pending / dt
            if self._rate is None:
                self._rate = sample
            else:
                self._rate += (1.0 - math.exp(-dt / self._tau)) * (sample - self._rate)
            self._since, self._pending = now, 0

    def pause(self) -> None:
        """Recording stopped: forget the open interval, keep the learned rate."""
        with self._lock:
            self._since, self._pending = None, 0

    @property
    def measured(self) -> bool:
        """True once a rate was measured (else :attr:`rate` is the nominal bitrate)."""
        with self._lock:
            return self._rate is not None

    @property
    def rate(self) -> float:
        """Bytes per second to plan with."""
        with self._lock:
            return self._rate if self._rate is not None else self._nominal


@dataclass(frozen=True, slots=True)
class StorageVerdict:
    """The policy's answer for one storage reading."""

    level: str  # ok | warn | full
    reasons: tuple[str, ...]
    free_bytes: int
    reserve_bytes: int
    recording_s: int  # recording time left above the reserve
    bitrate_bps: float


class StoragePolicy:
    """Storage verdicts: reserve for the open segment plus one more, warn, full."""

    def __init__(
        self,
        warn_s: float = 3600,
        reserve_segments: int = 2,
        *,
        segment_s: float = 60.0,
        headroom: float = 1.1,
        hysteresis_s: float = 300,
    ) -> None:
        if warn_s <= 0 or reserve_segments < 1 or segment_s <= 0 or headroom < 1.0:
            raise ValueError("need warn_s > 0, reserve_segments >= 1, segment_s > 0, headroom >= 1")
        self.warn_s = warn_s
        self.reserve_segments = reserve_segments
        self.segment_s = segment_s
        self.headroom = headroom
        self.hysteresis_s = hysteresis_s
        self._verdict: StorageVerdict | None = None

    def segment_bytes(self, bitrate_bps: float) -> int:
        """Expected size of one segment, with headroom."""
        return math.ceil(round(self.segment_s * bitrate_bps * self.headroom, 3))  # no float dust

    def reserve_bytes(self, bitrate_bps: float) -> int:
        """Space that must stay free while recording."""
        return self.reserve_segments * self.segment_bytes(bitrate_bps)

    @property
    def verdict(self) -> StorageVerdict | None:
        """The latest verdict (None before the first reading)."""
        return self._verdict

    def evaluate(self, reading: StorageReading, bitrate_bps: float) -> StorageVerdict:
        """Judge one reading at the given (smoothed) bitrate."""
        if bitrate_bps <= 0:
            raise ValueError("bitrate must be > 0")
        reserve = self.reserve_bytes(bitrate_bps)
        usable = max(0, reading.free_bytes - reserve)
        recording_s = int(usable / bitrate_bps)
        was_warn = self._verdict is not None and self._verdict.level != OK
        reasons: tuple[str, ...]
        if reading.read_only:
            level, reasons = FULL, ("read_only",)
        elif reading.free_bytes < reserve:
            level, reasons = FULL, ("below_reserve",)
        elif recording_s <= self.warn_s or (was_warn and recording_s <= self.warn_s
                                            + self.hysteresis_s):
            level, reasons = WARN, ("space_low",)
        else:
            level, reasons = OK, ()
        self._verdict = StorageVerdict(level, reasons, reading.free_bytes, reserve, recording_s,
                                       bitrate_bps)
        return self._verdict

    def set_warn_s(self, seconds: float) -> None:
        """A new warning threshold (recording time left), effective from the next reading;
        set live by a remote ``storage.warn_min`` change (range-checked by the allow-list)."""
        self.warn_s = seconds

    def can_start(self) -> Admission:
        """Refuse to start a recording the disk cannot hold (or before any reading)."""
        if self._verdict is None:
            return Admission(False, "storage not yet measured")
        if self._verdict.level == FULL:
            why = ("the data filesystem is read-only" if "read_only" in self._verdict.reasons
                   else f"only {self._verdict.free_bytes} bytes free, "
                        f"{self._verdict.reserve_bytes} needed for "
                        f"{self.reserve_segments} segments")
            return Admission(False, f"storage full: {why}")
        return Admission(True)

    def plan_eviction(
        self,
        segments: Sequence[SealedSegment],
        reading: StorageReading,
        bitrate_bps: float,
        *,
        now: float,
        min_age_s: float = 0.0,
    ) -> EvictionPlan:
        """Acknowledged segments to evict so the reserve plus one segment's slack is free.

        The slack keeps the next roll from evicting again at once.
        """
        target = self.reserve_bytes(bitrate_bps) + self.segment_bytes(bitrate_bps)
        return plan_eviction(segments, free_bytes=reading.free_bytes, target_free_bytes=target,
                             now=now, min_age_s=min_age_s)
