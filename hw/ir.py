"""Night optics: the IR illuminator and the IR-cut filter, as one switch.

A day/night camera module has a mechanical IR-cut filter in front of the sensor (in by day,
for true colours; out at night, so the sensor sees infrared) and an array of 850/940 nm LEDs.
Both must change together: IR light with the filter in is wasted power; the filter out by day
turns colours magenta. So the seam is one call, :meth:`NightOptics.set_night`.

:class:`GpioNightOptics` drives both on plain GPIO outputs (through a transistor or the
module's control line; high = night, i.e. LEDs on and filter *out*). On the simulator the
same class runs on gpiozero's ``MockFactory``, whose pins keep their level history -- the
simulator stands beside the driver, as for the button and LEDs. An unfitted part (pin 0) is
skipped, so a unit with only a filter, or only LEDs, still works.

Not thread-safe: called from the controller thread only.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hw.controls import Controls

__all__ = ["GpioNightOptics", "NightOptics"]


@runtime_checkable
class NightOptics(Protocol):
    """IR illuminator + IR-cut filter, switched together."""

    @property
    def night(self) -> bool:
        """True while the LEDs are on and the filter is out."""
        ...

    def set_night(self, on: bool) -> None:
        """Switch to night (LEDs on, filter out) or day; idempotent."""
        ...


class GpioNightOptics:
    """Night optics on two GPIO outputs of the unit's pin factory (0 = not fitted)."""

    def __init__(self, controls: Controls, *, ir_led_pin: int, ircut_pin: int) -> None:
        self._outs = [controls.output(p) for p in (ir_led_pin, ircut_pin) if p]
        self._night = False
        for out in self._outs:
            out.off()

    @property
    def night(self) -> bool:
        """True while the LEDs are on and the filter is out."""
        return self._night

    def set_night(self, on: bool) -> None:
        """Drive both outputs high (night) or low (day)."""
        for out in self._outs:
            out.value = on
        self._night = on
