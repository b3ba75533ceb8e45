"""NMEA 0183 framing and trust: bounded lines out of a noisy byte stream, checksums verified.

The first two steps of :mod:`hw.gps_nmea`'s decoding (see its docstring): :class:`NmeaFramer`
splits bytes on CR/LF into lines of at most :data:`MAX_LINE`, counting what it throws away;
:func:`verify_sentence` accepts a sentence only with a matching ``*HH`` XOR checksum, so
evidence never rests on an unverified sentence. :mod:`hw.gps_nmea` re-exports these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from operator import xor

__all__ = ["MAX_LINE", "NmeaFramer", "NmeaStats", "nmea_checksum", "verify_sentence"]

MAX_LINE = 256
"""Longest line accepted (NMEA says 82; real receivers exceed it, never by this much)."""

_HEX = frozenset(b"0123456789ABCDEFabcdef")
_PRINTABLE_BODY = re.compile(rb"[\x20-\x29\x2B-\x7E]*")  # printable ASCII except "*"


@dataclass(slots=True)
class NmeaStats:
    """Counters for telemetry; monotonically increasing for the life of the decoder."""

    sentences_ok: int = 0
    bad_checksum: int = 0
    garbage_bytes: int = 0
    overlong_lines: int = 0
    unparsed: int = 0
    epochs: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain integers for a telemetry message."""
        return {
            "sentences_ok": self.sentences_ok,
            "bad_checksum": self.bad_checksum,
            "garbage_bytes": self.garbage_bytes,
            "overlong_lines": self.overlong_lines,
            "unparsed": self.unparsed,
            "epochs": self.epochs,
        }


def nmea_checksum(body: bytes) -> int:
    """XOR of the bytes between ``$`` and ``*``."""
    return reduce(xor, body, 0)


def verify_sentence(line: bytes) -> str | None:
    """The sentence text (``$`` … ``*HH``) if ``line`` holds one with a valid checksum.

    Leading noise before the last ``$`` is ignored (a line that began mid-sentence after a
    reconnect, or two sentences run together); trailing whitespace is allowed.
    Returns None when there is no checksum, it is malformed, or it does not match.
    """
    start = line.rfind(b"$")
    if start < 0:
        return None
    sentence = line[start:].rstrip(b" \t\r\n")
    if len(sentence) < 10 or sentence[-3] != 0x2A:  # b"*"
        return None
    digits = sentence[-2:]
    if digits[0] not in _HEX or digits[1] not in _HEX:
        return None
    body = sentence[1:-3]
    if _PRINTABLE_BODY.fullmatch(body) is None:
        return None
    if nmea_checksum(body) != int(digits, 16):
        return None
    return sentence.decode("ascii")


class NmeaFramer:
    """Splits a byte stream into bounded lines; counts what it throws away.

    A line longer than :data:`MAX_LINE` (binary frames, noise without a newline) is cut to
    its tail from the last ``$`` when that tail is short enough to be a sentence, so a
    sentence that follows junk on the same line is not lost; the rest is garbage.
    """

    def __init__(self, stats: NmeaStats) -> None:
        self._stats = stats
        self._partial = bytearray()
        self._overflowed = False

    def reset(self) -> None:
        """Forget a partial line (after a reconnect the tail belongs to another stream)."""
        self._stats.garbage_bytes += len(self._partial)
        self._partial.clear()
        self._overflowed = False

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines found in ``data`` (without terminators)."""
        lines: list[bytes] = []
        buf = self._partial
        buf += data
        start = 0
        while (end := _find_eol(buf, start)) >= 0:
            line = bytes(buf[start:end])
            start = end + 1
            if len(line) > MAX_LINE:
                line = self._trim(line)
            self._overflowed = False
            if line:
                lines.append(line)
        del buf[:start]
        if len(buf) > MAX_LINE:
            buf[:] = self._trim(bytes(buf))
        return lines

    def _trim(self, line: bytes) -> bytes:
        cut = line.rfind(b"$")
        keep = line[cut:] if cut >= 0 and len(line) - cut <= MAX_LINE else b""
        self._stats.garbage_bytes += len(line) - len(keep)
        if not self._overflowed:
            self._stats.overlong_lines += 1
            self._overflowed = True
        return keep


def _find_eol(buf: bytearray, start: int) -> int:
    lf = buf.find(b"\n", start)
    cr = buf.find(b"\r", start)
    if lf < 0:
        return cr
    if cr < 0:
        return lf
    return min(lf, cr)
