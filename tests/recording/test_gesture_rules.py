"""GestureRecognizer as pure rules (explicit timestamps, no threads, no sleeps): starting is
easy, stopping is deliberate, and contact bounce or a hug cannot become a stop."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.recording.gestures import GestureRecognizer


def run(edges: list[tuple[str, float]], *, hold_s: float = 2.0, double_s: float = 0.5) -> list[str]:
    """Feed ``("down"|"up"|"poll", t)`` edges; the gestures recognised, in order."""
    g = GestureRecognizer(hold_s=hold_s, double_press_s=double_s)
    out: list[str] = []
    for kind, t in edges:
        out += {"down": g.pressed, "up": g.released, "poll": g.poll}[kind](t)
    return out


def test_a_short_press_is_a_press_then_a_click() -> None:
    assert run([("down", 0.0), ("poll", 0.1), ("up", 0.2)]) == ["press", "click"]


def test_a_hold_fires_once_at_hold_s_and_the_release_adds_nothing() -> None:
    edges = [("down", 0.0), ("poll", 1.99), ("poll", 2.0), ("poll", 2.5), ("up", 3.0)]
    assert run(edges) == ["press", "hold"]
    assert run([("down", 0.0), ("poll", 1.99), ("up", 2.1)]) == ["press", "click"]


def test_double_and_triple_presses_within_the_window_only() -> None:
    double = [("down", 0.0), ("up", 0.1), ("down", 0.5), ("up", 0.6)]
    assert run(double) == ["press", "click", "double"]
    late = [("down", 0.0), ("up", 0.1), ("down", 0.51), ("up", 0.6)]
    assert run(late) == ["press", "click", "press", "click"]
    triple = [*double, ("down", 0.9), ("up", 1.0)]
    assert run(triple) == ["press", "click", "double", "triple"]
    fourth = [*triple, ("down", 1.3), ("up", 1.4)]
    assert run(fourth) == ["press", "click", "double", "triple"]  # a fourth press means nothing


def test_double_press_and_hold_is_not_a_stop() -> None:
    edges = [("down", 0.0), ("up", 0.1), ("down", 0.25), ("poll", 2.24), ("poll", 2.25)]
    assert run(edges) == ["press", "click", "double", "double_hold"]


def test_contact_bounce_is_ignored_and_a_hold_resets_the_count() -> None:
    bounce = [("down", 0.0), ("down", 0.001), ("down", 0.002), ("up", 0.1)]
    assert run(bounce) == ["press", "click"]
    after_hold = [("down", 0.0), ("poll", 2.0), ("up", 2.1), ("down", 2.3), ("up", 2.4)]
    assert run(after_hold) == ["press", "hold", "press", "click"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["down", "up", "poll"]),
                          st.floats(min_value=0.0, max_value=0.3)), max_size=40))
def test_nothing_shorter_than_hold_s_is_a_stop(steps: list[tuple[str, float]]) -> None:
    """Any edge sequence whose button is never down for hold_s yields no hold: a knock, a hug,
    a bouncing contact can start or bookmark, never stop."""
    t, edges, down_since = 0.0, [], None
    for kind, dt in steps:
        t += dt
        if kind == "down" and down_since is None:
            down_since = t
        if kind == "up":
            down_since = None
        if kind == "poll" and down_since is not None and t - down_since >= 2.0:
            continue  # keep every down stretch shorter than hold_s
        edges.append((kind, t))
    assert not {"hold", "double_hold"} & set(run(edges))
