"""The agent speaks systemd's notification protocol to a real datagram socket."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest
from notify_listener import NotifyListener

from agent.sdnotify import Notifier
from hw.errors import ConfigError


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_lifecycle_datagrams_reach_the_manager(kind: str, request: pytest.FixtureRequest) -> None:
    """READY, STATUS, WATCHDOG and STOPPING arrive as separate datagrams, in order."""
    listener: NotifyListener = request.getfixturevalue(f"{kind}_listener")
    notifier = Notifier.from_env({"NOTIFY_SOCKET": listener.env_value})
    assert notifier.enabled

    assert notifier.ready(status="recording pipeline healthy")
    assert notifier.status("segment 3 open")
    assert notifier.watchdog()
    assert notifier.stopping()

    assert listener.recv() == {"READY": "1", "STATUS": "recording pipeline healthy"}
    assert listener.recv() == {"STATUS": "segment 3 open"}
    assert listener.recv() == {"WATCHDOG": "1"}
    assert listener.recv() == {"STOPPING": "1"}
    notifier.close()


def test_status_text_is_kept_on_one_line(path_listener: NotifyListener) -> None:
    """A multi-line status cannot inject extra fields such as a forged WATCHDOG=1."""
    notifier = Notifier(path_listener.env_value)
    notifier.status("camera stalled\nWATCHDOG=1")
    assert path_listener.recv() == {"STATUS": "camera stalled WATCHDOG=1"}


def test_extend_timeout_is_sent_in_microseconds(path_listener: NotifyListener) -> None:
    """EXTEND_TIMEOUT_USEC carries whole microseconds, as systemd parses it."""
    Notifier(path_listener.env_value).extend_timeout(2.5)
    assert path_listener.recv() == {"EXTEND_TIMEOUT_USEC": "2500000"}


def test_without_notify_socket_everything_is_a_quiet_no_op() -> None:
    """Outside systemd (bench, simulator) the calls succeed silently and report False."""
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s() is None


def test_watchdog_interval_is_half_the_timeout() -> None:
    """systemd advises pinging at half of WATCHDOG_USEC."""
    env = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(env).watchdog_interval_s() == 5.0
    assert Notifier.from_env({"WATCHDOG_USEC": "2000000"}).watchdog_interval_s() == 1.0


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    """A child that inherited WATCHDOG_USEC for its parent is not the watched process."""
    env = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_env(env).watchdog_interval_s() is None


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"NOTIFY_SOCKET": "vsock:2:1234"}, "NOTIFY_SOCKET"),
        ({"WATCHDOG_USEC": "ten seconds"}, "WATCHDOG_USEC"),
        ({"WATCHDOG_USEC": "0"}, "WATCHDOG_USEC"),
        ({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "me"}, "WATCHDOG_PID"),
    ],
)
def test_malformed_environment_names_the_variable(env: dict[str, str], key: str) -> None:
    """A service that cannot be supervised fails at start with the variable named."""
    with pytest.raises(ConfigError) as info:
        Notifier.from_env(env)
    assert info.value.key == key
    assert key in str(info.value)


def test_lines_that_are_not_fields_are_refused(path_listener: NotifyListener) -> None:
    """notify() rejects text that would not parse as NAME=value on the manager side."""
    notifier = Notifier(path_listener.env_value)
    with pytest.raises(ValueError, match="NAME=value"):
        notifier.notify("READY")
    with pytest.raises(ValueError, match="NAME=value"):
        notifier.notify("READY=1\nWATCHDOG=1")
    assert path_listener.drain() == []


def test_vanished_manager_is_reported_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Sending to a socket that is gone returns False and warns once per failure streak."""
    notifier = Notifier(str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING, logger="agent.sdnotify"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1
    assert "gone.sock" in failures[0].getMessage()


def test_delivery_resumes_when_the_manager_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a failure streak the next successful send is logged as a recovery."""
    path = tmp_path / "late.sock"
    notifier = Notifier(str(path))
    with caplog.at_level(logging.WARNING, logger="agent.sdnotify"):
        assert notifier.watchdog() is False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        try:
            assert notifier.watchdog() is True
            assert sock.recv(64) == b"WATCHDOG=1"
        finally:
            sock.close()
    assert any("delivered again" in r.getMessage() for r in caplog.records)


def test_closed_notifier_sends_nothing(path_listener: NotifyListener) -> None:
    """After close() calls are no-ops (shutdown ordering cannot crash the agent)."""
    notifier = Notifier(path_listener.env_value)
    notifier.close()
    assert notifier.watchdog() is False
    assert path_listener.drain() == []
