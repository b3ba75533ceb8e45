"""Local control socket: ``bodycam ctl`` talks to a running agent.

One JSON object per connection, newline-terminated, each way::

    → {"cmd": "status", "args": {}}
    ← {"ok": true, "result": {...}}      or      {"ok": false, "error": "why"}

The socket lives in the data directory with mode 0600: on a device only root and the agent's
own user may drive the recorder; a lab bench runs as that user. Requests are handed to the
controller as :class:`agent.recording.controller.Request` objects, so a ``ctl press`` goes through the
same state machine as the physical button. The caller's uid and pid, read from the socket
itself (``SO_PEERCRED``, which the client cannot forge), are passed with each request: they are
the origin the evidence log records for a command given over ``bodycam ctl``.

The client (``ctl_request``, ``socket_path`` and the errors) lives in :mod:`agent.command.ctl_client`,
which ``bodycam ctl`` imports alone so that it starts fast; they are re-exported here.

Threading: one accept thread; each connection is served on a short-lived thread so a slow
client cannot block the others. Nothing here touches recorder state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.command.ctl_client import (
    CtlDenied,
    CtlUnavailable,
    ctl_request,
    read_line,
    socket_path,
    unix_address,
)
from hw.errors import BodycamError

__all__ = ["CtlDenied", "CtlServer", "CtlUnavailable", "ctl_request", "peer_credentials",
           "socket_path"]

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


Responder = Callable[[str, dict[str, Any], dict[str, int]], dict[str, Any]]


def peer_credentials(conn: socket.socket) -> dict[str, int]:
    """``{"uid": …, "pid": …}`` of the process at the other end of a Unix socket."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, _gid = _UCRED.unpack(raw)
    return {"uid": uid, "pid": pid}


class CtlServer:
    """Accepts control requests and answers them through ``respond``."""

    def __init__(self, path: Path, respond: Responder) -> None:
        self.path = Path(path)
        self._respond = respond
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Bind (replacing a stale socket of a dead agent) and start accepting."""
        if self.path.exists():
            try:
                ctl_request(self.path.parent, "ping", timeout=1.0, path=self.path)
            except CtlUnavailable:
                self.path.unlink()  # a socket file left by a killed agent
            else:
                raise BodycamError(f"another agent is already running on {self.path}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        address, fd = unix_address(self.path)
        try:
            sock.bind(address)
        finally:
            os.umask(old)
            if fd >= 0:
                os.close(fd)
        sock.listen(8)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, name="ctl", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and remove the socket file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                peer = peer_credentials(conn)
                raw = read_line(conn)
                reply = self._answer(raw, peer)
            except (OSError, ValueError) as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply, ensure_ascii=False).encode() + b"\n")

    def _answer(self, raw: bytes, peer: dict[str, int]) -> dict[str, Any]:
        try:
            msg = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": f"request is not JSON: {exc}"}
        if not isinstance(msg, dict) or not isinstance(msg.get("cmd"), str):
            return {"ok": False, "error": 'request must be {"cmd": "<name>", "args": {...}}'}
        args = msg.get("args", {})
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        if msg["cmd"] == "ping":
            return {"ok": True, "result": {"pong": True}}
        try:
            return self._respond(msg["cmd"], args, peer)
        except Exception as exc:  # the socket must answer whatever went wrong inside
            log.exception("ctl %s failed", msg["cmd"])
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
