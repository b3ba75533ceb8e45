"""Periodic watches that run on the controller's tick: battery, storage, camera progress.

Each watch reads its device only when due (``poll_s``), folds the reading into its policy and
returns the verdict; the agent decides what to do with a change (warn, seal and stop, fault).
Device errors are contained: a battery gauge that stops answering is a warning in telemetry,
not a crash of the recorder.

Not thread-safe: owned by the controller thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agent.power.battery_policy import Admission, BatteryPolicy, BatteryVerdict
from agent.power.battery_telemetry import power_telemetry
from agent.power.projection import PowerProjection, PowerProjector
from agent.storage.eviction import EvictionPlan, SealedSegment
from agent.storage.space_policy import BitrateMeter, StoragePolicy, StorageVerdict
from agent.storage.space_telemetry import storage_telemetry
from hw.errors import HardwareError
from hw.power import BatteryReading, PowerMonitor
from hw.storage import Storage, StorageReading

__all__ = ["FrameWatchdog", "PowerWatch", "StorageWatch"]

log = logging.getLogger(__name__)


class PowerWatch:
    """Battery readings → projection → policy verdict."""

    def __init__(self, monitor: PowerMonitor, policy: BatteryPolicy, projector: PowerProjector,
                 *, poll_s: float) -> None:
        self.monitor = monitor
        self.policy = policy
        self.projector = projector
        self.poll_s = poll_s
        self._next = 0.0
        self.reading: BatteryReading | None = None
        self.projection: PowerProjection | None = None
        self.error: str | None = None

    def poll(self, now: float, load: str) -> BatteryVerdict | None:
        """Read if due; returns the verdict of a new reading, else None."""
        if now < self._next:
            return None
        self._next = now + self.poll_s
        try:
            self.monitor.set_load(load)
            reading = self.monitor.read()
        except (HardwareError, OSError) as exc:
            if self.error is None:
                log.warning("battery reading failed: %s", exc)
            self.error = str(exc)
            return None
        self.error = None
        self.reading = reading
        self.projection = self.projector.update(reading, load=load, now=now)
        return self.policy.evaluate(reading, self.projection, now)

    def can_start(self) -> Admission:
        """Whether the battery allows a recording to start (refused while critical)."""
        return self.policy.can_start()

    def set_warn_s(self, seconds: float) -> None:
        """Warn when less than ``seconds`` of recording are left (live configuration)."""
        self.policy.set_warn_s(seconds)

    def telemetry(self) -> dict[str, Any]:
        """``battery_*`` fields for status and MQTT."""
        if self.reading is None:
            return {"battery_error": self.error} if self.error else {}
        out: dict[str, Any] = power_telemetry(self.reading, self.projection, self.policy.verdict)
        if self.error:
            out["battery_error"] = self.error
        return out


class StorageWatch:
    """Free space and measured bitrate → storage verdict."""

    def __init__(self, storage: Storage, policy: StoragePolicy, meter: BitrateMeter,
                 *, poll_s: float) -> None:
        self.storage = storage
        self.policy = policy
        self.meter = meter
        self.poll_s = poll_s
        self._next = 0.0
        self.reading: StorageReading | None = None
        self.fault: str | None = None

    def poll(self, now: float, *, force: bool = False) -> StorageVerdict | None:
        """Read if due (or forced); returns the verdict of a new reading."""
        if now < self._next and not force:
            return None
        self._next = now + self.poll_s
        try:
            self.reading = self.storage.read()
        except OSError as exc:
            log.warning("storage reading failed: %s", exc)
            return None
        return self.policy.evaluate(self.reading, self.meter.rate)

    def can_start(self, now: float) -> Admission:
        """Whether the disk can hold a recording started now: measured afresh (a start must
        not be admitted on a reading up to ``poll_s`` old)."""
        self.poll(now, force=True)
        return self.policy.can_start()

    def set_warn_s(self, seconds: float) -> None:
        """Warn when less than ``seconds`` of recording are left (live configuration)."""
        self.policy.set_warn_s(seconds)

    def clear_fault(self) -> None:
        """The disk takes writes again: no fault in telemetry any more."""
        self.fault = None

    def plan_eviction(self, segments: Sequence[SealedSegment], *, now_wall: float,
                      min_age_s: float) -> EvictionPlan | None:
        """What to evict to get back above the reserve at the measured bitrate, or None
        before the first reading (nothing is evicted on a guess)."""
        if self.reading is None:
            return None
        return self.policy.plan_eviction(segments, self.reading, self.meter.rate, now=now_wall,
                                         min_age_s=min_age_s)

    def telemetry(self) -> dict[str, Any]:
        """``storage_*`` fields for status and MQTT."""
        if self.reading is None:
            return {}
        return dict(storage_telemetry(self.reading, self.policy.verdict,
                                      bitrate_measured=self.meter.measured, fault=self.fault))


class FrameWatchdog:
    """Detects a camera that stopped delivering frames (picamera2 can stall silently)."""

    def __init__(self, *, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._last_count = -1
        self._last_change = 0.0
        self.stalls = 0

    def check(self, now: float, frames: int) -> bool:
        """True once when frames have not advanced for ``stall_after_s``."""
        if frames != self._last_count:
            self._last_count = frames
            self._last_change = now
            return False
        if now - self._last_change >= self.stall_after_s:
            self._last_change = now  # report once per window, then again if still stalled
            self.stalls += 1
            return True
        return False
