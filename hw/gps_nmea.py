"""NMEA 0183 stream decoding: framing, checksum validation and epoch assembly into ``Fix``.

A serial line from a GNSS receiver carries bursts of sentences, one burst per navigation
epoch, mixed with whatever the line picks up: partial lines after a reconnect, binary
vendor frames (u-blox UBX), NULs, noise. This module turns that byte stream into one
:class:`~hw.gps.Fix` per epoch, and nothing else:

* **Framing** (:class:`NmeaFramer`, in :mod:`hw.gps_framing` with the checksum): bytes are
  split on CR/LF; a line is bounded (:data:`MAX_LINE`), non-ASCII bytes invalidate it;
  anything that is not a sentence is counted as garbage and dropped.
* **Trust** (:func:`verify_sentence`): a sentence is used only if it carries ``*HH`` and
  the XOR checksum matches. A sentence without a checksum is rejected like a wrong one:
  evidence never rests on an unverified sentence.
* **Fields**: pynmea2 splits the sentence into talker, type and fields; the conversions
  that matter for evidence (time of day, date, coordinates) are :mod:`hw.gps_fields`'s
  exact, strict ones, because pynmea2 silently returns the raw string when a conversion
  fails and rounds fractional seconds through a float.
* **Epochs** (:class:`EpochAssembler`): a change of UTC time of day closes the epoch; so
  does the sentence type that ended the previous epochs (the *cycle ender*, learned as
  gpsd does), and so does :meth:`EpochAssembler.flush` when the line goes quiet.

Staleness is the consumer's question, answered by :func:`is_stale`; the serial reader also
delivers a single ``Fix(mode=1, stale=True)`` marker when the receiver goes silent.

Not thread-safe: one reader thread owns a decoder.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

import pynmea2

from hw.gps import Fix
from hw.gps_fields import coordinate, ddmmyy, digits_int, finite_float, time_of_day, zda_date
from hw.gps_framing import MAX_LINE, NmeaFramer, NmeaStats, nmea_checksum, verify_sentence

__all__ = [
    "MAX_LINE",
    "EpochAssembler",
    "NmeaDecoder",
    "NmeaFramer",
    "NmeaStats",
    "Sentence",
    "is_stale",
    "nmea_checksum",
    "stale_marker",
    "verify_sentence",
]


KNOTS_TO_MPS = 1852.0 / 3600.0
_FIX_SENTENCES = frozenset({"GGA", "RMC", "GNS", "GSA", "ZDA", "VTG", "GLL"})
_TIME_FIELD = {"GGA": 0, "RMC": 0, "GNS": 0, "ZDA": 0, "GLL": 4}
_TIMED = frozenset(_TIME_FIELD)
_GGA_NOT_A_FIX = frozenset({7, 8})  # manual input, simulator: never evidence of a position


@dataclass(frozen=True, slots=True)
class Sentence:
    """A checksum-verified sentence, split into talker, type and fields."""

    talker: str
    kind: str
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Sentence | None:
        """Split a verified sentence with pynmea2; None for proprietary or unknown types."""
        try:
            msg = pynmea2.parse(text, check=True)
        except (ValueError, TypeError, IndexError, AttributeError):
            return None  # pynmea2.ParseError is a ValueError
        if not isinstance(msg, pynmea2.TalkerSentence):
            return None
        return cls(str(msg.talker), str(msg.sentence_type), tuple(msg.data))

    def get(self, index: int) -> str:
        """Field ``index`` or "" when the receiver sent fewer fields."""
        return self.fields[index] if index < len(self.fields) else ""


# --- epoch assembly -------------------------------------------------------------------------
@dataclass(slots=True)
class _Epoch:
    tod: time | None = None
    date: date | None = None
    valid: bool | None = None  # False as soon as any sentence says "no fix"
    gsa_mode: int | None = None
    lat: float | None = None
    lon: float | None = None
    alt_msl: float | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    hdop: float | None = None
    satellites: int | None = None
    last_kind: str = ""
    first_mono_ns: int = 0  # arrival of the epoch's first sentence
    last_mono_ns: int = 0  # arrival of its last (completing) sentence

    def invalidate(self) -> None:
        self.valid = False

    def validate(self) -> None:
        if self.valid is None:
            self.valid = True


class EpochAssembler:
    """Merges the sentences of one epoch into a single :class:`Fix`."""

    def __init__(self, stats: NmeaStats) -> None:
        self._stats = stats
        self._epoch = _Epoch()
        self._last_date: date | None = None
        self._last_tod: time | None = None
        self._ender: str | None = None
        self._ender_votes = 0
        self._emitted_tod: time | None = None
        self._after_ender = False
        self._candidate: str | None = None

    def reset(self) -> None:
        """Drop the open epoch (used after a reconnect; the date memory is kept)."""
        self._epoch = _Epoch()
        self._emitted_tod = None
        self._after_ender = False

    @property
    def epoch_open(self) -> bool:
        """True while an epoch with a time of day is being assembled."""
        return self._epoch.tod is not None

    def add(self, s: Sentence, mono_ns: int) -> Fix | None:
        """Apply one verified sentence; returns a Fix when it closed an epoch."""
        if s.kind not in _FIX_SENTENCES:
            return None
        field = _TIME_FIELD.get(s.kind)
        tod = time_of_day(s.get(field)) if field is not None else None
        if field is not None and tod is None:
            return None  # a position without its time cannot be placed in an epoch
        out: Fix | None = None
        late = self._after_ender if tod is None else tod == self._emitted_tod
        if late:
            # More of an epoch already delivered: the guessed cycle ender was wrong. The
            # late sentence is dropped rather than credited to the next epoch.
            self._ender, self._candidate, self._ender_votes = None, None, 0
            return None
        if tod is not None and self._epoch.tod is not None and tod != self._epoch.tod:
            self._learn_ender(self._epoch.last_kind)
            out = self._close(mono_ns)
        ep = self._epoch
        if tod is not None:
            ep.tod = tod
            self._emitted_tod = None
            self._after_ender = False
        _APPLY[s.kind](ep, s)
        ep.last_kind = s.kind
        ep.first_mono_ns = ep.first_mono_ns or mono_ns
        ep.last_mono_ns = mono_ns
        if out is None and s.kind == self._ender and ep.tod is not None:
            self._emitted_tod = ep.tod
            self._after_ender = True
            out = self._close(mono_ns)
        return out

    def flush(self, mono_ns: int) -> Fix | None:
        """Close the open epoch now (the line went quiet after a burst)."""
        if self._epoch.tod is None:
            return None
        self._emitted_tod = self._epoch.tod
        return self._close(mono_ns)

    def _learn_ender(self, kind: str) -> None:
        """Learn the sentence that ends a cycle; only a timed one can (an untimed GSA
        or VTG after it could not be told apart from the next epoch's)."""
        if kind not in _TIMED:
            self._ender, self._candidate, self._ender_votes = None, None, 0
            return
        if kind == self._ender:
            return
        if kind == self._candidate:
            self._ender_votes += 1
        else:
            self._candidate = kind
            self._ender_votes = 1
        if self._ender_votes >= 2:
            self._ender = kind

    def _close(self, mono_ns: int) -> Fix:
        ep, self._epoch = self._epoch, _Epoch()
        assert ep.tod is not None
        day = ep.date or self._carried_date(ep.tod)
        if ep.date is not None:
            self._last_date = ep.date
        self._last_tod = ep.tod
        utc = datetime.combine(day, ep.tod) if day is not None else None
        self._stats.epochs += 1
        return _to_fix(ep, utc, ep.last_mono_ns or mono_ns, ep.first_mono_ns or mono_ns)

    def _carried_date(self, tod: time) -> date | None:
        """The last known date, rolled over at midnight for GGA-only epochs."""
        if self._last_date is None:
            return None
        if self._last_tod is not None and tod < self._last_tod and self._last_tod.hour == 23 \
                and tod.hour == 0:
            self._last_date += timedelta(days=1)
        return self._last_date


def _to_fix(ep: _Epoch, utc: datetime | None, mono_ns: int, first_ns: int) -> Fix:
    has_pos = ep.lat is not None and ep.lon is not None
    if ep.valid is False or not has_pos:
        mode = 1
    elif ep.gsa_mode is not None:
        mode = ep.gsa_mode
    else:
        mode = 3 if ep.alt_msl is not None else 2
    if mode < 2:
        return Fix(mode=1, utc=utc, satellites=ep.satellites, hdop=ep.hdop,
                   received_mono_ns=mono_ns, epoch_mono_ns=first_ns)
    return Fix(
        mode=mode, utc=utc, lat=ep.lat, lon=ep.lon,
        alt_msl=ep.alt_msl if mode == 3 else None, speed_mps=ep.speed_mps,
        course_deg=ep.course_deg, hdop=ep.hdop, satellites=ep.satellites,
        received_mono_ns=mono_ns, epoch_mono_ns=first_ns,
    )


def _apply_position(ep: _Epoch, s: Sentence, first: int) -> None:
    lat = coordinate(s.get(first), s.get(first + 1), 2)
    lon = coordinate(s.get(first + 2), s.get(first + 3), 3)
    if lat is None or lon is None:
        ep.invalidate()
        return
    ep.lat, ep.lon = lat, lon  # the last position sentence of the epoch wins, as in gpsd


def _apply_gga(ep: _Epoch, s: Sentence) -> None:
    quality = digits_int(s.get(5))
    ep.satellites = digits_int(s.get(6))
    if ep.satellites == 0:
        return  # "a fix from no satellites" proves neither a fix nor its absence
    if not quality or quality in _GGA_NOT_A_FIX:
        ep.invalidate()
        return
    ep.validate()
    _apply_position(ep, s, 1)
    ep.hdop = finite_float(s.get(7)) if ep.hdop is None else ep.hdop
    ep.alt_msl = finite_float(s.get(8))


def _apply_gns(ep: _Epoch, s: Sentence) -> None:
    modes = s.get(5)
    ep.satellites = digits_int(s.get(6))
    if ep.satellites == 0:
        return
    if not modes or all(m in "NMS" for m in modes):
        ep.invalidate()
        return
    ep.validate()
    _apply_position(ep, s, 1)
    ep.hdop = finite_float(s.get(7)) if ep.hdop is None else ep.hdop
    ep.alt_msl = finite_float(s.get(8))


def _apply_rmc(ep: _Epoch, s: Sentence) -> None:
    ep.date = ddmmyy(s.get(8)) or ep.date
    if s.get(1) != "A" or s.get(11) == "N":
        ep.invalidate()
        return
    ep.validate()
    _apply_position(ep, s, 2)
    knots = finite_float(s.get(6))
    ep.speed_mps = knots * KNOTS_TO_MPS if knots is not None else ep.speed_mps
    ep.course_deg = finite_float(s.get(7)) if ep.course_deg is None else ep.course_deg


def _apply_gll(ep: _Epoch, s: Sentence) -> None:
    if s.get(5) != "A" or s.get(6) == "N":
        ep.invalidate()
        return
    ep.validate()
    _apply_position(ep, s, 0)


def _apply_gsa(ep: _Epoch, s: Sentence) -> None:
    mode = digits_int(s.get(1))
    if mode in (1, 2, 3):
        ep.gsa_mode = max(ep.gsa_mode or 0, mode)
    if ep.hdop is None:
        ep.hdop = finite_float(s.get(15))


def _apply_zda(ep: _Epoch, s: Sentence) -> None:
    ep.date = zda_date(s.get(1), s.get(2), s.get(3)) or ep.date


def _apply_vtg(ep: _Epoch, s: Sentence) -> None:
    if s.get(8) == "N":
        return
    if ep.course_deg is None:
        ep.course_deg = finite_float(s.get(0))
    if ep.speed_mps is None:
        kmh = finite_float(s.get(6))
        ep.speed_mps = kmh / 3.6 if kmh is not None else None


_APPLY = {
    "GGA": _apply_gga, "GNS": _apply_gns, "RMC": _apply_rmc, "GLL": _apply_gll,
    "GSA": _apply_gsa, "ZDA": _apply_zda, "VTG": _apply_vtg,
}


class NmeaDecoder:
    """Bytes in, fixes out: framing + checksum + assembly, with counters."""

    def __init__(self) -> None:
        self.stats = NmeaStats()
        self._framer = NmeaFramer(self.stats)
        self._assembler = EpochAssembler(self.stats)

    def feed(self, data: bytes, mono_ns: int) -> list[Fix]:
        """Decode a chunk read from the line; ``mono_ns`` is when it was read."""
        fixes: list[Fix] = []
        for line in self._framer.feed(data):
            fix = self.feed_line(line, mono_ns)
            if fix is not None:
                fixes.append(fix)
        return fixes

    def feed_line(self, line: bytes, mono_ns: int) -> Fix | None:
        """Decode one line (no terminator)."""
        text = verify_sentence(line)
        if text is None:
            if _looks_like_sentence(line):
                self.stats.bad_checksum += 1
            else:
                self.stats.garbage_bytes += len(line)
            return None
        sentence = Sentence.parse(text)
        if sentence is None:
            self.stats.unparsed += 1
            return None
        self.stats.sentences_ok += 1
        fix: Fix | None = None
        with contextlib.suppress(ValueError, IndexError, OverflowError):
            fix = self._assembler.add(sentence, mono_ns)
        return fix

    @property
    def epoch_open(self) -> bool:
        """True while sentences of an undelivered epoch are held."""
        return self._assembler.epoch_open

    def flush(self, mono_ns: int) -> Fix | None:
        """Close the open epoch (call when the line has gone quiet)."""
        return self._assembler.flush(mono_ns)

    def reset(self) -> None:
        """Forget partial input after the port was reopened."""
        self._framer.reset()
        self._assembler.reset()


def _looks_like_sentence(line: bytes) -> bool:
    """``$`` + five printable characters + comma: meant as a sentence, whatever its checksum."""
    start = line.rfind(b"$")
    head = line[start + 1 : start + 7]
    return start >= 0 and len(head) == 6 and head[5] == 0x2C and head[:5].isalnum()


def is_stale(fix: Fix | None, now_mono_ns: int, stale_after_s: float) -> bool:
    """True when there is no fix, it is a stale marker, or it is older than ``stale_after_s``."""
    if fix is None or fix.stale:
        return True
    return now_mono_ns - fix.received_mono_ns > int(stale_after_s * 1e9)


def stale_marker(mono_ns: int) -> Fix:
    """The no-fix marker a receiver delivers once when its source went silent."""
    return replace(Fix(mode=1, utc=None), received_mono_ns=mono_ns, stale=True)
