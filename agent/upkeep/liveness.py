"""The one place that decides whether the recorder deserves to be kept alive.

A body-worn recorder's worst failure is the quiet one: the process runs, the LED is on, and
no frame has been recorded for an hour (picamera2 can stall like that, and so can a
controller thread stuck on a lock). systemd's watchdog turns such a state into a restart,
but only if ``WATCHDOG=1`` stops when recording stops. So :class:`HealthGate` sends it only
when *both* hold:

* the camera's frame counter advanced within ``stall_after_s`` (frames flow), and
* the controller loop's heartbeat, the monotonic time of its last iteration, is no older
  than ``loop_stall_after_s`` (the state machine is alive and can act on a button press).

The gate also reports ``READY=1`` the first time both hold, so the service is declared
started only once the pipeline really runs, and keeps a ``STATUS=`` line current for
``systemctl status``. When the gate stops feeding the watchdog it does not kill anything: the
agent's own recovery (restarting the camera) has until systemd's timeout to succeed.

Locking: :meth:`HealthGate.tick` is meant to run on a single timer thread (see
:meth:`HealthGate.run`), while :attr:`HealthGate.last` may be read from any thread (the
control socket's ``status``). ``_lock`` guards the progress bookkeeping and the last verdict;
the ``frames``/``heartbeat``/``summary`` callables are called outside it and must themselves
be safe to call from the timer thread (reading an ``int`` or ``float`` attribute is).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.sdnotify import Notifier

__all__ = ["Health", "HealthGate"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    """One verdict of the gate: whether the watchdog was fed, and the evidence for it."""

    healthy: bool
    frames: int
    frame_age_s: float  # time since the frame counter last moved (inf: never moved)
    loop_age_s: float  # time since the controller loop's last iteration
    fps: float  # frames per second since the previous tick
    reason: str  # one line, shown as STATUS= and in the journal on change


class HealthGate:
    """Feeds the systemd watchdog only while frames flow and the controller loop turns."""

    def __init__(
        self,
        *,
        frames: Callable[[], int],
        heartbeat: Callable[[], float],
        notifier: Notifier,
        stall_after_s: float = 2.0,
        loop_stall_after_s: float | None = None,
        summary: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Watch ``frames()`` (a counter) and ``heartbeat()`` (a time on ``clock``).

        ``stall_after_s`` is how long the frame counter may stand still;
        ``loop_stall_after_s`` (default: the same) how old the heartbeat may be.
        ``summary``, if given, adds the controller's own one-line state (say, "recording
        segment 12") to the ``STATUS=`` text. ``heartbeat`` must use ``clock``'s time base.
        """
        if not stall_after_s > 0:
            raise ValueError(f"stall_after_s must be positive, got {stall_after_s}")
        loop_limit = stall_after_s if loop_stall_after_s is None else loop_stall_after_s
        if not loop_limit > 0:
            raise ValueError(f"loop_stall_after_s must be positive, got {loop_limit}")
        self._frames = frames
        self._heartbeat = heartbeat
        self._notifier = notifier
        self._stall_after_s = stall_after_s
        self._loop_stall_after_s = loop_limit
        self._summary = summary
        self._clock = clock
        self._lock = threading.Lock()
        # guarded by _lock:
        self._seen_frames: int | None = None
        self._progress_at: float | None = None  # clock time the counter was last seen moving
        self._last_tick: tuple[float, int] | None = None  # (time, frames) of previous tick
        self._announced_ready = False
        self._last: Health | None = None

    @property
    def last(self) -> Health | None:
        """The most recent verdict, or ``None`` before the first tick."""
        with self._lock:
            return self._last

    def recommended_tick_s(self) -> float:
        """A tick period that pings systemd in time and notices a stall promptly.

        At most half the watchdog's ping interval (itself half the timeout), half the stall
        windows, and one second.
        """
        candidates = [self._stall_after_s / 2, self._loop_stall_after_s / 2, 1.0]
        interval = self._notifier.watchdog_interval_s()
        if interval is not None:
            candidates.append(interval / 2)
        return min(candidates)

    def tick(self) -> Health:
        """Judge the pipeline now, feed the watchdog if it is healthy, and report status."""
        frames = self._frames()
        beat = self._heartbeat()
        extra = self._summary() if self._summary is not None else ""
        now = self._clock()
        with self._lock:
            verdict = self._judge(now, frames, beat)
            previous, self._last = self._last, verdict
            first_ready = verdict.healthy and not self._announced_ready
            self._announced_ready = self._announced_ready or verdict.healthy
        status = verdict.reason if not extra else f"{verdict.reason}; {extra}"
        if first_ready:
            self._notifier.ready(status=status)
        if verdict.healthy:
            self._notifier.watchdog(status=status)
        else:
            self._notifier.status(status)
        if previous is None or previous.healthy != verdict.healthy:
            # Starting up is not news; falling out of health is.
            level = logging.INFO if verdict.healthy or previous is None else logging.WARNING
            _log.log(level, "recorder health: %s", verdict.reason)
        return verdict

    def run(self, stop: threading.Event, interval_s: float | None = None) -> None:
        """Tick every ``interval_s`` (default :meth:`recommended_tick_s`) until ``stop`` is set.

        The body of the agent's health timer thread. An exception from a probe is logged and
        the tick skipped: the watchdog then goes unfed, which is the safe direction.
        """
        period = self.recommended_tick_s() if interval_s is None else interval_s
        if not period > 0:
            raise ValueError(f"interval_s must be positive, got {period}")
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                _log.exception("health probe failed; the systemd watchdog is not fed this tick")
            stop.wait(period)

    # --- internals ----------------------------------------------------------------------------
    def _judge(self, now: float, frames: int, beat: float) -> Health:
        """Update progress bookkeeping and decide; caller holds ``_lock``."""
        if self._seen_frames is None:
            # First look: no progress seen yet. The counter may already be past zero
            # (frames delivered before the gate started), which is not proof of flow *now*.
            self._seen_frames = frames
        elif frames != self._seen_frames:
            # Any change counts: a restarted camera resets its counter, and that is progress.
            self._seen_frames = frames
            self._progress_at = now
        fps = 0.0
        if self._last_tick is not None:
            then, then_frames = self._last_tick
            if now > then and frames >= then_frames:
                fps = (frames - then_frames) / (now - then)
        self._last_tick = (now, frames)

        frame_age = math.inf if self._progress_at is None else now - self._progress_at
        loop_age = now - beat
        if self._progress_at is None:
            healthy, reason = False, "waiting for the first frame"
        elif frame_age > self._stall_after_s:
            healthy, reason = False, f"camera stalled: no frame for {frame_age:.1f} s"
        elif loop_age > self._loop_stall_after_s:
            healthy, reason = False, f"controller loop stalled: last turn {loop_age:.1f} s ago"
        else:
            healthy, reason = True, f"recording pipeline healthy: {fps:.1f} fps"
        return Health(
            healthy=healthy,
            frames=frames,
            frame_age_s=frame_age,
            loop_age_s=loop_age,
            fps=fps,
            reason=reason,
        )
