"""The serial reader wakes about once per sentence burst, not on a fixed short poll."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gps_helpers import Collector, wait_for

from hw.gps_serial import SerialGps
from hw.gps_sim import SimGps

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sim() -> Iterator[SimGps]:
    with SimGps(rate_hz=2) as gps:
        yield gps


def test_reader_wakes_a_few_times_per_epoch(sim: SimGps) -> None:
    """At 2 epochs/s the reader returns from reads at most ~3 times per epoch (the burst, the
    quiet flush, an idle deadline) -- a 50 ms poll would make that 10 -- and every epoch is
    still delivered whole."""
    reader = SerialGps(sim.port_path, 9600)
    sink = Collector()
    try:
        reader.start(sink)
        assert wait_for(lambda: len(sink.positions()) >= 1)
        fixes0, reads0, t0 = len(sink.positions()), reader.reads, time.monotonic()
        assert wait_for(lambda: len(sink.positions()) >= fixes0 + 6)
        epochs = len(sink.positions()) - fixes0
        reads = reader.reads - reads0
        elapsed = time.monotonic() - t0
    finally:
        reader.stop()
    assert reads <= 3 * epochs + 2, f"{reads} reads for {epochs} epochs in {elapsed:.1f} s"
    assert all(f.mode == 3 and f.utc is not None for f in sink.positions())
