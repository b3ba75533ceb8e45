"""A stand-in for systemd's notification socket, shared by the image tests."""

from __future__ import annotations

import socket

__all__ = ["NotifyListener"]


class NotifyListener:
    """Receives sd_notify datagrams the way the service manager does and keeps them in order."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value  # what NOTIFY_SOCKET must say to reach this socket
        self.received: list[dict[str, str]] = []

    def recv(self, timeout: float = 5.0) -> dict[str, str]:
        """The next datagram, parsed into its NAME=value fields."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        fields = dict(line.split("=", 1) for line in data.decode("utf-8").split("\n") if line)
        self.received.append(fields)
        return fields

    def drain(self) -> list[dict[str, str]]:
        """Everything already queued, without waiting."""
        out: list[dict[str, str]] = []
        while True:
            try:
                out.append(self.recv(timeout=0.0))
            except (BlockingIOError, TimeoutError):
                return out
