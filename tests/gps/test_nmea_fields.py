"""NMEA field conversions: exact time, strict coordinates, dates across centuries."""

from __future__ import annotations

from datetime import UTC, date, time

import pytest

from hw.gps_fields import coordinate, ddmmyy, digits_int, finite_float, time_of_day, zda_date


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("030719.123", time(3, 7, 19, 123000, tzinfo=UTC)),  # pynmea2 gives 122999 µs
        ("235959.999999", time(23, 59, 59, 999999, tzinfo=UTC)),
        ("120000", time(12, 0, 0, tzinfo=UTC)),
        ("120000.", time(12, 0, 0, tzinfo=UTC)),
        ("235960.00", None),  # leap second: no datetime can hold it; the epoch is dropped
        ("246000", None), ("12a000", None), ("1200", None), ("120000.1x", None), ("", None),
    ],
)
def test_time_of_day_is_exact_or_none(text: str, expected: time | None) -> None:
    """Fractional seconds are kept exactly; anything malformed is None."""
    assert time_of_day(text) == expected


def test_dates() -> None:
    """Two-digit years map into 1980–2079 (GPS time starts in 1980); ZDA has four digits."""
    assert ddmmyy("311214") == date(2014, 12, 31)
    assert ddmmyy("010180") == date(1980, 1, 1)
    assert ddmmyy("310299") is None and ddmmyy("31129") is None
    assert zda_date("25", "02", "2015") == date(2015, 2, 25)
    assert zda_date("25", "02", "15") is None and zda_date("", "02", "2015") is None


@pytest.mark.parametrize(
    ("value", "hemi", "digits", "expected"),
    [
        ("3747.0873", "S", 2, -(37 + 47.0873 / 60)),
        ("17518.8938", "E", 3, 175 + 18.8938 / 60),
        ("09345.03351845", "W", 3, -(93 + 45.03351845 / 60)),
        ("4134", "N", 2, 41 + 34 / 60),
        ("3747.0873", "E", 2, None),   # wrong hemisphere letter for a latitude
        ("3747.0873", "", 2, None),
        ("9100.0000", "N", 2, None),   # beyond the pole
        ("3760.0000", "N", 2, None),   # 60 minutes
        ("374.70873", "N", 2, None),   # misplaced point
        ("-347.0873", "N", 2, None),
    ],
)
def test_coordinates_are_strict(
    value: str, hemi: str, digits: int, expected: float | None
) -> None:
    """Coordinates convert exactly as gpsd does, and malformed ones are refused."""
    result = coordinate(value, hemi, digits)
    assert result == (pytest.approx(expected, abs=1e-12) if expected is not None else None)


def test_numbers() -> None:
    """Non-finite or malformed numbers are None."""
    assert finite_float("1.5") == 1.5
    assert finite_float("nan") is None and finite_float("inf") is None and finite_float("") is None
    assert digits_int("08") == 8 and digits_int("-1") is None and digits_int("") is None
