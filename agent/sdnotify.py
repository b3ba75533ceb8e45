"""The systemd service-manager notification protocol (``sd_notify``), in plain sockets.

On the device the agent runs as ``Type=notify`` with ``WatchdogSec=``: systemd considers it
started only when it says ``READY=1``, and restarts it when ``WATCHDOG=1`` stops arriving.
That restart is the last line of defence against a camera that stalls silently, so the
protocol is implemented here without a dependency (libsystemd's bindings are not on PyPI
for every platform) and with the failure modes made visible:

* ``NOTIFY_SOCKET`` names an ``AF_UNIX`` datagram socket, either a filesystem path or an
  abstract name written with a leading ``@``. Unset means "not run by systemd" (a bench, a
  test, the simulator): every call is then a no-op that reports ``False``.
* ``WATCHDOG_USEC`` is the watchdog timeout; ``WATCHDOG_PID``, when set, names the process
  it is meant for, so a child that inherited the environment does not believe it is watched.
  systemd's advice is to ping at half the timeout; :meth:`Notifier.watchdog_interval_s`
  returns that half.
* A datagram that cannot be delivered is logged as a warning (once per failure streak, so a
  vanished manager does not flood the journal) and reported as ``False``. It never raises:
  the recorder must keep recording even if its supervisor went away.

Locking: one :class:`Notifier` is shared by the controller thread (``ready``, ``stopping``)
and the health timer thread (``watchdog``, ``status``). Each notification is one
``sendto`` of one datagram, which the kernel delivers whole; ``_lock`` only guards the
failure-streak flag used to rate-limit warnings.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

from hw.errors import ConfigError

__all__ = ["Notifier"]

_log = logging.getLogger(__name__)

# A stuck service manager must not stall the caller (the health timer thread) for long; a
# missed ping is then reported and the next tick tries again.
_SEND_TIMEOUT_S = 1.0


class Notifier:
    """Sends service-manager notifications to one ``NOTIFY_SOCKET`` address, or nowhere."""

    def __init__(self, address: str | None = None, *, watchdog_usec: int | None = None) -> None:
        """Notify ``address`` (a path, or ``@name`` for an abstract socket); ``None`` = no-op.

        ``watchdog_usec`` is the service's watchdog timeout as systemd passes it, already
        checked to be meant for this process; :meth:`from_env` works both out.
        """
        if address is not None and not address:
            raise ConfigError("must not be empty", key="NOTIFY_SOCKET")
        if address is not None and not address.startswith(("/", "@")):
            # systemd 254+ may also pass "vsock:" addresses for virtual machines; the
            # recorder runs on bare metal, so anything else is a misconfiguration.
            raise ConfigError(
                f"{address!r} is neither a socket path nor an abstract '@' name",
                key="NOTIFY_SOCKET",
            )
        if watchdog_usec is not None and watchdog_usec <= 0:
            raise ConfigError(f"{watchdog_usec} is not a positive timeout", key="WATCHDOG_USEC")
        self._address = address
        self._target = None if address is None else _kernel_address(address)
        self._watchdog_usec = watchdog_usec
        self._lock = threading.Lock()
        self._failing = False  # guarded by _lock
        self._sock: socket.socket | None = None
        if self._target is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.settimeout(_SEND_TIMEOUT_S)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd set up for this process, or a no-op one outside systemd.

        Raises :class:`~hw.errors.ConfigError` when the variables are present but
        malformed: a service that cannot be supervised should fail loudly at start.
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        return cls(address, watchdog_usec=_watchdog_usec_for_this_process(env))

    # --- what the service says ----------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """Whether notifications go anywhere (``NOTIFY_SOCKET`` was set)."""
        return self._sock is not None

    @property
    def address(self) -> str | None:
        """The ``NOTIFY_SOCKET`` value in use, as written in the environment."""
        return self._address

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete: the recording pipeline runs (``READY=1``)."""
        return self.notify("READY=1", *_status_line(status))

    def status(self, text: str) -> bool:
        """A one-line, human-readable state shown by ``systemctl status`` (``STATUS=``)."""
        return self.notify(*_status_line(text))

    def watchdog(self, status: str | None = None) -> bool:
        """The service is healthy right now (``WATCHDOG=1``); optionally with a status line."""
        return self.notify("WATCHDOG=1", *_status_line(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun (``STOPPING=1``): sealing the open segment may take a while."""
        return self.notify("STOPPING=1", *_status_line(status))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the start/stop timeout fires (``EXTEND_TIMEOUT_USEC``).

        Useful while a long seal of an open segment is still making progress at shutdown.
        """
        if seconds <= 0:
            raise ValueError(f"extend_timeout needs a positive duration, got {seconds}")
        return self.notify(f"EXTEND_TIMEOUT_USEC={round(seconds * 1_000_000)}")

    def watchdog_interval_s(self) -> float | None:
        """How often to send ``WATCHDOG=1``: half the timeout, or ``None`` if not watched."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; ``True`` if the manager got it.

        Each line is ``NAME=value`` with no newline inside. Returns ``False`` without
        sending when notifications are disabled.
        """
        for line in lines:
            if "=" not in line or "\n" in line:
                raise ValueError(f"not a single NAME=value notification line: {line!r}")
        if self._sock is None or self._target is None or not lines:
            return False
        payload = "\n".join(lines).encode("utf-8")
        try:
            self._sock.sendto(payload, self._target)
        except OSError as exc:
            self._note_failure(exc)
            return False
        self._note_success()
        return True

    def close(self) -> None:
        """Release the socket; later notifications are no-ops."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        return f"Notifier(address={self._address!r}, watchdog_usec={self._watchdog_usec!r})"

    # --- internals ----------------------------------------------------------------------------
    def _note_failure(self, exc: OSError) -> None:
        with self._lock:
            first, self._failing = not self._failing, True
        if first:
            _log.warning(
                "service manager notification to %s failed: %s; the systemd watchdog will "
                "restart the agent if this persists",
                self._address,
                exc,
            )

    def _note_success(self) -> None:
        with self._lock:
            recovered, self._failing = self._failing, False
        if recovered:
            _log.warning("service manager notifications to %s delivered again", self._address)


def _kernel_address(address: str) -> str:
    """``@name`` is written for the abstract namespace, which the kernel spells ``\\0name``."""
    if address.startswith("@"):
        return "\0" + address[1:]
    return address


def _status_line(text: str | None) -> tuple[str, ...]:
    """``STATUS=`` must be one line; newlines would end the field and start garbage ones."""
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.splitlines()).strip(),)


def _watchdog_usec_for_this_process(env: Mapping[str, str]) -> int | None:
    raw_usec = env.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    raw_pid = env.get("WATCHDOG_PID")
    if raw_pid:
        try:
            pid = int(raw_pid)
        except ValueError:
            raise ConfigError(f"{raw_pid!r} is not a process id", key="WATCHDOG_PID") from None
        if pid != os.getpid():
            return None  # inherited from a parent that is the one being watched
    try:
        usec = int(raw_usec)
    except ValueError:
        raise ConfigError(f"{raw_usec!r} is not a whole number", key="WATCHDOG_USEC") from None
    if usec <= 0:
        raise ConfigError(f"{usec} is not a positive timeout", key="WATCHDOG_USEC")
    return usec
