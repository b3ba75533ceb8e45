"""How long the battery will last: smoothed draw → remaining runtime and recording time.

The draw is taken, in order of preference, from the gauge's ``power_w``, from
``current_a × voltage_v``, or — on a bare state-of-charge gauge such as the MAX17040 — from the
slope of ``capacity_pct`` over time. Instantaneous power is noisy (encoder bursts, Wi-Fi), so
it is smoothed with a time-constant EWMA, ``α = 1 − exp(−Δt/τ)``, which treats irregular
reading intervals correctly. The draw is tracked per load state (standby, recording), because
the question that matters in standby is "how long could I record?", not "how long could I
sit here?". Before the recorder has ever recorded, the recording draw is the configured
nominal one.

Thread model: a :class:`PowerProjector` is owned by the controller thread; no locking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hw.power import BatteryReading

__all__ = ["PowerProjection", "PowerProjector"]

_CHARGING = frozenset({"Charging", "Full"})


@dataclass(frozen=True, slots=True)
class PowerProjection:
    """The projector's view after a reading; None where it cannot tell yet."""

    draw_w: float | None  # smoothed draw at the current load
    runtime_s: float | None  # remaining at the current load
    recording_s: float | None  # remaining if (or while) recording
    energy_wh: float | None  # energy left, as estimated
    method: str  # power | current | capacity_slope | charging | none
    charging: bool = False


class _Ewma:
    """An exponentially weighted mean over irregularly spaced samples."""

    __slots__ = ("_t", "tau_s", "value")

    def __init__(self, tau_s: float) -> None:
        self.tau_s = tau_s
        self.value: float | None = None
        self._t: float | None = None

    def add(self, sample: float, now: float) -> float:
        if self.value is None or self._t is None:
            self.value = sample
        else:
            alpha = 1.0 - math.exp(-max(0.0, now - self._t) / self.tau_s)
            self.value += alpha * (sample - self.value)
        self._t = now
        return self.value


@dataclass(slots=True)
class _SlopeRun:
    """Capacity samples taken in one load state without charging in between."""

    t0: float
    pct0: float
    rate_pct_s: float | None = None


class PowerProjector:
    """Turns successive :class:`BatteryReading` into a :class:`PowerProjection`."""

    def __init__(
        self,
        *,
        tau_s: float = 60.0,
        nominal_recording_w: float = 4.0,
        pack_wh: float | None = None,
    ) -> None:
        """``pack_wh`` is the pack's energy when full, for gauges that report only a percent."""
        if tau_s <= 0 or nominal_recording_w <= 0:
            raise ValueError("tau_s and nominal_recording_w must be > 0")
        self._tau = tau_s
        self._nominal_recording_w = nominal_recording_w
        self._pack_wh = pack_wh
        self._draw: dict[str, _Ewma] = {}
        self._slope: dict[str, _SlopeRun] = {}
        self._load: str | None = None

    def recording_draw_w(self) -> float:
        """The smoothed recording draw if measured, else the nominal one."""
        seen = self._draw.get("recording")
        return seen.value if seen is not None and seen.value else self._nominal_recording_w

    def _energy(self, reading: BatteryReading) -> float | None:
        if reading.energy_wh is not None:
            return reading.energy_wh
        full = reading.energy_full_wh or self._pack_wh
        if reading.capacity_pct is not None and full:
            return full * reading.capacity_pct / 100
        return None

    def update(self, reading: BatteryReading, *, load: str, now: float) -> PowerProjection:
        """Fold in one reading taken at monotonic time ``now`` while the recorder was in ``load``."""
        energy = self._energy(reading)
        charging = reading.status in _CHARGING or (
            reading.current_a is not None and reading.current_a < 0)
        if load != self._load:
            self._slope.pop(load, None)  # a slope measured at another load says nothing here
            self._load = load
        if charging:
            self._slope.clear()
            return PowerProjection(None, None, None, energy, "charging", charging=True)
        sample, method = self._sample(reading)
        if sample is not None:
            draw = self._draw.setdefault(load, _Ewma(self._tau)).add(sample, now)
            runtime = energy / draw * 3600 if energy is not None and draw > 0 else None
            recording = (energy / self.recording_draw_w() * 3600 if energy is not None
                         else None)
            return PowerProjection(draw, runtime, recording, energy, method)
        return self._from_slope(reading, load, now, energy)

    @staticmethod
    def _sample(reading: BatteryReading) -> tuple[float | None, str]:
        if reading.power_w is not None:
            return reading.power_w, "power"
        if reading.current_a is not None and reading.voltage_v is not None:
            return reading.current_a * reading.voltage_v, "current"
        return None, "none"

    def _from_slope(self, reading: BatteryReading, load: str, now: float,
                    energy: float | None) -> PowerProjection:
        pct = reading.capacity_pct
        if pct is None:
            return PowerProjection(None, None, None, energy, "none")
        run = self._slope.get(load)
        if run is None or pct > run.pct0:
            self._slope[load] = _SlopeRun(now, pct)
            return PowerProjection(None, None, None, energy, "none")
        # Gauges report whole percents: wait for a real drop before trusting a slope.
        if run.pct0 - pct >= 1.0 and now > run.t0:
            run.rate_pct_s = (run.pct0 - pct) / (now - run.t0)
        if run.rate_pct_s is None:
            return PowerProjection(None, None, None, energy, "none")
        runtime = pct / run.rate_pct_s
        draw = energy / runtime * 3600 if energy is not None and runtime > 0 else None
        recording_run = self._slope.get("recording")
        recording: float | None = None
        if recording_run is not None and recording_run.rate_pct_s:
            recording = pct / recording_run.rate_pct_s
        elif draw:
            recording = runtime * draw / self._nominal_recording_w
        return PowerProjection(draw, runtime, recording, energy, "capacity_slope")
