"""A simulated battery: a stateful energy model with stimulus verbs and a history.

The recorder tells the battery what it is doing (:meth:`SimBattery.set_load` with
``"standby"``, ``"recording"`` or ``"off"``); each reading integrates the draw of the current
load over the elapsed time, ``energy -= draw × Δt × time_scale``, and derives the voltage from
the Li-ion discharge curve minus the drop across the cell's internal resistance. ``plug()``
connects a charger; ``die_at(pct)`` makes a worn pack whose capacity collapses at a given
level (the classic "phone dies at 20 %").

Times: the model's clock is injectable (tests pass a fake clock and need no sleeps);
``time_scale`` fast-forwards the battery for demos. The reported power and current are the true
draw, so projections made from them are in *battery* seconds, which is what the policy
thresholds mean.

Locking: every public method takes ``_lock``; stimuli may come from a test or control thread
while the controller thread reads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hw.power import BatteryReading
from hw.power_ina219 import LIION_OCV, DischargeCurve

__all__ = ["SimBattery", "SimBatteryEvent"]

_DEFAULT_DRAW = {"standby": 2.5, "recording": 4.0, "off": 0.0}


@dataclass(frozen=True, slots=True)
class SimBatteryEvent:
    """One entry of the simulator's history: a stimulus, a load change, or death."""

    at_s: float  # battery time since construction, seconds
    what: str  # set_capacity | plug | unplug | set_draw | undervoltage | die_at | load | died
    detail: str = ""
    percent: float = 0.0


class SimBattery:
    """A battery pack of ``capacity_wh`` that drains by load state and charges when plugged."""

    def __init__(
        self,
        capacity_wh: float = 18.5,
        *,
        percent: float = 100.0,
        draw_w: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
        charge_w: float = 10.0,
        cells: int = 1,
        internal_ohms: float = 0.05,
        curve: DischargeCurve = LIION_OCV,
        history_len: int = 10_000,
    ) -> None:
        if capacity_wh <= 0 or time_scale <= 0 or not 0 <= percent <= 100:
            raise ValueError("capacity_wh and time_scale must be > 0, percent within 0..100")
        self._capacity_wh = capacity_wh
        self._energy_wh = capacity_wh * percent / 100
        self._draw = dict(_DEFAULT_DRAW if draw_w is None else draw_w)
        self._clock = clock
        self._scale = time_scale
        self._charge_w = charge_w
        self._cells = cells
        self._r = internal_ohms
        self._curve = curve
        self._load = "standby"
        self._plugged = False
        self._undervoltage = False
        self._die_at: float | None = None
        self._dead = False
        self._t0 = clock()
        self._last = self._t0
        self._battery_s = 0.0
        self._lock = threading.Lock()
        self.history: deque[SimBatteryEvent] = deque(maxlen=history_len)

    # --- internals (call with _lock held) -------------------------------------------------
    def _percent(self) -> float:
        return 100.0 * self._energy_wh / self._capacity_wh

    def _note(self, what: str, detail: str = "") -> None:
        self.history.append(SimBatteryEvent(self._battery_s, what, detail, self._percent()))

    def _advance(self) -> None:
        now = self._clock()
        dt = max(0.0, now - self._last) * self._scale
        self._last = now
        self._battery_s += dt
        if self._plugged:
            self._energy_wh = min(self._capacity_wh, self._energy_wh + self._charge_w * dt / 3600)
            return
        if self._dead:
            return
        self._energy_wh = max(0.0, self._energy_wh - self._draw[self._load] * dt / 3600)
        if self._die_at is not None and self._percent() <= self._die_at:
            self._energy_wh = 0.0
        if self._energy_wh <= 0.0:
            self._dead = True
            self._note("died")

    # --- stimulus verbs -------------------------------------------------------------------
    def set_capacity(self, pct: float) -> None:
        """Set the state of charge (0–100) now."""
        if not 0 <= pct <= 100:
            raise ValueError(f"capacity {pct} outside 0..100")
        with self._lock:
            self._advance()
            self._energy_wh = self._capacity_wh * pct / 100
            self._dead = self._energy_wh <= 0.0
            self._note("set_capacity", f"{pct:g}")

    def plug(self) -> None:
        """Connect the charger."""
        with self._lock:
            self._advance()
            self._plugged = True
            self._dead = False
            self._note("plug")

    def unplug(self) -> None:
        """Disconnect the charger."""
        with self._lock:
            self._advance()
            self._plugged = False
            self._note("unplug")

    def set_draw(self, state: str, watts: float) -> None:
        """Change the draw of a load state (W)."""
        if watts < 0:
            raise ValueError("draw cannot be negative")
        with self._lock:
            self._advance()
            self._draw[state] = watts
            self._note("set_draw", f"{state}={watts:g}")

    def undervoltage(self, on: bool = True) -> None:
        """Raise or clear the supply's undervoltage flag."""
        with self._lock:
            self._advance()
            self._undervoltage = on
            self._note("undervoltage", str(on))

    def die_at(self, pct: float | None) -> None:
        """Make the capacity collapse to zero when the charge falls to ``pct`` (None: healthy)."""
        with self._lock:
            self._advance()
            self._die_at = pct
            self._note("die_at", "" if pct is None else f"{pct:g}")

    # --- PowerMonitor ---------------------------------------------------------------------
    def set_load(self, state: str) -> None:
        """The recorder's state: ``standby``, ``recording`` or ``off`` (or any state given a draw)."""
        with self._lock:
            if state not in self._draw:
                raise ValueError(f"unknown load state {state!r}; known: {sorted(self._draw)}")
            self._advance()
            if state != self._load:
                self._load = state
                self._note("load", state)

    @property
    def load(self) -> str:
        """The current load state."""
        with self._lock:
            return self._load

    @property
    def battery_seconds(self) -> float:
        """Battery time elapsed since construction (wall time × time_scale)."""
        with self._lock:
            self._advance()
            return self._battery_s

    def read(self) -> BatteryReading:
        """Advance the model to now and report it."""
        with self._lock:
            self._advance()
            pct = self._percent()
            ocv = self._curve.volts(pct) * self._cells
            if self._plugged:
                status = "Full" if pct >= 100.0 else "Charging"
                power = 0.0 if status == "Full" else -self._charge_w
            else:
                status = "Discharging"
                power = 0.0 if self._dead else self._draw[self._load]
            current = power / ocv if ocv else 0.0
            volts = max(0.0, ocv - current * self._r * self._cells)
            return BatteryReading(
                status=status,
                capacity_pct=round(pct, 2),
                voltage_v=round(volts, 3),
                current_a=round(current, 4),
                power_w=power,
                energy_wh=round(self._energy_wh, 4),
                energy_full_wh=self._capacity_wh,
                temperature_c=25.0,
                undervoltage=self._undervoltage or self._dead,
                source="sim",
                external_power=self._plugged,
            )
