"""Media time of the simulated camera and microphone, optionally faster than real time.

A soak that must seal a week of segments cannot wait a week. At ``speed`` N the simulated
capture devices deliver N seconds of media per wall-clock second, every frame and every sample
still stamped at its nominal period, so the recorder -- which rolls segments, spans its
pre-roll and lines audio up with video on those stamps -- sees exactly the stream a real
camera would give it, only sooner. At speed 1 (the default everywhere but a soak) media time
*is* ``CLOCK_MONOTONIC`` and nothing changes.

Media time is ``epoch + (monotonic - epoch) * speed``, ``epoch`` being the clock's
construction. The camera and microphone of one hardware set share one clock
(:func:`hw.factory.build_hardware`), so their stamps stay on one time line and A/V sync holds at
any speed; two clocks made at different instants would drift apart by ``(speed - 1)`` times
the gap between them.

What sees real time only, by design (documented for the soak, ``scripts/soak_memory.py``):
media stamps run ahead of ``CLOCK_MONOTONIC`` by ``(speed - 1)`` seconds per second, so what
compares them with the monotonic clock sees the future. The manifests' UTC (the monotonic
→ UTC mapping of a stamp) is dated ahead; a segment's GPS track holds only the fixes that
arrived while it was open (fewer at speed: GPS, battery and clock discipline stay real time,
since a GPS whose UTC ran fast would be a clock fault); the recorder's give-up on late audio
(600 ms after a roll, measured on the monotonic clock from a media stamp) never fires, the
normal seal on the audio reaching the boundary does; the bitrate meter (bytes per monotonic
second) measures N times the stream's rate. The camera watchdog counts frames per real second
and sees N times more: no false stall.

Thread-safe: immutable after construction (the monotonic clock and the wait are reentrant).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["MAX_SPEED", "MediaClock"]

MAX_SPEED = 100.0  # past this the recorder (muxing, sealing) cannot keep up on any device


def _event_wait(stop: threading.Event, seconds: float) -> bool:
    return stop.wait(seconds)


class MediaClock:
    """The time line the simulated capture devices stamp and pace their media on."""

    def __init__(
        self,
        speed: float = 1.0,
        *,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        wait: Callable[[threading.Event, float], bool] = _event_wait,
    ) -> None:
        """``speed``: media seconds per wall-clock second, 1 ..  :data:`MAX_SPEED`.
        ``mono_ns`` and ``wait`` (block on an event for real seconds, True if it was set) are
        the real clock unless a test drives time by hand."""
        if not 1.0 <= speed <= MAX_SPEED:
            raise ValueError(f"media speed must be within 1..{MAX_SPEED:g}, got {speed}")
        self._speed = float(speed)
        self._mono_ns = mono_ns
        self._wait = wait
        self._epoch = mono_ns()

    @property
    def speed(self) -> float:
        """Media seconds delivered per wall-clock second."""
        return self._speed

    def now_ns(self) -> int:
        """Media time now, ns (``CLOCK_MONOTONIC`` itself at speed 1)."""
        mono = self._mono_ns()
        if self._speed == 1.0:
            return mono
        return self._epoch + int((mono - self._epoch) * self._speed)

    def sleep(self, stop: threading.Event, media_ns: int) -> bool:
        """Wait while ``media_ns`` of media time pass (``media_ns / speed`` of real time) or
        until ``stop`` is set; True if it was set."""
        return self._wait(stop, max(0, media_ns) / self._speed / 1e9)
