"""Shutting the agent down twice (a signal handler and the normal exit path) is harmless."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.app import Agent
from agent.testing import small_config, wait_for


def test_a_second_shutdown_returns_without_asking_the_stopped_controller(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The second call neither waits on the controller that is gone (30 s before) nor logs a
    failed seal; the evidence sealed by the first stays as it is."""
    agent = Agent(small_config(), data_dir=tmp_path / "data", hw_kind="sim")
    agent.start()
    wait_for(lambda: agent.recorder.preroll.span_s >= 1.0, what="a second of pre-roll")
    agent.controller.call("start")
    wait_for(lambda: agent.recorder.state == "recording", what="recording")
    agent.shutdown()
    sealed = sorted((tmp_path / "data" / "recordings").glob("*/*.manifest.json"))
    assert sealed
    with caplog.at_level(logging.ERROR):
        agent.shutdown()
    assert "sealing at shutdown failed" not in caplog.text
    assert sorted((tmp_path / "data" / "recordings").glob("*/*.manifest.json")) == sealed
