"""When to warn about the battery, when to stop recording, when to refuse to start.

Thresholds are in seconds of *recording* left (issue: warn at 15 min, critical at 3 min),
because that is what an officer can act on. A critical verdict tells the controller to seal
the open segment, log ``low-battery shutdown`` and stop while energy remains to do it cleanly.

Rules, in order:

1. Undervoltage (the supply sagging under the Pi) is at least a warning at once, and critical
   once it has lasted ``undervoltage_grace_s`` — brief dips on a camera burst are normal, a
   sustained one precedes a brown-out that would tear the file being written.
2. Charging (or external power) clears runtime warnings.
3. Otherwise the projected recording time decides; with no projection yet (a fresh boot on a
   bare percent gauge) the charge percent does, against ``warn_pct``/``critical_pct``.
4. Hysteresis: a level is left only once the figure is ``hysteresis_s`` (or ``hysteresis_pct``)
   beyond its threshold, so a voltage that recovers when the load drops does not flap the
   verdict, and a recording that was stopped for the battery is not restarted at once.

Thread model: owned by the controller thread; no locking.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.power.projection import PowerProjection
from hw.power import BatteryReading

__all__ = ["CRITICAL", "OK", "WARN", "Admission", "BatteryPolicy", "BatteryVerdict"]

OK = "ok"
WARN = "warn"
CRITICAL = "critical"
_RANK = {OK: 0, WARN: 1, CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether something may start, and why not; truthy when allowed."""

    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class BatteryVerdict:
    """The policy's answer for one reading."""

    level: str  # ok | warn | critical
    reasons: tuple[str, ...] = ()
    recording_s: float | None = None

    @property
    def critical(self) -> bool:
        """Seal, log and stop now."""
        return self.level == CRITICAL


class BatteryPolicy:
    """Battery verdicts with hysteresis and an undervoltage grace period."""

    def __init__(
        self,
        warn_s: float = 900,
        critical_s: float = 180,
        undervoltage_grace_s: float = 10,
        *,
        hysteresis_s: float = 60,
        warn_pct: float = 15.0,
        critical_pct: float = 5.0,
        hysteresis_pct: float = 2.0,
    ) -> None:
        if not 0 <= critical_s < warn_s or not 0 <= critical_pct < warn_pct:
            raise ValueError("need 0 <= critical < warn for both seconds and percent")
        if undervoltage_grace_s < 0 or hysteresis_s < 0 or hysteresis_pct < 0:
            raise ValueError("grace and hysteresis cannot be negative")
        self.warn_s = warn_s
        self.critical_s = critical_s
        self.undervoltage_grace_s = undervoltage_grace_s
        self.hysteresis_s = hysteresis_s
        self.warn_pct = warn_pct
        self.critical_pct = critical_pct
        self.hysteresis_pct = hysteresis_pct
        self._level = OK
        self._undervoltage_since: float | None = None
        self._verdict = BatteryVerdict(OK)

    @property
    def verdict(self) -> BatteryVerdict:
        """The latest verdict (ok before the first reading)."""
        return self._verdict

    def _threshold_level(self, value: float, warn: float, critical: float, margin: float) -> str:
        """Level for ``value`` (lower is worse), leaving the current level only past ``margin``."""
        if value <= critical or (self._level == CRITICAL and value <= critical + margin):
            return CRITICAL
        if value <= warn or (self._level != OK and value <= warn + margin):
            return WARN
        return OK

    def _supply_level(self, reading: BatteryReading, now: float) -> tuple[str, tuple[str, ...]]:
        if not reading.undervoltage:
            self._undervoltage_since = None
            return OK, ()
        if self._undervoltage_since is None:
            self._undervoltage_since = now
        if now - self._undervoltage_since >= self.undervoltage_grace_s:
            return CRITICAL, ("undervoltage_persistent",)
        return WARN, ("undervoltage",)

    def _energy_level(self, reading: BatteryReading,
                      projection: PowerProjection) -> tuple[str, tuple[str, ...]]:
        if projection.charging or reading.status in ("Charging", "Full") or reading.external_power:
            return OK, ()
        if projection.recording_s is not None:
            level = self._threshold_level(projection.recording_s, self.warn_s, self.critical_s,
                                          self.hysteresis_s)
            return level, {OK: (), WARN: ("runtime_low",), CRITICAL: ("runtime_critical",)}[level]
        if reading.capacity_pct is not None:
            level = self._threshold_level(reading.capacity_pct, self.warn_pct, self.critical_pct,
                                          self.hysteresis_pct)
            return level, {OK: (), WARN: ("capacity_low",), CRITICAL: ("capacity_critical",)}[level]
        return OK, ()

    def evaluate(self, reading: BatteryReading, projection: PowerProjection,
                 now: float) -> BatteryVerdict:
        """Fold in one reading (``now``: monotonic seconds) and return the verdict."""
        supply, supply_reasons = self._supply_level(reading, now)
        energy, energy_reasons = self._energy_level(reading, projection)
        level = max(supply, energy, key=_RANK.__getitem__)
        self._level = energy  # hysteresis tracks the energy figure; the supply has its own timer
        self._verdict = BatteryVerdict(level, supply_reasons + energy_reasons,
                                       projection.recording_s)
        return self._verdict

    def set_warn_s(self, seconds: float) -> None:
        """A new warning threshold (recording time left), effective from the next reading;
        set live by a remote ``power.warn_min`` change (range-checked by the allow-list)."""
        self.warn_s = seconds

    def can_start(self) -> Admission:
        """Refuse to start a recording while the battery is critical."""
        if self._verdict.level == CRITICAL:
            return Admission(False, "battery critical: " + ", ".join(self._verdict.reasons))
        return Admission(True)
