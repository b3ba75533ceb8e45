"""Every real-receiver capture from gpsd's regression suite, through a pty into SerialGps.

For each ``.log`` the bytes go down a raw pty to the real serial reader; the fixes it
delivers are compared epoch by epoch with gpsd's TPV verdicts in the ``.chk``: position
within 1e-6 degrees, UTC time exact, and never a fix where gpsd reported none.

Where we differ from gpsd for a reason, the difference is written down below, per file and
per reason, with its exact count: a regression or an unexplained improvement both fail.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from gpsd_captures import CAPTURE_DIR, compare, gpsd_epochs, log_bytes

from hw.gps import Fix
from hw.gps_serial import SerialGps
from hw.gps_sim import PtyPort

pytestmark = pytest.mark.skipif(
    not CAPTURE_DIR.is_dir(),
    reason=f"gpsd captures not found at {CAPTURE_DIR} (CI keeps shared/ beside the clone)",
)

LAST_EPOCH = "the stream ends inside the last cycle; gpsd never closes it, we flush it"
FIRST_FIX = "gpsd emits no TPV for the first valid epoch after acquiring a fix"


@dataclass(frozen=True)
class Expect:
    """Known, explained differences from gpsd for one capture."""

    reasons: tuple[str, ...]
    missing: int = 0
    extra_fixed: int = 0
    position: int = 0
    fix_disagree: int = 0
    shift: timedelta = timedelta(0)  # added to our times before comparing


EXPECTED: dict[str, Expect] = {
    "beidou-bd": Expect((FIRST_FIX,), extra_fixed=1),
    "beidou-gb": Expect((FIRST_FIX,), extra_fixed=1),
    "haicom-305N": Expect((FIRST_FIX,), extra_fixed=1),
    "motorola-t805": Expect((FIRST_FIX,), extra_fixed=1),
    "ch-4701": Expect((LAST_EPOCH,), extra_fixed=1),
    "quectel-l76k-nmea": Expect((LAST_EPOCH,), extra_fixed=1),
    "st-teseo-liv3f": Expect((LAST_EPOCH,), extra_fixed=1),
    "bundg_zeus_9": Expect(
        (
            LAST_EPOCH,
            "a chartplotter multiplexing GLL, RMC and GGA from different sources, which "
            "disagree by metres within the same second; gpsd reports whichever was current "
            "at its cycle end, we report the last position sentence of the epoch",
        ),
        extra_fixed=1,
        position=38,
    ),
    "neo-m8n": Expect(
        (
            LAST_EPOCH,
            "the receiver says 2015-03-18; gpsd moves it 1024 weeks forward (its GPS week "
            "rollover heuristic, anchored on its build date); we keep the receiver's date, "
            "so our times are shifted by 1024 weeks before comparing",
        ),
        extra_fixed=1,
        shift=timedelta(weeks=1024),
    ),
}

CAPTURES = sorted(p.name[: -len(".log")] for p in CAPTURE_DIR.glob("*.log"))


def _replay_through_pty(data: bytes) -> tuple[list[Fix], SerialGps]:
    """Send ``data`` down a pty into SerialGps; return the fixes once all was consumed."""
    fixes: list[Fix] = []
    port = PtyPort()
    reader = SerialGps(str(port.path), 115200, stale_after_s=3600, quiet_flush_s=0.1)
    done = threading.Event()

    def sink(fix: Fix) -> None:
        fixes.append(fix)

    reader.start(sink)
    try:
        assert reader.connected.wait(10), "reader never opened the pty"
        port.write(data)
        deadline = time.monotonic() + 30
        while reader.bytes_read < len(data) or reader.epoch_open:
            assert time.monotonic() < deadline, (
                f"reader stalled at {reader.bytes_read}/{len(data)} bytes"
            )
            done.wait(0.02)
        assert reader.running, "reader thread died"
    finally:
        reader.stop()
        port.close()
    return fixes, reader


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", CAPTURES)
def test_capture_matches_gpsd(name: str) -> None:
    """Our fixes agree with gpsd's, except for the documented differences."""
    data = log_bytes(CAPTURE_DIR / f"{name}.log")
    fixes, reader = _replay_through_pty(data)
    expect = EXPECTED.get(name, Expect(()))
    if expect.shift:
        fixes = [replace(x, utc=x.utc + expect.shift) if x.utc else x for x in fixes]
    theirs = gpsd_epochs(CAPTURE_DIR / f"{name}.log.chk")
    result = compare(fixes, theirs)

    assert result.phantom == [], f"fix claimed where gpsd had none: {result.phantom[:5]}"
    assert result.differences() == {
        "missing": expect.missing,
        "extra_fixed": expect.extra_fixed,
        "position": expect.position,
        "fix_disagree": expect.fix_disagree,
    }, f"{name}: {result}"
    assert result.matched == len(theirs) - expect.missing - expect.position - expect.fix_disagree
    assert reader.stats()["bytes_read"] == len(data)
