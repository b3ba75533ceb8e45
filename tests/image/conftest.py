"""Fixtures: real AF_UNIX datagram sockets to stand in for systemd's notification socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_listener import NotifyListener


def _bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[NotifyListener]:
    """A notification socket bound to a filesystem path."""
    path = str(tmp_path / "notify.sock")
    sock = _bound(path)
    try:
        yield NotifyListener(sock, path)
    finally:
        sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[NotifyListener]:
    """A notification socket in the abstract namespace (how systemd itself binds it)."""
    name = f"bodycam-test-notify-{os.getpid()}-{os.urandom(4).hex()}"
    sock = _bound("\0" + name)
    try:
        yield NotifyListener(sock, "@" + name)
    finally:
        sock.close()
