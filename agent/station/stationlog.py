"""The station's own evidence log: deletions, legal holds and exports witnessed, not only
recorded.

The index's ``deletions``, ``holds`` and ``events`` rows are the desk's working record, but an
index administrator can erase a row and nothing would show it. So every act that ends or
restricts custody — a retention deletion, a hold, a release, an export — is also appended to
an append-only Merkle log in ``<station data>/log/`` (the device's own :class:`EvidenceLog`
format: ``entries.bin`` + a signed C2SP ``checkpoint``), signed by the station's Ed25519 key
(the receipt key ``bodycam station info`` prints) under the origin
``bodycam-station/v1/<station_id>``. Removing or rewriting an entry changes every later
checkpoint; a checkpoint published or cosigned earlier then no longer matches, and
``bodycam proof`` (:mod:`agent.evidence.proof`) proves any entry's inclusion offline.

An entry is appended *before* the act's files are touched (a deletion that cannot be logged
deletes nothing). Station processes share the log through a blocking lock on
``log.lock``, waited for at most :data:`LOCK_WAIT_S`; each append opens, appends (fsynced,
checkpoint re-signed) and closes, so no process keeps the log open.

Witnesses (:mod:`.custodywitness`) learn of an append in this process through
:meth:`StationLog.subscribe`: the listener gets the new signed checkpoint after the lock is
released and may only queue it, so no custody act ever waits on a witness.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog
from hw.errors import EvidenceError

__all__ = ["LOCK_WAIT_S", "STATION_LOG_DIR", "StationLog", "station_log_origin"]

_log = logging.getLogger("bodycam.station")

STATION_LOG_DIR = "log"
ORIGIN_PREFIX = "bodycam-station/v1/"
LOCK_WAIT_S = 10.0


def station_log_origin(station_id: str) -> str:
    """The checkpoint origin (and signed-note key name) of a station's log."""
    if not station_id or any(c in station_id for c in " +\n/"):
        raise ValueError(f"station id {station_id!r} unusable in a log origin")
    return ORIGIN_PREFIX + station_id


class StationLog:
    """Append custody acts to the station's log (see the module docstring)."""

    def __init__(self, data_dir: Path, station_id: str, key: DeviceKey) -> None:
        self.directory = Path(data_dir) / STATION_LOG_DIR
        self.station_id = station_id
        self.origin = station_log_origin(station_id)
        self._key = key
        self._lockfile = Path(data_dir) / "log.lock"
        self._listeners: list[Callable[[bytes], None]] = []

    def subscribe(self, listener: Callable[[bytes], None]) -> None:
        """Call ``listener(signed checkpoint)`` after every append made through this object.
        It runs on the appending thread once the act is logged; an exception from it is logged
        and never fails the append."""
        self._listeners.append(listener)

    def append(self, kind: str, fields: Mapping[str, Any]) -> int:
        """Durably append one entry ``{"kind", "station_id", **fields}``; its leaf index.
        :class:`EvidenceError` (or OSError) if it could not be logged: the caller must then not
        perform the act."""
        entry = {**fields, "kind": kind, "station_id": self.station_id}
        self._lockfile.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lockfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EvidenceError(f"{self.directory}: the station log stayed locked "
                                            f"by another process for {LOCK_WAIT_S:.0f} s") from None
                    time.sleep(0.02)
            with EvidenceLog(self.directory, self._key, self.origin) as log:
                result = log.append(entry)
        finally:
            os.close(fd)  # releases the lock
        for listener in self._listeners:
            try:
                listener(result.checkpoint)
            except Exception:  # the act is logged; a witness hiccup must not undo it
                _log.exception("a station log listener failed; entry %d is logged regardless",
                               result.index)
        return result.index
