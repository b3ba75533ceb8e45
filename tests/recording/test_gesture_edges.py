"""Gesture rules at their edges (agent/recording/gestures.py): the default timings an officer is trained
on, inclusive windows, and what a hold leaves behind. Pure rules, explicit timestamps."""

from __future__ import annotations

from agent.recording.gestures import GestureRecognizer


def feed(g: GestureRecognizer, edges: list[tuple[str, float]]) -> list[str]:
    """Feed ``("down"|"up"|"poll", t)`` edges; the gestures recognised, in order."""
    out: list[str] = []
    for kind, t in edges:
        out += {"down": g.pressed, "up": g.released, "poll": g.poll}[kind](t)
    return out


def test_default_hold_is_two_seconds() -> None:
    """With defaults, 1.99 s down is not yet a stop; 2.0 s is."""
    g = GestureRecognizer()
    assert feed(g, [("down", 10.0), ("poll", 11.99)]) == ["press"]
    assert feed(g, [("poll", 12.0)]) == ["hold"]


def test_default_double_press_window_is_half_a_second_inclusive() -> None:
    """With defaults a second press 0.5 s after the first is a double; 0.51 s is a new press."""
    g = GestureRecognizer()
    assert feed(g, [("down", 0.0), ("up", 0.1), ("down", 0.5)]) == ["press", "click", "double"]
    g = GestureRecognizer()
    assert feed(g, [("down", 0.0), ("up", 0.1), ("down", 0.51)]) == ["press", "click", "press"]


def test_a_hold_ends_the_press_sequence() -> None:
    """After a hold, the next press starts a new sequence even inside the double-press window
    (a hold shorter than the window is possible in configuration)."""
    g = GestureRecognizer(hold_s=0.2, double_press_s=0.5)
    assert feed(g, [("down", 0.0), ("poll", 0.2), ("up", 0.25), ("down", 0.3), ("up", 0.35)]) \
        == ["press", "hold", "press", "click"]


def test_a_fresh_recognizer_has_nothing_down() -> None:
    """A release or poll before any press yields nothing; the first press is a press."""
    g = GestureRecognizer()
    assert feed(g, [("up", 0.0), ("poll", 5.0), ("down", 6.0), ("up", 6.1)]) == ["press", "click"]
