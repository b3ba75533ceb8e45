"""The one UTC formatter and parser: precisions, truncation, zones, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.evidence.utc import iso_from_epoch_us, iso_utc, parse_utc, utc_now

EDGE = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(("places", "text"), [
    (6, "2026-12-31T23:59:59.999999Z"),
    (3, "2026-12-31T23:59:59.999Z"),
    (0, "2026-12-31T23:59:59Z"),
])
def test_extra_digits_are_truncated_never_rounded_into_the_next_year(places: int,
                                                                     text: str) -> None:
    """The last microsecond of a year stays in that year at every precision."""
    assert iso_utc(EDGE, places) == text


def test_zero_fraction_is_written_in_full() -> None:
    """A whole second still has all its places: the width of a field never varies."""
    moment = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
    assert iso_utc(moment) == "2026-03-01T08:00:00.000000Z"
    assert iso_utc(moment, 3) == "2026-03-01T08:00:00.000Z"
    assert iso_utc(moment.replace(microsecond=1500), 3) == "2026-03-01T08:00:00.001Z"


def test_an_instant_in_another_zone_is_converted_to_utc() -> None:
    """09:30 at +08:00 is 01:30 Z (the day before when it crosses midnight)."""
    china = timezone(timedelta(hours=8))
    assert iso_utc(datetime(2026, 3, 1, 9, 30, 0, 250, tzinfo=china)) == \
        "2026-03-01T01:30:00.000250Z"
    assert iso_utc(datetime(2026, 3, 1, 5, 0, tzinfo=china), 0) == "2026-02-28T21:00:00Z"


def test_naive_times_and_other_precisions_are_refused() -> None:
    """A naive datetime is no evidence time; 1, 2, 9 places are no format of the product."""
    with pytest.raises(ValueError, match="time zone"):
        iso_utc(datetime(2026, 3, 1, 8, 0, 0))
    for places in (1, 2, 9, -1):
        with pytest.raises(ValueError, match="places"):
            iso_utc(EDGE, places)


def test_epoch_microseconds_are_exact_where_a_float_would_not_be() -> None:
    """Integer µs since the epoch map to the same µs (a float of seconds loses them)."""
    us = 1_798_761_599_999_999  # 2026-12-31T23:59:59.999999Z
    assert iso_from_epoch_us(us) == "2026-12-31T23:59:59.999999Z"
    assert iso_from_epoch_us(us, 0) == "2026-12-31T23:59:59Z"
    assert iso_from_epoch_us(0, 3) == "1970-01-01T00:00:00.000Z"
    assert iso_from_epoch_us(-1) == "1969-12-31T23:59:59.999999Z"


def test_now_has_the_shape_asked_for() -> None:
    """``utc_now`` writes the same shapes as ``iso_utc`` (its value is the clock's)."""
    assert len(utc_now()) == len("2026-03-01T08:00:00.000000Z") and utc_now().endswith("Z")
    assert len(utc_now(0)) == len("2026-03-01T08:00:00Z")
    parse_utc(utc_now())  # round-trips


@pytest.mark.parametrize("places", [0, 3, 6])
def test_every_format_parses_back_to_the_truncated_instant(places: int) -> None:
    """Format then parse gives the instant truncated to the precision written."""
    back = parse_utc(iso_utc(EDGE, places))
    assert back.tzinfo is UTC
    assert back == EDGE.replace(microsecond=EDGE.microsecond // 10 ** (6 - places)
                                * 10 ** (6 - places))


def test_parse_refuses_offsets_local_times_and_dates_unless_asked() -> None:
    """Only ``Z`` times are evidence times; a bare date is a command-line convenience."""
    for text in ("2026-03-01T08:00:00+00:00", "2026-03-01T08:00:00", "2026-03-01 08:00:00Z",
                 "2026-03-01T08:00:00.1234567Z", "yesterday", ""):
        with pytest.raises(ValueError, match="not a UTC time"):
            parse_utc(text)
    with pytest.raises(ValueError, match="not a UTC time"):
        parse_utc("2026-03-01")
    assert parse_utc("2026-03-01", allow_date=True) == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_utc("2026-03-01T08:00:00.5Z") == datetime(2026, 3, 1, 8, 0, 0, 500000,
                                                           tzinfo=UTC)
