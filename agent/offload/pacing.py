"""How fast and when the uploader may work: pure rules, no threads, instant tests.

* :class:`RateLimiter` -- a token bucket for ``offload.max_rate`` (bytes/s): the radio and
  the SD card are shared with the recording.
* :class:`Backoff` -- exponential waits, capped at ``offload.retry_s``, while the station is
  unreachable or refusing for a reason that may pass (507 store full).
* :class:`PressureGauge` -- whether the camera pipeline shows strain: the controller's queue
  is deeper than about a second of frames, or the camera dropped a frame since the last look.
  Recording always wins: the uploader pauses while either holds.
"""

from __future__ import annotations

__all__ = ["Backoff", "PressureGauge", "RateLimiter"]


class RateLimiter:
    """A token bucket: ``rate`` bytes/s, bursts of at most one second's worth (0 = no cap)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._at: float | None = None

    def delay(self, nbytes: int, now: float) -> float:
        """Seconds to wait before sending ``nbytes`` (the bytes are charged now)."""
        if self.rate <= 0:
            return 0.0
        if self._at is not None:
            self._tokens = min(float(self.rate), self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= nbytes
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def chunk(self, default: int) -> int:
        """A PATCH size that fits the cap (about a quarter second of it), at most ``default``."""
        if self.rate <= 0:
            return default
        return max(16 << 10, min(default, self.rate // 4))


class Backoff:
    """Waits of 0.5 s, 1 s, 2 s … up to ``cap`` seconds; :meth:`reset` after a success."""

    def __init__(self, cap: float, first: float = 0.5) -> None:
        self.cap, self.first = cap, min(first, cap)
        self.failures = 0

    def next(self) -> float:
        """The wait after one more failure."""
        self.failures += 1
        return float(min(self.cap, self.first * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        """The station answered: the next failure starts from the first wait again."""
        self.failures = 0


class PressureGauge:
    """True while the recording pipeline is under strain (see the module docstring)."""

    def __init__(self, *, max_depth: int) -> None:
        self.max_depth = max_depth
        self._dropped: int | None = None

    def strained(self, queue_depth: int, frames_dropped: int) -> bool:
        """Judge one reading; a drop counts once, at the first look after it happened."""
        dropped_now = self._dropped is not None and frames_dropped > self._dropped
        self._dropped = frames_dropped
        return dropped_now or queue_depth > self.max_depth
