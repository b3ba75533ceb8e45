"""Simulated scene light: a day/night cycle (time-accelerable) and a torch.

The simulated camera reports this as its per-frame ``Lux`` estimate, the way libcamera's
algorithms report one on a Pi, so night vision can be exercised off the device: a bench runs a
whole dusk-to-dawn in a minute (``day_s``), and ``bodycam ctl sim light LUX`` holds the scene at
a fixed level (a torch in the face, a dark stairwell) until ``sim light auto``.

The daylight curve is smooth and monotonic through dusk and dawn: ``NIGHT_LUX`` (street light)
from 18:00 to 06:00, rising as the square of the sun's elevation proxy to ``NOON_LUX``. A
deterministic per-reading flicker of up to ``flicker`` (relative) stands in for the estimate's
frame-to-frame noise, so hysteresis is tested against an unsteady reading, not a clean ramp.

Locking: ``_lock`` guards the settings; :meth:`lux` may be called from any thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["NIGHT_LUX", "NOON_LUX", "SimLight", "daylight_lux"]

NIGHT_LUX = 1.0
NOON_LUX = 20_000.0


def daylight_lux(hour: float) -> float:
    """Scene illuminance at ``hour`` (0-24) of a clear day, street light at night."""
    h = hour % 24.0
    sun = math.sin(math.pi * (h - 6.0) / 12.0) if 6.0 < h < 18.0 else 0.0
    return NIGHT_LUX + (NOON_LUX - NIGHT_LUX) * sun * sun


class SimLight:
    """A scene whose light follows a (possibly accelerated) day, or is held by a stimulus."""

    def __init__(self, *, day_s: float = 86_400.0, hour: float = 12.0, flicker: float = 0.15,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self._mono = mono
        self._lock = threading.Lock()
        self._flicker = flicker
        self._held: float | None = None
        self._n = 0
        self._set(day_s, hour)

    def _set(self, day_s: float, hour: float) -> None:
        if not (math.isfinite(day_s) and day_s > 0):
            raise ValueError("a simulated day must last a finite time of more than 0 s")
        if not math.isfinite(hour):
            raise ValueError("the hour of day must be a finite number")
        self._day_s = day_s
        self._t0 = self._mono()
        self._hour0 = hour % 24.0

    # --- stimuli ----------------------------------------------------------------------------
    def hold(self, lux: float) -> None:
        """Hold the scene at ``lux`` (a torch, a dark room) until :meth:`release`."""
        if not 0 <= lux <= 200_000 or math.isnan(lux):
            raise ValueError(f"{lux} lux is not a scene light level (0 .. 200000)")
        with self._lock:
            self._held = lux

    def release(self) -> None:
        """Return to the day/night cycle."""
        with self._lock:
            self._held = None

    def cycle(self, *, day_s: float | None = None, hour: float | None = None) -> None:
        """Change the length of a simulated day (real seconds) and/or the hour it is now."""
        with self._lock:
            self._set(day_s if day_s is not None else self._day_s,
                      hour if hour is not None else self.hour())

    # --- readings ---------------------------------------------------------------------------
    def hour(self) -> float:
        """The simulated hour of day now."""
        return (self._hour0 + (self._mono() - self._t0) / self._day_s * 24.0) % 24.0

    def true_lux(self) -> float:
        """The scene's light without estimation noise."""
        with self._lock:
            if self._held is not None:
                return self._held
            return daylight_lux(self.hour())

    def lux(self) -> float:
        """One reading as a camera would estimate it (with flicker)."""
        base = self.true_lux()
        with self._lock:
            self._n += 1
            n = self._n
        # a fixed, aperiodic-looking sequence in [-1, 1): reproducible runs, no RNG state
        wobble = math.sin(n * 12.9898) * 43758.5453
        return base * (1.0 + self._flicker * (2.0 * (wobble - math.floor(wobble)) - 1.0))
