"""The agent, run as systemd runs it, honours the notification protocol end to end.

A real ``bodycam run --hw sim`` process is started with ``NOTIFY_SOCKET`` pointing at a
datagram socket this test owns (as the service manager's) and ``WATCHDOG_USEC`` set, the way
``bodycam.service`` (Type=notify, WatchdogSec=) starts it on the device.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_listener import NotifyListener

BODYCAM = Path(sys.executable).with_name("bodycam")

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        importlib.util.find_spec("agent.cli") is None
        or importlib.util.find_spec("agent.app") is None
        or not BODYCAM.exists(),
        reason="needs the agent's 'bodycam run' (agent.cli, agent.app) installed in this venv",
    ),
]


@pytest.fixture
def agent(tmp_path: Path, path_listener: NotifyListener) -> Iterator[subprocess.Popen[bytes]]:
    """``bodycam run --hw sim`` for 15 s under a fake service manager."""
    env = dict(os.environ, NOTIFY_SOCKET=path_listener.env_value, WATCHDOG_USEC="2000000")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [
            str(BODYCAM),
            "run",
            "--hw",
            "sim",
            "--data-dir",
            str(tmp_path / "data"),
            "--for",
            "15",
            "--no-status",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _next(listener: NotifyListener, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        pytest.fail(f"the agent exited with {proc.returncode} early:\n{err[-3000:]}")
    return listener.recv(timeout=20)


def _keep_camera_stalled(data_dir: Path, stop: threading.Event) -> None:
    """A camera the agent cannot revive: re-stall it whenever a restart resumed it."""
    from agent.command.ctl_server import ctl_request

    while not stop.wait(0.2):
        try:
            ctl_request(data_dir, "sim", {"device": "camera", "verb": "stall"}, timeout=5)
        except Exception:  # the agent may be exiting at the end of the test
            return


def test_ready_then_watchdog_while_frames_flow_and_none_when_they_stop(
    tmp_path: Path, path_listener: NotifyListener, agent: subprocess.Popen[bytes]
) -> None:
    """READY=1 first, WATCHDOG=1 while healthy; a stalled camera starves the watchdog."""
    # Start-up: nothing is fed before the service says it is ready.
    first = _next(path_listener, agent)
    while "READY" not in first:
        assert "WATCHDOG" not in first, f"watchdog fed before READY=1: {first}"
        first = _next(path_listener, agent)
    assert first["READY"] == "1"

    # Healthy: periodic pings, each with a status saying frames flow.
    pings = 0
    while pings < 4:
        msg = _next(path_listener, agent)
        if msg.get("WATCHDOG") == "1":
            pings += 1
            assert msg["STATUS"].startswith("recording pipeline healthy")

    # Stall the simulated camera, as a lab would, and keep it stalled.
    stalled = subprocess.run(
        [str(BODYCAM), "ctl", "sim", "camera", "stall", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert stalled.returncode == 0, stalled.stderr
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_camera_stalled, args=(tmp_path / "data", stop))
    keeper.start()
    try:
        # The gate reports the stall and withholds WATCHDOG=1 for consecutive ticks,
        # while the process itself is still running (systemd, not the agent, ends it).
        unfed_in_a_row = 0
        for _ in range(60):
            msg = _next(path_listener, agent)
            if msg.get("WATCHDOG") == "1":
                unfed_in_a_row = 0
                continue
            if msg.get("STATUS", "").startswith("camera stalled"):
                unfed_in_a_row += 1
                if unfed_in_a_row == 3:
                    break
        assert unfed_in_a_row == 3, "the watchdog kept being fed while the camera was stalled"
        assert agent.poll() is None
    finally:
        stop.set()
        keeper.join()
