"""Real power cuts (unsynced writes dropped, not SIGKILL): nothing sealed is lost, the
pre-roll survives a cut right after the press, every manifest is queued, the data verifies.
The long series is ``scripts/powercut.py``; this is its short version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.tools.powercut import config_text, run_series

pytestmark = pytest.mark.skipif(
    not (os.access("/dev/fuse", os.R_OK | os.W_OK) and shutil.which("fusermount3")
         and shutil.which("ffprobe")),
    reason="needs /dev/fuse, fuse3 and ffprobe (scripts/setup.sh installs them)")
pytest.importorskip("mfusepy")

SYNC_S = 5.0  # the periodic sync cannot rescue the pre-roll within 0.5 s of the press


@pytest.mark.timeout(180)
def test_power_cuts_keep_sealed_segments_and_the_preroll(tmp_path: Path) -> None:
    """Three cuts -- 0.5 s after a press, at a random moment, 0.5 s after a press again --
    with a 5 s sync interval: no sealed segment lost, each pre-roll kept to within one GOP
    (1 s) plus the age chunk being filled (64 KiB ≈ 0.26 s at 2 Mbit/s), every manifest
    (recovered ones too) in the outbox, and ``bodycam verify`` passes."""
    report = run_series(tmp_path, cuts=3, seed=11, after_press_every=2,
                        config=config_text(prerecord_s=3, sync_interval_s=SYNC_S))
    print(report.summary())
    assert not report.sealed_lost, report.summary()
    assert not report.outbox_missing, report.summary()
    assert report.verify_rc == 0, report.verify_output
    assert report.recovered >= 3  # every cut interrupted a recording that came back
    assert len(report.preroll_lost) == 2
    assert max(report.preroll_lost) <= 1.4, report.summary()
    assert max(report.media_lost) <= SYNC_S + 1.5, report.summary()
