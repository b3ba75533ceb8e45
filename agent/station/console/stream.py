"""Server-Sent Events: the fleet's changes pushed to every open console page.

Messages from the feed are folded into :class:`~.fleetstate.FleetState` as they arrive; the
units they changed are collected and sent every ``interval_s`` as one ``rows`` event (at
1,000 units reporting once a minute that is a handful of rows per batch). An alarm is also
sent at once as an ``alarm`` event, an acknowledgement as ``ack``.

Each page has a bounded queue; a page that cannot keep up is dropped (its EventSource
reconnects and gets a fresh snapshot) rather than letting the station's memory grow.

Threading: event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Final

from .fleetstate import FleetState

__all__ = ["Hub", "sse"]

_QUEUE: Final = 256


def sse(event: str, data: Any) -> bytes:
    """One SSE message (JSON data on one line)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Hub:
    """The fleet state, its dirty units and the open pages."""

    def __init__(self, *, interval_s: float = 0.2,
                 on_ack: Callable[[dict[str, Any], str], Any] | None = None) -> None:
        self.fleet = FleetState()
        self.interval_s = interval_s
        self._dirty: set[str] = set()
        self._pages: set[asyncio.Queue[bytes | None]] = set()
        self._on_ack = on_ack
        self.batches = 0

    def ingest(self, topic: str, payload: bytes) -> None:
        """Fold one MQTT message in (called on the loop by the feed)."""
        if topic.endswith("/ack") and "/cmd/" in topic:
            self._ack(topic, payload)
            return
        changed = self.fleet.apply(topic, payload, time.time())
        if changed is None:
            return
        device_id, kind = changed
        self._dirty.add(device_id)
        if kind == "alarm":
            unit = self.fleet.units[device_id]
            self.broadcast(sse("alarm", {"device_id": device_id, **unit.alarms[-1]}))

    def _ack(self, topic: str, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        if isinstance(doc, dict) and self._on_ack is not None:
            self._on_ack(doc, topic.split("/")[2])

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        """A new page's queue, primed with the whole fleet."""
        q: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE)
        q.put_nowait(sse("snapshot", self.fleet.rows(time.time())))
        self._pages.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[bytes | None]) -> None:
        """A page went away."""
        self._pages.discard(q)

    def broadcast(self, message: bytes) -> None:
        """Queue one message for every page; a full page is closed."""
        for q in list(self._pages):
            try:
                q.put_nowait(message)
            except asyncio.QueueFull:
                self._pages.discard(q)
                q.get_nowait()
                q.put_nowait(None)  # the page's handler ends the response

    def flush(self) -> None:
        """Send the rows that changed since the last flush."""
        if not self._dirty:
            return
        now = time.time()
        units = self.fleet.units
        rows = [units[d].row(now) for d in sorted(self._dirty) if d in units]
        self._dirty.clear()
        self.batches += 1
        self.broadcast(sse("rows", rows))

    async def run(self) -> None:
        """Flush forever."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.flush()

    def close(self) -> None:
        """End every page's stream."""
        for q in list(self._pages):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)
        self._pages.clear()
