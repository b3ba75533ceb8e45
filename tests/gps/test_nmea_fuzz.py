"""Fuzzing the decoder: nothing escapes, and nothing unverified becomes a fix."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hw.gps import Fix
from hw.gps_nmea import NmeaDecoder
from hw.gps_sim import nmea_sentence

# Real sentences (gpsd regression captures, BSD-2-Clause) plus every kind we decode.
CORPUS: list[bytes] = [
    b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7D\r\n",
    b"$GPGSA,A,3,17,28,06,01,30,20,26,13,,,,,1.8,1.1,1.5*33\r\n",
    b"$GPRMC,030719.000,A,3747.0873,S,17518.8938,E,0.69,181.39,311214,,,A*7D\r\n",
    b"$GPGGA,030720.000,3747.0875,S,17518.8938,E,1,08,1.1,59.8,M,23.7,M,,0000*70\r\n",
    b"$GPRMC,030720.000,A,3747.0875,S,17518.8938,E,1.15,181.39,311214,,,A*7B\r\n",
    nmea_sentence("GNGNS,030721.00,3747.0876,S,17518.8934,E,AAN,10,0.9,60.1,23.7,,"),
    nmea_sentence("GBGSA,A,3,01,02,03,,,,,,,,,,1.6,0.9,1.3"),
    nmea_sentence("GNZDA,030721.00,31,12,2014,00,00"),
    nmea_sentence("GNVTG,181.4,T,,M,0.89,N,1.65,K,A"),
    nmea_sentence("GLGLL,3747.0876,S,17518.8934,E,030721.00,A,A"),
    nmea_sentence("GNRMC,030722.00,A,3747.0877,S,17518.8933,E,0.12,181.39,311214,,,A"),
]
CLEAN = b"".join(CORPUS)


def _decode(stream: bytes, chunk: int = 7) -> list[Fix]:
    decoder = NmeaDecoder()
    fixes: list[Fix] = []
    for i in range(0, len(stream), chunk):
        fixes += decoder.feed(stream[i : i + chunk], i)
    last = decoder.flush(len(stream))
    return fixes + ([last] if last else [])


def _checksum_holds(line: bytes) -> bool:
    """Independent oracle: does ``$body*HH`` carry the XOR of its body?"""
    line = line.strip()
    if not line.startswith(b"$") or len(line) < 4 or line[-3:-2] != b"*":
        return False
    value = 0
    for byte in line[1:-3]:
        value ^= byte
    try:
        return value == int(line[-2:], 16)
    except ValueError:
        return False


def _key(fix: Fix) -> tuple[object, ...]:
    return (fix.mode, fix.utc, fix.lat, fix.lon, fix.alt_msl, fix.satellites)


def test_clean_corpus_yields_fixes() -> None:
    """The uncorrupted corpus decodes (so the properties below are not vacuous)."""
    fixes = _decode(CLEAN)
    assert [f.utc.second for f in fixes if f.utc] == [19, 20, 21, 22]
    assert all(f.has_position for f in fixes)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048), st.integers(min_value=1, max_value=64))
def test_random_bytes_never_raise(data: bytes, chunk: int) -> None:
    """Arbitrary bytes in arbitrary chunks: no exception, and no fix from noise."""
    assert _decode(data, chunk) == []


_SAFE_BYTES = st.integers(min_value=0, max_value=255).filter(lambda b: b not in b"$\r\n")


@st.composite
def _corrupted(draw: st.DrawFn) -> bytes:
    """A corpus sentence with one byte replaced, deleted or inserted; checksum now wrong."""
    line = draw(st.sampled_from(CORPUS)).rstrip(b"\r\n")
    pos = draw(st.integers(min_value=1, max_value=len(line) - 1))
    how = draw(st.sampled_from(["replace", "delete", "insert", "strip-checksum"]))
    byte = bytes([draw(_SAFE_BYTES)])
    if how == "replace":
        out = line[:pos] + byte + line[pos + 1 :]
    elif how == "delete":
        out = line[:pos] + line[pos + 1 :]
    elif how == "insert":
        out = line[:pos] + byte + line[pos:]
    else:
        out = line[:-3]
    assume(not _checksum_holds(out))
    return out + b"\r\n"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(_corrupted(), min_size=1, max_size=30))
def test_no_fix_from_bad_checksums(lines: list[bytes]) -> None:
    """A stream made only of sentences whose checksum fails never produces a fix."""
    decoder = NmeaDecoder()
    fixes = decoder.feed(b"".join(lines), 1)
    assert fixes == []
    assert decoder.flush(2) is None
    assert decoder.stats.sentences_ok == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(CORPUS)), st.binary(max_size=300)), max_size=8))
def test_garbage_between_lines_changes_nothing(inserts: list[tuple[int, bytes]]) -> None:
    """Noise, NULs, UBX frames and overlong junk between sentences leave the fixes intact."""
    lines = list(CORPUS)
    for index, junk in sorted(inserts, reverse=True):
        lines.insert(index, junk.replace(b"$", b"#").replace(b"\n", b"") + b"\n")
    assert [_key(f) for f in _decode(b"".join(lines))] == [_key(f) for f in _decode(CLEAN)]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["GPGGA", "GNRMC", "GBGNS", "GAGSA", "QZZDA", "GNVTG", "GLGLL"]),
    st.lists(st.text(alphabet="0123456789.,-+NSEWAVDT ", max_size=14), max_size=20),
)
def test_valid_checksum_with_hostile_fields_never_raises(kind: str, fields: list[str]) -> None:
    """Correctly summed sentences with absurd fields are decoded or ignored, never raised."""
    body = ",".join([kind, *fields]).replace("*", "")
    stream = nmea_sentence(body) * 2 + nmea_sentence("GNZDA,000000.00,01,01,2020,00,00")
    for fix in _decode(stream):
        if fix.lat is not None:
            assert -90.0 <= fix.lat <= 90.0
        if fix.lon is not None:
            assert -180.0 <= fix.lon <= 180.0


@pytest.mark.parametrize(
    "line",
    [
        b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000\r\n",
        b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7E\r\n",
        b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7\r\n",
        b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*ZZ\r\n",
    ],
    ids=["no-checksum", "wrong-checksum", "short-checksum", "non-hex-checksum"],
)
def test_each_kind_of_bad_checksum_is_rejected_and_counted(line: bytes) -> None:
    """Missing, wrong or malformed checksums are all rejected and counted."""
    decoder = NmeaDecoder()
    assert decoder.feed(line * 3, 1) == []
    assert decoder.flush(2) is None
    assert decoder.stats.bad_checksum == 3
