"""What the MQTT link's callers and its link thread share: one lock, its fields, the wake-up pipe.

:mod:`agent.sync.link` lets any thread hand it telemetry or a state snapshot and read its
stats, while one thread (``mqtt-link``) owns the paho client. Everything both sides touch is
here, behind one lock: the newest telemetry and state waiting to go, whether a connection is up
and its command subscription granted, the session number, and what the broker granted. The
wake-up pipe is here too, because a caller's update is only half done until the link thread,
asleep in ``select()``, has been told about it. Kept apart from the link so that the whole of
what is shared across threads, and how it is guarded, can be read on one screen: anything not
here is touched by the link thread only (or has its own lock: the Outbox, the ack queue).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.sync.session import BrokerGrant

__all__ = ["LinkShared", "LinkStats"]


@dataclass(frozen=True, slots=True)
class LinkStats:
    """A snapshot for telemetry and health checks."""

    outbox_depth: int
    connected: bool
    last_connect: datetime | None
    delivered: int
    faults: int
    session: int
    commands_ready: bool
    broker: BrokerGrant | None = None  # what the current (or last) connection was granted


class LinkShared:
    """The link's cross-thread state; every method may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._telemetry: bytes | None = None
        self._state: bytes | None = None
        self._state_dirty = False
        self._connected = False
        self._subscribed = False
        self._last_connect: datetime | None = None
        self._session = 0
        self._grant: BrokerGrant | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe_closed = False

    # --- the wake-up pipe ---------------------------------------------------------------------
    @property
    def wake_fd(self) -> int:
        """The pipe's read end, for the link thread's ``select()`` (drained by it)."""
        return self._wake_r

    def wake(self) -> None:
        """Make the link thread's ``select()`` return (a no-op once the pipe is closed)."""
        # A full pipe means the link thread is already awake.
        with self._lock, contextlib.suppress(BlockingIOError):
            if not self._pipe_closed:
                os.write(self._wake_w, b"\0")

    def close_pipe(self) -> None:
        """Close the pipe once the link thread is gone (a second call does nothing)."""
        with self._lock:
            if self._pipe_closed:
                return
            self._pipe_closed = True
        os.close(self._wake_r)
        os.close(self._wake_w)

    # --- callers' side ------------------------------------------------------------------------
    def put_telemetry(self, payload: bytes) -> None:
        """Replace the telemetry waiting to go (only the newest is kept) and wake the link."""
        with self._lock:
            self._telemetry = payload
        self.wake()

    def put_state(self, payload: bytes) -> None:
        """Replace the state snapshot and mark it to be (re)published; wake the link."""
        with self._lock:
            self._state = payload
            self._state_dirty = True
        self.wake()

    def stats(self, outbox_depth: Callable[[], int], delivered: int, faults: int) -> LinkStats:
        """A consistent snapshot of the shared fields with the given counters."""
        with self._lock:
            return LinkStats(
                outbox_depth=outbox_depth(),
                connected=self._connected,
                last_connect=self._last_connect,
                delivered=delivered,
                faults=faults,
                session=self._session,
                commands_ready=self._subscribed,
                broker=self._grant,
            )

    # --- link thread's side -------------------------------------------------------------------
    def take_unsent(self) -> tuple[bytes | None, bytes | None, BrokerGrant | None]:
        """Telemetry and state not yet published (each None if nothing new), and the grant
        to publish them under; both count as published from here on."""
        with self._lock:
            telemetry, self._telemetry = self._telemetry, None
            state = self._state if self._state_dirty else None
            self._state_dirty = False
            return telemetry, state, self._grant

    def begin_session(self, session: int) -> None:
        """A new connection attempt under this session number."""
        with self._lock:
            self._session = session

    def session(self) -> int:
        """The current (or last) session number."""
        with self._lock:
            return self._session

    def connected(self, grant: BrokerGrant) -> int:
        """The broker accepted the connection with ``grant``: up from now, the last state
        snapshot is due again on it. Returns the session number."""
        with self._lock:
            self._connected = True
            self._last_connect = datetime.now(UTC)
            self._state_dirty = self._state is not None
            self._grant = grant
            return self._session

    def subscribed(self, ok: bool) -> None:
        """Whether the command subscription was granted (commands can arrive)."""
        with self._lock:
            self._subscribed = ok

    def lost(self) -> None:
        """The connection is down (or being thrown away): no longer connected nor subscribed."""
        with self._lock:
            self._connected = False
            self._subscribed = False

    def is_connected(self) -> bool:
        """Whether a connection is up (CONNACK accepted, not lost since)."""
        with self._lock:
            return self._connected
