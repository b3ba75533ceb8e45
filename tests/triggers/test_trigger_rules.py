"""Trigger rules, instantly: debouncing turns a bouncing contact into one activation, and no
activation ever stops a recording (pure classes, explicit times, no threads)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.config import TriggerConfig
from agent.triggers import Activation, Debounce, TriggerBank, decide

DEBOUNCE = 0.05


def _run(rule: Debounce, edges: list[tuple[float, bool]], end: float) -> list[float]:
    out = [rule.change(t, level) for t, level in edges]
    out.append(rule.poll(end))
    return [t for t in out if t is not None]


@given(st.lists(st.floats(min_value=0.0001, max_value=DEBOUNCE * 0.99), min_size=1,
                max_size=30))
def test_a_bouncing_contact_activates_exactly_once(gaps: list[float]) -> None:
    """Hypothesis: any number of edges closer together than the debounce time, ending on the
    active level, give exactly one activation, once the level has held for the debounce time
    after the last edge."""
    rule = Debounce(DEBOUNCE)
    t, level, edges = 1.0, False, []
    for gap in gaps:
        t += gap
        level = not level
        edges.append((t, level))
    if not level:  # the contact settles closed
        t += gaps[-1]
        edges.append((t, True))
    # polled a hair after the debounce time: (t + 0.05) - t can come out a rounding step under
    # 0.05 in binary floating point (the exact boundary is pinned in test_trigger_edges)
    fired = _run(rule, edges, end=t + DEBOUNCE + 1e-9)
    assert fired == [t + DEBOUNCE]
    assert rule.poll(t + 10) is None  # held: no second activation


def test_a_glitch_shorter_than_the_debounce_time_is_ignored() -> None:
    """A 30 ms spike on a 50 ms debounce does nothing, however often polls come."""
    rule = Debounce(DEBOUNCE)
    assert _run(rule, [(1.0, True), (1.03, False)], end=5.0) == []


def test_a_pulse_that_held_long_enough_counts_even_between_polls() -> None:
    """The level is judged at the next edge, so an 80 ms pulse no poll saw still activates."""
    rule = Debounce(DEBOUNCE)
    assert rule.change(1.0, True) is None
    assert rule.change(1.08, False) == 1.0 + DEBOUNCE


def test_it_rearms_only_after_the_input_rested() -> None:
    """Active, a 20 ms drop-out, active again: one activation; a real release (longer than the
    debounce time) and a new activation: a second one."""
    rule = Debounce(DEBOUNCE)
    fired = _run(rule, [(1.0, True), (2.0, False), (2.02, True), (3.0, False), (3.5, True)],
                 end=4.0)
    assert fired == [1.0 + DEBOUNCE, 3.5 + DEBOUNCE]


def test_an_input_active_at_start_activates() -> None:
    """A light bar already on when the unit starts counts, after the debounce time."""
    rule = Debounce(DEBOUNCE, active=True, t=10.0)
    assert rule.poll(10.01) is None
    assert rule.poll(10.06) == 10.0 + DEBOUNCE


def test_zero_debounce_fires_at_the_edge_time() -> None:
    """debounce_ms = 0: the first poll after the edge activates, timed at the edge."""
    rule = Debounce(0.0)
    rule.change(1.0, True)
    assert rule.poll(1.0) == 1.0


@given(st.sampled_from(["start", "start_matter", "bookmark"]),
       st.sampled_from(["standby", "recording", "stopping", "fault"]))
def test_no_activation_ever_stops_a_recording(action: str, state: str) -> None:
    """Whatever the action and the recorder's state, the decision is never to stop; while
    recording it is a bookmark; a start trigger starts from any other state (admission then
    decides); a bookmark trigger with nothing recording does nothing."""
    what = decide(action, state)
    assert what != "stop"
    if state == "recording":
        assert what == "bookmark"
    elif action == "bookmark":
        assert what == "ignore"
    else:
        assert what == action


def test_the_bank_reports_each_trigger_with_its_pin_and_settled_time() -> None:
    """Two inputs with their own debounce times, each reported once with its configuration."""
    got: list[Activation] = []
    bank = TriggerBank([
        TriggerConfig(name="holster", pin=5, debounce_ms=50),
        TriggerConfig(name="lightbar", pin=6, debounce_ms=200, action="start_matter",
                      matter="XCJC"),
    ], on_activation=got.append)
    assert bank.pins == [5, 6]
    bank.begin(5, False, 0.0)
    bank.begin(6, False, 0.0)
    bank.edge(5, 1.0, True)
    bank.edge(6, 1.0, True)
    bank.poll(1.1)
    assert [(a.name, a.pin, a.at) for a in got] == [("holster", 5, 1.05)]
    bank.poll(1.3)
    assert [(a.name, a.action, a.matter, a.at) for a in got[1:]] == [
        ("lightbar", "start_matter", "XCJC", 1.2)]
    bank.edge(7, 2.0, True)  # not a trigger pin: ignored
    assert bank.activations == 2
