"""Exact, strict conversions of NMEA 0183 fields.

pynmea2 splits sentences well but, on a malformed field, returns the raw string instead of
raising, and turns fractional seconds into microseconds through a float (``.123`` becomes
122999 µs). Evidence needs better: these helpers return None for anything malformed or out
of range, and keep time exact with integer arithmetic.
"""

from __future__ import annotations

import math
from datetime import UTC, date, time

__all__ = ["coordinate", "ddmmyy", "digits_int", "finite_float", "time_of_day", "zda_date"]


def time_of_day(text: str) -> time | None:
    """``hhmmss[.f…]`` to a time with exact microseconds; None if malformed or a leap second."""
    if len(text) < 6 or not text[:6].isdigit():
        return None
    hh, mm, ss = int(text[0:2]), int(text[2:4]), int(text[4:6])
    frac = text[6:]
    micros = 0
    if frac:
        digits = frac[1:]
        if frac[0] != "." or (digits and not digits.isdigit()):
            return None
        micros = int((digits + "000000")[:6]) if digits else 0
    if hh > 23 or mm > 59 or ss > 59:
        return None
    return time(hh, mm, ss, micros, tzinfo=UTC)


def ddmmyy(text: str) -> date | None:
    if len(text) != 6 or not text.isdigit():
        return None
    yy = int(text[4:6])
    year = 2000 + yy if yy < 80 else 1900 + yy  # GPS time begins in 1980
    try:
        return date(year, int(text[2:4]), int(text[0:2]))
    except ValueError:
        return None


def zda_date(day: str, month: str, year: str) -> date | None:
    if not (day.isdigit() and month.isdigit() and year.isdigit() and len(year) == 4):
        return None
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None


def coordinate(value: str, hemisphere: str, degree_digits: int) -> float | None:
    """``(d)ddmm.mmmm`` + hemisphere to signed degrees; None if absent or out of range."""
    positive = "N" if degree_digits == 2 else "E"
    negative = "S" if degree_digits == 2 else "W"
    if hemisphere not in (positive, negative):
        return None
    whole, _, frac = value.partition(".")
    if len(whole) != degree_digits + 2 or not whole.isdigit() or (frac and not frac.isdigit()):
        return None
    degrees = int(whole[:degree_digits])
    minutes = float(f"{whole[degree_digits:]}.{frac or '0'}")
    limit = 90 if degree_digits == 2 else 180
    if minutes >= 60.0 or degrees + minutes / 60.0 > limit:
        return None
    result = degrees + minutes / 60.0
    return -result if hemisphere == negative else result


def finite_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def digits_int(text: str) -> int | None:
    return int(text) if text.isdigit() else None
