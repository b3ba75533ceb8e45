"""The agent as a separate process (``bodycam run --hw sim``), driven over its control socket:
what crash and power-cut scenarios need, since they kill the process itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from agent.command.ctl_server import CtlUnavailable, ctl_request

__all__ = ["start_agent"]


def start_agent(cfg: Path, data: Path, *, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start ``bodycam run --hw sim`` on ``data``; return once its control socket answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--hw", "sim", "--config", str(cfg),
         "--data-dir", str(data), "--no-status", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ctl_request(data, "status", timeout=2).get("ok"):
                return proc
        except (CtlUnavailable, OSError, ValueError):
            pass
        if proc.poll() is not None:
            raise AssertionError(f"agent exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("agent did not answer on its control socket")
