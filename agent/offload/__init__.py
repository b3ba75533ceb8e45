"""Offload: sealed (and, in live mode, open) segments leave the device for a collection
station; the station's signed receipts come back into the evidence log.

One job per module: :mod:`.backlog` (what is still owed, read from the log), :mod:`.book`
(upload URLs that survive a restart), :mod:`.rotation_handover` (the device's key rotations
handed to the station before what the new key signs), :mod:`.pacing` (rate cap, back-off, yielding to the
camera), :mod:`.uploader` (the thread that does the work, sealed and live), :mod:`.wiring`
(built from ``[offload]``), :mod:`.loopback` (a station on loopback for the simulator:
``bodycam run --hw sim --with-station``).
"""

from .backlog import Backlog, PendingSegment
from .book import UploadBook
from .pacing import Backoff, PressureGauge, RateLimiter
from .uploader import Offloader, OffloadStatus

__all__ = [
           "Backlog",
           "Backoff",
           "OffloadStatus",
           "Offloader",
           "PendingSegment",
           "PressureGauge",
           "RateLimiter",
           "UploadBook",
]
