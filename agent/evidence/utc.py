"""UTC instants as evidence text: the one formatter and the one parser of the product.

Evidence carries times as ISO 8601 UTC strings ending in ``Z`` — manifests' ``start``/``end``
(microseconds), GPS track positions (milliseconds), receipts and station records
(microseconds), messages and records meant for people (whole seconds). The bytes of those
strings are part of signed evidence, so every place formats through :func:`iso_utc` with the
precision it has always used, and a later change of one format is a change in one place.

Precision is ``places`` digits of the second: 0, 3 or 6. Extra digits are *truncated*, never
rounded: ``…59.9999996`` must not become the next second (or the next day) in evidence.
A naive ``datetime`` is refused: it says nothing of its zone, and taking it for local time (what
``astimezone`` would do) or for UTC would both be guesses in a court record.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["PLACES", "iso_from_epoch_us", "iso_utc", "parse_utc", "utc_now"]

PLACES: Final = (0, 3, 6)
_TIMESPEC: Final = {0: "seconds", 3: "milliseconds", 6: "microseconds"}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def iso_utc(moment: datetime, places: int = 6) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z`` of an aware ``moment``, converted to UTC.

    ValueError for a naive ``moment`` or ``places`` other than 0, 3 or 6.
    """
    spec = _TIMESPEC.get(places)
    if spec is None:
        raise ValueError(f"places must be one of {PLACES}, got {places!r}")
    if moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: evidence times must be aware")
    # isoformat truncates to ``timespec`` and always writes four year digits.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def iso_from_epoch_us(us: int, places: int = 6) -> str:
    """:func:`iso_utc` of ``us`` microseconds since the Unix epoch, exactly (no float).

    OverflowError outside years 1..9999.
    """
    return iso_utc(_EPOCH + timedelta(microseconds=us), places)


def utc_now(places: int = 6) -> str:
    """The system clock's UTC now, truncated to ``places``."""
    return iso_from_epoch_us(time.time_ns() // 1000, places)


_FORMS: Final = ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str, *, allow_date: bool = False) -> datetime:
    """An aware UTC ``datetime`` from ``YYYY-MM-DDTHH:MM:SS[.f]Z`` (1 to 6 fraction digits).

    With ``allow_date``, ``YYYY-MM-DD`` too (midnight UTC; what a person types on a command
    line). ValueError for anything else: no offsets and no local times — evidence time is UTC.
    """
    for fmt in (*_FORMS, "%Y-%m-%d") if allow_date else _FORMS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    forms = "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ" if allow_date else "YYYY-MM-DDTHH:MM:SS[.f]Z"
    raise ValueError(f"{text!r} is not a UTC time ({forms})")
