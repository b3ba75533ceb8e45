"""Fixtures: a real agent on simulated hardware, small and fast enough for 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.testing import SMALL, running_agent, small_config, wait_for

__all__ = ["SMALL", "running_agent", "small_config", "wait_for"]  # for older imports

@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty evidence directory."""
    return tmp_path / "data"
