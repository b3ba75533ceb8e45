"""Command acknowledgements waiting for the broker: sent once, resent after a reconnect.

Acks are not evidence, so they do not go through the durable outbox (where they would wait
behind a backlog of manifests); but an ack lost with a dropped connection would leave the back
office guessing, so each is kept in memory until its PUBACK and sent again on every new
connection. The queue is bounded: past ``limit`` the oldest unconfirmed ack is dropped (and
logged) rather than letting a command flood grow memory without bound.

Locking: every method takes ``self._lock``; ``add`` is called from any thread (the controller
finishing a command), the others from the link thread.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

__all__ = ["AckQueue"]

_log = logging.getLogger(__name__)


class AckQueue:
    """Pending ``(topic, payload)`` acks keyed by a serial number, oldest first."""

    def __init__(self, limit: int = 256) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._pending: OrderedDict[int, tuple[str, bytes]] = OrderedDict()
        self._unsent: list[int] = []
        self._serial = 0

    def add(self, topic: str, payload: bytes) -> None:
        """Queue an ack for the next send opportunity."""
        with self._lock:
            self._serial += 1
            self._pending[self._serial] = (topic, payload)
            self._unsent.append(self._serial)
            while len(self._pending) > self._limit:
                dropped, _ = self._pending.popitem(last=False)
                _log.warning("dropping unconfirmed command ack #%d (backlog full)", dropped)

    def take_unsent(self) -> list[tuple[int, str, bytes]]:
        """The acks not yet handed to the client, as ``(serial, topic, payload)``."""
        with self._lock:
            out = [(s, *self._pending[s]) for s in self._unsent if s in self._pending]
            self._unsent.clear()
            return out

    def resend_all(self) -> None:
        """A new connection: everything unconfirmed goes out again."""
        with self._lock:
            self._unsent = list(self._pending)

    def confirm(self, serial: int) -> None:
        """The broker acknowledged this ack."""
        with self._lock:
            self._pending.pop(serial, None)
