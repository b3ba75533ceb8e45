"""Activation triggers: recording that starts itself when a holster is drawn from or a light
bar comes on, because in the moments that matter nobody remembers to press a button.

Two rules, both pure (explicit timestamps, no threads, no sleeps) and tested instantly:

* :class:`Debounce` -- a raw input becomes one *activation* once its active level has held
  for ``debounce_s``; it re-arms only after the inactive level has held as long. A bouncing
  contact (any number of edges closer together than ``debounce_s``) therefore activates once.
  The level is judged at every edge *and* at every poll, so a pulse that held long enough
  counts even if no poll fell inside it. An input already active when the agent starts counts
  as an activation (the light bar was on before the unit booted).
* :func:`decide` -- what an activation does in the recorder's state. A trigger starts a
  recording (after the same admission checks as the button) or bookmarks one; **it never
  stops one**: during a recording every activation is only a bookmark naming the trigger
  (the matter a ``start_matter`` trigger carries is not imposed on a recording already under
  way -- the officer may have chosen it deliberately).

:class:`TriggerBank` ties each configured input to its rule. Edges arrive on gpiozero's thread
and are posted to the controller; :meth:`TriggerBank.edge` and :meth:`TriggerBank.poll` run on
the controller thread only (not thread-safe by design, like :mod:`agent.recording.gestures`).

What the evidence shows (see README "Using the recorder"): the segment a trigger started
carries the flag ``trigger:<name>``; the start is a ``command`` log entry with
``origin {"via": "trigger", "name": …, "pin": …}``; a bookmark made by a trigger is labelled
``trigger:<name>`` and names the pin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.config import TriggerConfig

__all__ = ["Activation", "Debounce", "TriggerBank", "decide"]


class Debounce:
    """Raw level changes in, activation instants out."""

    def __init__(self, debounce_s: float, *, active: bool = False, t: float = 0.0) -> None:
        self.debounce_s = debounce_s
        self._level = active
        self._since = t
        self._armed = True

    @property
    def level(self) -> bool:
        """The raw level last reported."""
        return self._level

    def change(self, t: float, active: bool) -> float | None:
        """The input is ``active`` from ``t`` on; returns an activation instant, if the level
        that just ended had settled into one."""
        fired = self._settle(t)
        if active != self._level:
            self._level, self._since = active, t
        return fired

    def poll(self, t: float) -> float | None:
        """Judge the current level at ``t``; returns an activation instant or None."""
        return self._settle(t)

    def _settle(self, t: float) -> float | None:
        if t - self._since < self.debounce_s:
            return None
        if not self._level:
            self._armed = True
            return None
        if self._armed:
            self._armed = False
            return self._since + self.debounce_s
        return None


def decide(action: str, state: str) -> str:
    """What an activation of a trigger with ``action`` does while the recorder is ``state``:
    ``start``, ``start_matter``, ``bookmark`` or ``ignore`` -- never ``stop``."""
    if state == "recording":
        return "bookmark"
    if action in ("start", "start_matter"):
        return action  # standby, stopping, fault: admission decides (and logs a refusal)
    return "ignore"  # a bookmark trigger with nothing recording


@dataclass(frozen=True)
class Activation:
    """One trigger fired: its configuration and the instant its level settled."""

    name: str
    pin: int
    action: str
    matter: str
    at: float


class TriggerBank:
    """The configured triggers, each with its debounce rule (controller thread only)."""

    def __init__(self, triggers: Sequence[TriggerConfig], *,
                 on_activation: Callable[[Activation], None]) -> None:
        self._cfg = {t.pin: t for t in triggers}
        self._rules: dict[int, Debounce] = {}
        self._on_activation = on_activation
        self.activations = 0

    @property
    def pins(self) -> list[int]:
        """Input pins of the configured triggers."""
        return sorted(self._cfg)

    def config(self, pin: int) -> TriggerConfig:
        """The trigger on ``pin``."""
        return self._cfg[pin]

    def begin(self, pin: int, active: bool, t: float) -> None:
        """Start judging ``pin`` from its level at ``t`` (when the input was opened)."""
        self._rules[pin] = Debounce(self._cfg[pin].debounce_ms / 1000, active=active, t=t)

    def edge(self, pin: int, t: float, active: bool) -> None:
        """A raw level change of ``pin``."""
        rule = self._rules.get(pin)
        if rule is not None:
            self._fire(pin, rule.change(t, active))

    def poll(self, t: float) -> None:
        """Judge every input's held level (each controller tick)."""
        for pin, rule in self._rules.items():
            self._fire(pin, rule.poll(t))

    def _fire(self, pin: int, at: float | None) -> None:
        if at is None:
            return
        c = self._cfg[pin]
        self.activations += 1
        self._on_activation(Activation(c.name, pin, c.action, c.matter, at))
