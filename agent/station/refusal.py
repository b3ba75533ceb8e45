"""What the station refuses, as one exception that knows its HTTP answer.

Every refusal carries a status, a stable machine-readable ``code`` (docs/STATION-API.md lists
them) and one sentence for a person. ``alarm`` marks a refusal that is evidence of tampering
(a forked or rolled-back log, different bytes under a stored segment): the server records it
in the index's ``alarms`` table and logs it at error, besides answering.
"""

from __future__ import annotations

from hw.errors import BodycamError

__all__ = ["Refused", "StationError"]


class StationError(BodycamError):
    """A collection-station failure that is not a refusal of one request (setup, storage)."""


class Refused(StationError):
    """A request the station will not honour; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str, *, alarm: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.alarm = alarm
        self.headers: dict[str, str] = {}  # e.g. the durable Upload-Offset after a cut body
