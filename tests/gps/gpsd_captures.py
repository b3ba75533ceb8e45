"""Reading gpsd's regression captures and comparing our fixes with gpsd's verdicts.

``NAME.log`` is the raw stream (``#`` lines are a header); ``NAME.log.chk`` interleaves the
input with gpsd's JSON reports. gpsd reports a TPV after each sentence, so the epoch's
verdict is the *last* TPV carrying a given ``time``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hw.gps import Fix

__all__ = ["CAPTURE_DIR", "Comparison", "GpsdEpoch", "compare", "gpsd_epochs", "log_bytes"]

CAPTURE_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "gpsd-nmea"
TOLERANCE_DEG = 1e-6


@dataclass(frozen=True)
class GpsdEpoch:
    """gpsd's final verdict for one UTC time."""

    time: str
    mode: int
    lat: float | None
    lon: float | None


def log_bytes(path: Path) -> bytes:
    """The byte stream of a capture, without its ``#`` header lines."""
    out = bytearray()
    for line in path.read_bytes().splitlines(keepends=True):
        if not line.startswith(b"#"):
            out += line
    return bytes(out)


def _sentence_tod(raw: bytes) -> str | None:
    """``hhmmss`` of a timed input sentence (GGA/RMC/GNS/ZDA/GLL), else None."""
    if not raw.startswith(b"$") or len(raw) < 7:
        return None
    fields = raw.split(b"*")[0].split(b",")
    kind = fields[0][3:6]
    index = {b"GGA": 1, b"RMC": 1, b"GNS": 1, b"ZDA": 1, b"GLL": 5}.get(kind)
    if index is None or index >= len(fields) or len(fields[index]) < 6:
        return None
    return fields[index][:6].decode("ascii", "replace")


def gpsd_epochs(chk: Path) -> dict[str, GpsdEpoch]:
    """Last TPV per time in a ``.chk`` file, in order of first appearance.

    A TPV counts as gpsd's verdict for its ``time`` only if the input sentence that caused
    it carried that time or no time at all: gpsd does not take the time of an invalid RMC,
    and re-reports the previous epoch's time with mode 1, which is not a verdict on it.
    """
    epochs: dict[str, GpsdEpoch] = {}
    cause: str | None = None
    for raw in chk.read_bytes().splitlines():
        if raw.startswith(b"$"):
            cause = _sentence_tod(raw)
            continue
        if not raw.startswith(b'{"class":"TPV"'):
            continue
        tpv = json.loads(raw)
        if "time" not in tpv:
            continue
        tod = tpv["time"][11:19].replace(":", "")
        if cause is not None and cause != tod:
            continue
        mode = int(tpv.get("mode", 0))
        has_pos = mode >= 2 and "lat" in tpv and "lon" in tpv
        epochs[tpv["time"]] = GpsdEpoch(
            tpv["time"], mode, tpv["lat"] if has_pos else None, tpv["lon"] if has_pos else None
        )
    return epochs


def iso(utc: datetime) -> str:
    """gpsd's time format: milliseconds, ``Z``."""
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass
class Comparison:
    """Per-epoch agreement between our fixes and gpsd's."""

    matched: int = 0
    missing: list[str] = field(default_factory=list)      # gpsd time we never produced
    extra_fixed: list[str] = field(default_factory=list)  # we fixed at a time gpsd never gave
    extra_nofix: list[str] = field(default_factory=list)  # no fix at a time gpsd never gave
    position: list[str] = field(default_factory=list)     # both fixed, > tolerance apart
    fix_disagree: list[str] = field(default_factory=list)  # one has a position, other not
    phantom: list[str] = field(default_factory=list)      # we fixed where gpsd had none
    undated: int = 0                                      # our fixes without a date

    def differences(self) -> dict[str, int]:
        """The counts a per-file expectation is written against."""
        return {
            "missing": len(self.missing),
            "extra_fixed": len(self.extra_fixed),
            "position": len(self.position),
            "fix_disagree": len(self.fix_disagree),
        }


def compare(ours: list[Fix], theirs: dict[str, GpsdEpoch]) -> Comparison:
    """Match fixes to gpsd epochs by exact UTC time and check position and fix status."""
    result = Comparison()
    by_time: dict[str, Fix] = {}
    for fix in ours:
        if fix.utc is None:
            result.undated += 1
            continue
        by_time[iso(fix.utc)] = fix
    for t, ref in theirs.items():
        found = by_time.get(t)
        if found is None:
            result.missing.append(t)
            continue
        fix = found
        if ref.lat is None or ref.lon is None:
            if fix.has_position:
                result.phantom.append(t)
                result.fix_disagree.append(t)
            else:
                result.matched += 1
            continue
        if not fix.has_position:
            result.fix_disagree.append(t)
            continue
        assert fix.lat is not None and fix.lon is not None
        if abs(fix.lat - ref.lat) <= TOLERANCE_DEG and abs(fix.lon - ref.lon) <= TOLERANCE_DEG:
            result.matched += 1
        else:
            result.position.append(t)
    for t, fix in by_time.items():
        if t not in theirs:
            (result.extra_fixed if fix.has_position else result.extra_nofix).append(t)
    return result
