"""What the officer sees and feels: LEDs, buzzer and vibration for each recorder event.

Commercial recorders confirm start and stop by sound *and* vibration (the officer may be in
a loud street or need silence), remind periodically that recording is on, and make a refusal
unmistakable. Patterns are counts of pulses so they can be told apart by feel:

=============  =========================================
start          1 long buzz + 1 vibration
stop           2 buzzes + 2 vibrations
bookmark       1 short buzz
refused        3 fast buzzes, fault LED blinks
warning        2 buzzes, fault LED blinks (battery/storage low)
reminder       1 vibration every ``reminder_s`` while recording
matter select  N short buzzes for the N-th matter of the quick list
=============  =========================================

LEDs: standby = green on; recording = red on; stopping = red blinking; fault = amber fast.

**Covert mode** (``bodycam ctl covert on``, or the double-press-and-hold gesture): every LED
is dark and the buzzer silent -- an officer in a surveillance or a domestic-violence call must
not announce the recording. What remains is one discreet vibration per event: a short one
(0.15 s) for start and for stop, a brief one for a bookmark, a long one (0.6 s) for a refusal
or a warning; the periodic reminder is off. Leaving covert mode restores the LEDs.

Not thread-safe: called only from the controller thread.
"""

from __future__ import annotations

from hw.controls import Controls

__all__ = ["Feedback"]


class Feedback:
    """Drive the indicators from recorder state and events."""

    def __init__(self, controls: Controls, *, reminder_s: float = 120.0) -> None:
        self._c = controls
        self._reminder_s = reminder_s
        self._recording_since: float | None = None
        self._last_reminder = 0.0
        self._warning = False
        self.shown_state = ""
        self.covert = False

    def set_covert(self, on: bool) -> bool:
        """Enter or leave covert mode; returns the previous setting. LEDs follow at once."""
        previous, self.covert = self.covert, on
        self.show(self.shown_state)
        return previous

    def _discreet(self, on_s: float) -> None:
        """The one covert signal: a single vibration."""
        self._c.pulse("vibration", count=1, on_s=on_s)

    def set_reminder(self, seconds: float) -> None:
        """Change the reminder period (remote configuration); 0 turns it off."""
        self._reminder_s = seconds

    def show(self, state: str, *, warning: bool | None = None) -> None:
        """Set the LEDs for a recorder state (and whether a warning is active)."""
        if warning is not None:
            self._warning = warning
        self.shown_state = state
        if self.covert:
            for name in ("standby", "recording", "fault"):
                self._c.set_led(name, "off")
            return
        self._c.set_led("standby", "on" if state == "standby" else "off")
        self._c.set_led("recording", {"recording": "on", "stopping": "blink"}.get(state, "off"))
        if state == "fault":
            self._c.set_led("fault", "fast")
        else:
            self._c.set_led("fault", "blink" if self._warning else "off")

    def started(self, now: float) -> None:
        """Recording started."""
        self._recording_since = self._last_reminder = now
        if self.covert:
            self._discreet(0.15)
            return
        self._c.pulse("buzzer", count=1, on_s=0.4)
        self._c.pulse("vibration", count=1, on_s=0.4)

    def stopped(self) -> None:
        """Recording stopped."""
        self._recording_since = None
        if self.covert:
            self._discreet(0.15)
            return
        self._c.pulse("buzzer", count=2)
        self._c.pulse("vibration", count=2)

    def bookmark(self) -> None:
        """A bookmark was taken."""
        if self.covert:
            self._discreet(0.06)
            return
        self._c.pulse("buzzer", count=1, on_s=0.06)

    def refused(self) -> None:
        """A start was refused (battery, storage, no key)."""
        if self.covert:
            self._discreet(0.6)
            return
        self._c.pulse("buzzer", count=3, on_s=0.08, off_s=0.08)
        self._c.set_led("fault", "blink")

    def warning(self) -> None:
        """A battery or storage warning began."""
        self._warning = True
        if self.covert:
            self._discreet(0.6)
            return
        self._c.pulse("buzzer", count=2)
        self._c.set_led("fault", "blink")

    def matter_selected(self, position: int) -> None:
        """The ``position``-th (1-based) matter of the quick list was chosen."""
        if self.covert:  # the count is the information: short vibrations instead of beeps
            self._c.pulse("vibration", count=max(1, position), on_s=0.06, off_s=0.15)
            return
        self._c.pulse("buzzer", count=max(1, position), on_s=0.06, off_s=0.15)

    def tick(self, now: float) -> None:
        """Periodic reminder while recording."""
        if self._recording_since is None or self._reminder_s <= 0 or self.covert:
            return
        if now - self._last_reminder >= self._reminder_s:
            self._last_reminder = now
            self._c.pulse("vibration", count=1)
