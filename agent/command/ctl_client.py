"""The client side of the control socket: what ``bodycam ctl`` runs, and nothing more.

``bodycam ctl`` is started many times (status LEDs, bench scripts, health probes) and must cost
little more than the interpreter itself, on a Pi Zero too: this module imports only ``os``,
``_socket`` and ``json`` (no ``typing``, ``logging``, ``threading`` at run time) -- the C
socket module, not ``socket``, whose enums and ``selectors`` cost more than the rest of the
client -- and reads the ``ctl`` command line itself (:func:`parse_ctl_argv`), so that the
common invocation never imports ``argparse``. The server, which may be heavier, is
:mod:`agent.command.ctl_server`; the wire format is described there.
"""

from __future__ import annotations

import _socket
import json
import os
from pathlib import Path  # agent.cli has loaded it already

from hw.errors import BodycamError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (startup time)
if TYPE_CHECKING:
    import socket
    from typing import Any

__all__ = ["CtlArgs", "CtlDenied", "CtlUnavailable", "ctl_request", "parse_ctl_argv", "read_line",
           "socket_path", "unix_address"]

MAX_REQUEST = 64 * 1024
_SUN_PATH_MAX = 107  # sockaddr_un's sun_path: 108 bytes with the closing NUL


class CtlUnavailable(BodycamError, ConnectionError):
    """No agent is listening on the control socket."""


class CtlDenied(BodycamError, PermissionError):
    """This user may not use the control socket (it is the agent's user's and root's only)."""


def socket_path(data_dir: Path) -> Path:
    """Where the agent listens, for a given data directory."""
    return Path(data_dir) / "ctl.sock"


def read_line(conn: socket.socket | _socket.socket) -> bytes:
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


def unix_address(path: Path) -> tuple[str, int]:
    """The address to bind or connect the socket file ``path`` by, and a descriptor to close
    after that call (-1: none). A path longer than ``sockaddr_un`` holds (a data directory
    deep in a file system) is reached through its folder's descriptor,
    ``/proc/self/fd/<fd>/<name>``, which Linux resolves as the folder itself: a long
    ``--data-dir`` must not stop the agent with "AF_UNIX path too long"."""
    text = str(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX:
        return text, -1
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{path.name}", fd


def ctl_request(
    data_dir: Path, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 30.0,
    path: Path | None = None,
) -> dict[str, Any]:
    """Send one request to the agent of ``data_dir`` and return its reply object."""
    target = path or socket_path(data_dir)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        fd = -1
        try:
            address, fd = unix_address(target)
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
            raise CtlUnavailable(
                f"no agent is running for {data_dir} ({target}: {exc.strerror})") from exc
        except PermissionError:
            raise CtlDenied(f"{target}: permission denied. The control socket is mode 0600: "
                            f"only {_admitted(target)} may drive the recorder; run bodycam ctl "
                            "as the agent's user or with sudo") from None
        finally:
            if fd >= 0:
                os.close(fd)
        sock.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        raw = read_line(sock)
    finally:
        sock.close()
    if not raw:
        raise CtlUnavailable(f"the agent at {target} closed the connection without answering")
    reply: dict[str, Any] = json.loads(raw)
    return reply


class CtlArgs:
    """A ``bodycam ctl`` command line, read: what argparse's ``ctl`` parser would give."""

    __slots__ = ("action", "data_dir", "params", "timeout")

    def __init__(self, action: str, params: list[str], data_dir: Path | None,
                 timeout: float) -> None:
        self.action, self.params, self.data_dir, self.timeout = action, params, data_dir, timeout


_OPTIONS = ("--data-dir", "--timeout")


def parse_ctl_argv(argv: list[str]) -> CtlArgs | None:
    """The arguments after ``ctl`` read without argparse (~40 % of a ``bodycam ctl`` start
    beyond the interpreter's), or ``None`` for anything but the plain form -- ``ACTION
    [PARAMS...]`` with ``--data-dir DIR`` / ``--timeout S`` (also ``--opt=value``) before or
    after them: help, an unknown or abbreviated option, a missing value, a bad number, options
    between the parameters. argparse then reads it, so its help and its errors are unchanged."""
    values: dict[str, str] = {}
    positional: list[str] = []
    ended = False  # the run of positionals is over (an option came after it)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if name not in _OPTIONS:
                return None
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                i += 1
                value = argv[i]
            values[name] = value
            ended = bool(positional)
        elif ended:
            return None
        else:
            positional.append(arg)
        i += 1
    if not positional:
        return None
    try:
        timeout = float(values.get("--timeout", "30"))
    except ValueError:
        return None
    data_dir = values.get("--data-dir")
    return CtlArgs(positional[0], positional[1:], Path(data_dir) if data_dir is not None else None,
                   timeout)
