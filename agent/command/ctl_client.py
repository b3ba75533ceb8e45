"""The client side of the control socket: what ``bodycam ctl`` runs, and nothing more.

``bodycam ctl`` is started many times (status LEDs, bench scripts, health probes) and must cost
little more than the interpreter itself, on a Pi Zero too: this module imports only ``os``,
``socket`` and ``json`` (no ``typing``, ``logging``, ``threading`` at run time). The server,
which may be heavier, is :mod:`agent.command.ctl_server`; the wire format is described there.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path  # already loaded by the cli's argument types

from hw.errors import BodycamError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (startup time)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CtlDenied", "CtlUnavailable", "ctl_request", "read_line", "socket_path"]

MAX_REQUEST = 64 * 1024


class CtlUnavailable(BodycamError, ConnectionError):
    """No agent is listening on the control socket."""


class CtlDenied(BodycamError, PermissionError):
    """This user may not use the control socket (it is the agent's user's and root's only)."""


def socket_path(data_dir: Path) -> Path:
    """Where the agent listens, for a given data directory."""
    return Path(data_dir) / "ctl.sock"


def read_line(conn: socket.socket) -> bytes:
    """One newline-terminated message (at most :data:`MAX_REQUEST` bytes), without the newline."""
    buf = bytearray()
    while b"\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_REQUEST:
            raise ValueError(f"request larger than {MAX_REQUEST} bytes")
    return bytes(buf).split(b"\n", 1)[0]


def _admitted(path: Path) -> str:
    """Who the socket admits, as precisely as this user can tell."""
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return "the agent's user and root"
    if uid == 0:
        return "root"
    import pwd  # only on this error path

    try:
        name = repr(pwd.getpwuid(uid).pw_name)
    except KeyError:
        name = f"uid {uid}"
    return f"the agent's user ({name}) and root"


def ctl_request(
    data_dir: Path, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 30.0,
    path: Path | None = None,
) -> dict[str, Any]:
    """Send one request to the agent of ``data_dir`` and return its reply object."""
    target = path or socket_path(data_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(target))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise CtlUnavailable(f"no agent is running for {data_dir} ({target}: {exc.strerror})") from exc
    except PermissionError:
        sock.close()
        raise CtlDenied(f"{target}: permission denied. The control socket is mode 0600: only "
                        f"{_admitted(target)} may drive the recorder; run bodycam ctl as the "
                        "agent's user or with sudo") from None
    with sock:
        sock.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        raw = read_line(sock)
    if not raw:
        raise CtlUnavailable(f"the agent at {target} closed the connection without answering")
    reply: dict[str, Any] = json.loads(raw)
    return reply
