"""Test support that ships with the agent: a running agent on simulated hardware, a small
configuration for it, and the one way to wait for a condition.

Tests (ours, a lab's acceptance suite, an integrator's) wait on conditions, never on fixed
sleeps: :func:`wait_for` polls a predicate and fails with what it was waiting for. It lives
in the product, not in ``tests/``, so every suite waits the same way and a change to the
agent's start-up or shutdown reaches them all through :func:`running_agent`.

This module sits beside the composition root (it builds an :class:`agent.app.Agent`), so it
is the one module other than the command line that imports :mod:`agent.app`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from agent.app import Agent
from agent.config import Config, parse_config

__all__ = ["SMALL", "running_agent", "small_config", "wait_for"]

T = TypeVar("T")

SMALL: dict[str, dict[str, Any]] = {
    "video": {"width": 320, "height": 240, "bitrate": 400_000, "fps": 30, "gop": 30},
    "recording": {"prerecord_s": 3, "segment_s": 3},
    "gps": {"source": "none"},
}


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition",
             step: float = 0.02) -> T:
    """Poll ``predicate()`` until it is truthy and return its value; on ``timeout`` fail with
    :class:`AssertionError` naming ``what`` (a test failure, not an error)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def small_config(**sections: dict[str, Any]) -> Config:
    """A small recorder (320x240, 3 s pre-roll and segments, no GPS) with overrides per
    section -- fast enough for a 2-core machine running a suite."""
    raw = {k: dict(v) for k, v in SMALL.items()}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw)


@contextlib.contextmanager
def running_agent(cfg: Config, data_dir: Path) -> Iterator[Agent]:
    """Start an agent on simulated hardware; shut it down (sealing) on exit."""
    agent = Agent(cfg, data_dir=data_dir, hw_kind="sim")
    agent.start()
    try:
        yield agent
    finally:
        agent.shutdown()
