"""Trigger rules at their edges (agent/triggers.py): the exact instant an input settles, the
units of ``debounce_ms``, and the level an input had when it was opened."""

from __future__ import annotations

from agent.config import TriggerConfig
from agent.triggers import Activation, Debounce, TriggerBank


def test_an_input_settles_at_exactly_debounce_s() -> None:
    """A poll exactly ``debounce_s`` after the edge sees a settled input."""
    rule = Debounce(0.25, t=1.0)
    assert rule.change(1.0, True) is None
    assert rule.poll(1.2499) is None
    assert rule.poll(1.25) == 1.25


def test_default_start_time_is_zero() -> None:
    """An input already active when opened with no time given counts from t = 0."""
    rule = Debounce(0.5, active=True)
    assert rule.poll(0.49) is None
    assert rule.poll(0.5) == 0.5


def test_a_settled_release_rearms_at_its_own_edge() -> None:
    """Activation, release held long enough, activation again, each at its settled instant."""
    rule = Debounce(0.1)
    assert rule.change(1.0, True) is None
    assert rule.change(2.0, False) == 1.1
    assert rule.change(3.0, True) is None
    assert rule.poll(3.1) == 3.1


def test_bank_debounce_is_in_milliseconds_and_honours_the_opening_level() -> None:
    """debounce_ms=200 is 0.2 s; an input opened active at t=5 activates at 5.2; one opened
    inactive then raised at 6 activates at 6.2 through an edge, not only a poll."""
    got: list[Activation] = []
    bank = TriggerBank([TriggerConfig(name="lightbar", pin=6, debounce_ms=200),
                        TriggerConfig(name="holster", pin=5, debounce_ms=200)],
                       on_activation=got.append)
    bank.begin(6, True, 5.0)
    bank.begin(5, False, 5.0)
    bank.poll(5.19)
    assert got == []
    bank.poll(5.2)
    assert [(a.name, a.at) for a in got] == [("lightbar", 5.2)]
    bank.edge(5, 6.0, True)
    bank.edge(5, 6.3, False)  # the level held 0.3 s: settled at 6.2, reported by the edge
    assert [(a.name, a.at) for a in got[1:]] == [("holster", 6.2)]
    assert bank.activations == 2
