"""Fixtures: a real agent on simulated hardware, small and fast enough for 2 cores."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.config import Config, parse_config

SMALL: dict[str, dict[str, Any]] = {
    "video": {"width": 320, "height": 240, "bitrate": 400_000, "fps": 30, "gop": 30},
    "recording": {"prerecord_s": 3, "segment_s": 3},
    "gps": {"source": "none"},
}


def small_config(**sections: dict[str, Any]) -> Config:
    """A small recorder (320×240) with overrides per section."""
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


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, step: float = 0.05) -> None:
    """Poll until ``predicate()`` holds (tests wait on events, never on fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty evidence directory."""
    return tmp_path / "data"
