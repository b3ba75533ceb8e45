"""NmeaDecoder behaviours, one bench experiment each: epochs, validity, dates, framing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hw.gps import Fix
from hw.gps_nmea import MAX_LINE, NmeaDecoder, is_stale, stale_marker
from hw.gps_sim import nmea_sentence as s


def gga(tod: str, *, talker: str = "GP", quality: int = 1, sats: str = "08",
        alt: str = "59.9") -> bytes:
    return s(f"{talker}GGA,{tod},3747.0873,S,17518.8938,E,{quality},{sats},1.1,{alt},M,23.7,M,,")


def rmc(tod: str, *, status: str = "A", date: str = "311214", talker: str = "GP") -> bytes:
    return s(f"{talker}RMC,{tod},{status},3747.0873,S,17518.8938,E,0.69,181.39,{date},,,A")


def decode(*chunks: bytes) -> tuple[list[Fix], NmeaDecoder]:
    decoder = NmeaDecoder()
    fixes = decoder.feed(b"".join(chunks), 7)
    last = decoder.flush(8)
    return fixes + ([last] if last else []), decoder


def test_time_change_closes_the_epoch() -> None:
    """GGA+GSA+RMC share a time: one 3D fix with RMC's date, GGA's altitude, GSA's mode."""
    fixes, _ = decode(gga("030719.000"), s("GPGSA,A,3,17,28,06,01,,,,,,,,,1.8,1.1,1.5"),
                      rmc("030719.000"), gga("030720.000"))
    first = fixes[0]
    assert first.utc == datetime(2014, 12, 31, 3, 7, 19, tzinfo=UTC)
    assert (first.mode, first.alt_msl, first.satellites, first.hdop) == (3, 59.9, 8, 1.1)
    assert first.speed_mps == pytest.approx(0.69 * 1852 / 3600)
    assert first.received_mono_ns == 7


def test_learned_cycle_ender_delivers_without_waiting() -> None:
    """After two cycles ending in RMC, an RMC delivers its epoch at once."""
    decoder = NmeaDecoder()
    delivered = [
        [f.utc.second for f in decoder.feed(gga(f"03072{k}.00") + rmc(f"03072{k}.00"), k) if f.utc]
        for k in range(5)
    ]
    assert delivered == [[], [20], [21, 22], [23], [24]]
    assert not decoder.epoch_open


@pytest.mark.parametrize(
    "sentences",
    [
        [gga("120000.00"), rmc("120000.00", status="V")],
        [gga("120000.00", quality=0), rmc("120000.00")],
        [gga("120000.00", quality=8), rmc("120000.00")],  # receiver in simulator mode
        [gga("120000.00"), s("GPGSA,A,1,,,,,,,,,,,,,,,"), rmc("120000.00")],
        [s("GNGNS,120000.00,3747.0873,S,17518.8938,E,NNN,08,1.1,59.9,23.7,,")],
    ],
    ids=["rmc-void", "gga-quality-0", "gga-simulator", "gsa-no-fix", "gns-no-fix"],
)
def test_any_no_fix_indicator_means_no_position(sentences: list[bytes]) -> None:
    """One sentence saying 'no fix' is enough: the epoch has no position."""
    fixes, _ = decode(*sentences)
    assert len(fixes) == 1 and fixes[0].mode == 1 and not fixes[0].has_position


def test_multi_constellation_gsa_takes_the_best_mode() -> None:
    """Per-system GSA (NMEA 4.11 system id): the epoch's mode is the best one reported."""
    fixes, _ = decode(gga("120000.00", talker="GN", alt=""),
                      s("GNGSA,A,1,,,,,,,,,,,,,1.8,1.1,1.5,4"),
                      s("GNGSA,A,3,01,02,03,04,,,,,,,,,1.8,1.1,1.5,1"))
    assert fixes[0].mode == 3


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB", "BD", "QZ", "GI"])
def test_every_talker_is_accepted(talker: str) -> None:
    """GPS, GNSS, GLONASS, Galileo, BeiDou (GB and BD), QZSS, NavIC all decode."""
    fixes, _ = decode(gga("120000.00", talker=talker), rmc("120000.00", talker=talker))
    assert fixes[0].has_position


def test_gga_only_receiver_carries_the_date_over_midnight() -> None:
    """GGA has no date: the last RMC/ZDA date is carried and rolled at midnight."""
    fixes, _ = decode(rmc("235958.00"), gga("235959.00"), gga("000000.00"), gga("000001.00"))
    assert [f.utc.isoformat() for f in fixes if f.utc] == [
        "2014-12-31T23:59:58+00:00", "2014-12-31T23:59:59+00:00",
        "2015-01-01T00:00:00+00:00", "2015-01-01T00:00:01+00:00",
    ]


def test_without_any_date_the_fix_has_no_utc() -> None:
    """GGA alone never invents a date: the position comes without UTC."""
    fixes, _ = decode(gga("120000.00"), gga("120001.00"))
    assert all(f.utc is None and f.has_position for f in fixes)


def test_zda_supplies_a_four_digit_year() -> None:
    """ZDA dates epochs of receivers that send GGA + ZDA only."""
    fixes, _ = decode(gga("120000.00"), s("GPZDA,120000.00,01,03,2026,00,00"))
    assert fixes[0].utc == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_framing_survives_partial_overlong_nul_and_binary_input() -> None:
    """A mid-sentence start, NULs, a UBX frame and an overlong line cost only themselves."""
    stream = (b"3747.0873,S,17518.89*7D\r\n" + b"\x00" * 40 + b"\xb5\x62\x01\x07" + bytes(90)
              + b"\n" + b"A" * (MAX_LINE * 3) + b"\r\n" + gga("120000.00") + rmc("120000.00"))
    fixes, decoder = decode(stream)
    assert len(fixes) == 1 and fixes[0].has_position
    assert decoder.stats.overlong_lines == 1
    assert decoder.stats.garbage_bytes > MAX_LINE * 3
    assert decoder.stats.sentences_ok == 2


def test_lines_split_across_reads_are_reassembled() -> None:
    """A sentence cut across serial reads at every position still decodes."""
    data = gga("120000.00") + rmc("120000.00")
    for cut in range(1, len(data)):
        decoder = NmeaDecoder()
        decoder.feed(data[:cut], 1)
        decoder.feed(data[cut:], 2)
        assert decoder.stats.sentences_ok == 2


def test_staleness() -> None:
    """is_stale: no fix, the stale marker, or older than the limit."""
    fix = Fix(mode=3, utc=None, lat=1.0, lon=1.0, received_mono_ns=1_000_000_000)
    assert is_stale(None, 0, 5.0)
    assert not is_stale(fix, 5_000_000_000, 5.0)
    assert is_stale(fix, 6_000_000_001, 5.0)
    marker = stale_marker(7)
    assert marker.stale and marker.mode == 1 and is_stale(marker, 7, 5.0)


def test_sentence_after_long_junk_on_the_same_line_is_recovered() -> None:
    """Binary junk with no newline before a sentence costs the junk, not the sentence."""
    junk = bytes(b for b in range(256) if b not in b"\r\n$") * 3
    for chunk in (len(junk) + 500, 16):  # whole line at once, and trickled in small reads
        decoder = NmeaDecoder()
        data = junk + gga("120000.00") + rmc("120000.00")
        fixes = [f for i in range(0, len(data), chunk) for f in decoder.feed(data[i:i + chunk], i)]
        last = decoder.flush(0)
        assert [f.has_position for f in fixes + ([last] if last else [])] == [True]
        assert decoder.stats.overlong_lines == 1
        assert decoder.stats.garbage_bytes == len(junk)


def test_fix_carries_first_and_last_arrival_of_its_epoch() -> None:
    """received_mono_ns is the epoch's last sentence, epoch_mono_ns its first, not the next's."""
    decoder = NmeaDecoder()
    decoder.feed(s("GPGSA,A,3,17,28,06,01,,,,,,,,,1.8,1.1,1.5"), 100)
    decoder.feed(gga("120000.00"), 150)
    decoder.feed(rmc("120000.00"), 400)
    (fix,) = decoder.feed(gga("120001.00"), 1100)
    assert (fix.epoch_mono_ns, fix.received_mono_ns) == (100, 400)
    flushed = decoder.flush(5000)
    assert flushed is not None
    assert (flushed.epoch_mono_ns, flushed.received_mono_ns) == (1100, 1100)
