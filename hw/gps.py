"""GPS seam: fixes with UTC time from a GNSS receiver.

Contract (checked by ``tests/contract/test_gps_contract.py``):

* a ``Fix`` is only ever built from sentences whose NMEA checksum verified;
* ``mode`` follows gpsd: 1 = no fix, 2 = 2D, 3 = 3D; fields unknown to the receiver are None;
* ``received_mono_ns`` is ``time.monotonic_ns()`` when the completing sentence arrived;
  ``epoch_mono_ns`` (optional) when the epoch's first one did, which lets the clock logic
  relate GPS UTC to the local monotonic clock with the least latency;
* when the source falls silent for longer than its ``stale_after_s``, the receiver delivers
  one marker ``Fix(mode=1, utc=None, stale=True)``; consumers may also ask
  ``hw.gps_nmea.is_stale(last_fix, now_ns, stale_after_s)``;
* the receiver survives garbage, silence and unplugging: it never raises into the sink's
  thread and reconnects by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["Fix", "FixSink", "GpsReceiver"]


@dataclass(frozen=True, slots=True)
class Fix:
    """One navigation solution (one NMEA epoch)."""

    mode: int
    utc: datetime | None
    lat: float | None = None
    lon: float | None = None
    alt_msl: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    received_mono_ns: int = 0
    stale: bool = False
    """True only on the marker a receiver delivers when its source fell silent."""
    epoch_mono_ns: int = 0
    """``time.monotonic_ns()`` when the epoch's *first* sentence arrived (0: unknown).

    Receivers send their burst right after the epoch; at 9600 baud a burst lasts most of
    a second, so this, not ``received_mono_ns``, is the local instant closest to ``utc``.
    """

    @property
    def has_position(self) -> bool:
        """True for a 2D or 3D fix with coordinates."""
        return self.mode >= 2 and self.lat is not None and self.lon is not None


FixSink = Callable[[Fix], None]


@runtime_checkable
class GpsReceiver(Protocol):
    """A source of fixes (serial NMEA, gpsd, or the route simulator)."""

    def start(self, sink: FixSink) -> None:
        """Start reading; ``sink`` is called from the reader's thread once per epoch."""
        ...

    def stop(self) -> None:
        """Stop reading and close the port."""
        ...
