"""Button gestures: what a human meant by a sequence of edges.

A body-worn recorder must make starting easy and stopping deliberate (a knock or a hug must
never stop evidence). The recognizer turns raw edges into gestures, and the recorder decides
what each gesture means in its current state:

* ``press`` -- emitted on the first press edge, immediately;
* ``click`` -- a press released before ``hold_s`` (the start gesture: releasing starts, so a
  long hold in standby can mean something else; the pre-event buffer covers the delay);
* ``double`` / ``triple`` -- a second/third press within ``double_press_s`` of the previous;
* ``hold`` -- the button has stayed down for ``hold_s`` (found by :meth:`poll`);
* ``double_hold`` -- instead of ``hold`` when the press held is the second of a double press
  (press, release, press and keep down): covert mode on/off. It cannot be mistaken for a
  stop -- a stop is a hold of a *first* press -- and its prefix is an ordinary double press.

Pure logic with explicit timestamps, so it is tested without hardware or sleeps.
Not thread-safe: the controller feeds it from its own thread.
"""

from __future__ import annotations

__all__ = ["GestureRecognizer"]


class GestureRecognizer:
    """Edge timestamps in, gesture names out."""

    def __init__(self, *, hold_s: float = 2.0, double_press_s: float = 0.5) -> None:
        self.hold_s = hold_s
        self.double_press_s = double_press_s
        self._down_at: float | None = None
        self._hold_fired = False
        self._last_press: float | None = None
        self._count = 0

    def pressed(self, t: float) -> list[str]:
        """A press edge at monotonic time ``t``."""
        if self._down_at is not None:
            return []  # a second press edge without release: contact bounce
        self._down_at = t
        self._hold_fired = False
        if self._last_press is not None and t - self._last_press <= self.double_press_s:
            self._count += 1
        else:
            self._count = 1
        self._last_press = t
        return {1: ["press"], 2: ["double"], 3: ["triple"]}.get(self._count, [])

    def released(self, t: float) -> list[str]:
        """A release edge."""
        was_down = self._down_at is not None
        self._down_at = None
        if self._hold_fired:
            self._count = 0
            self._last_press = None
            return []
        return ["click"] if was_down and self._count == 1 else []

    def poll(self, t: float) -> list[str]:
        """Check for a hold in progress; call a few times a second."""
        if self._down_at is not None and not self._hold_fired and t - self._down_at >= self.hold_s:
            self._hold_fired = True
            return ["double_hold"] if self._count == 2 else ["hold"]
        return []
