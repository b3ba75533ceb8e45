"""Time acceleration of the simulated capture devices (a soak's week in half an hour).

At speed N the replay camera, the synthetic camera and the microphone deliver N times the
media per wall-clock second, each frame and chunk stamped at its nominal period on one media
clock. These tests drive time by hand: the wall clock moves only when a simulator waits, by
exactly as long as it asked to wait, so they run at full speed and measure exactly.
"""

from __future__ import annotations

import subprocess
import threading
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from agent.config import parse_config
from agent.testing import wait_for
from hw.audio import AudioChunk
from hw.audio_sim import SimMicrophone
from hw.camera import EncodedFrame
from hw.camera_replay import ReplayCamera
from hw.camera_sim import SimCamera
from hw.factory import build_hardware
from hw.sim_clock import MediaClock

pytestmark = pytest.mark.timeout(60)


class ManualTime:
    """A monotonic clock that moves only when a simulator waits, by exactly the wait."""

    def __init__(self) -> None:
        self.ns = 5_000_000_000_000

    def mono_ns(self) -> int:
        return self.ns

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        if not stop.is_set():
            self.ns += max(1, round(seconds * 1e9))
        return stop.is_set()


class Stamps:
    """A sink that keeps each item's pts and the wall time it arrived at."""

    def __init__(self, time: ManualTime) -> None:
        self.time = time
        self.pts_us: list[int] = []
        self.wall_ns: list[int] = []

    def __call__(self, item: EncodedFrame | AudioChunk) -> None:
        self.pts_us.append(item.pts_us)
        self.wall_ns.append(self.time.ns)


def run(device: Any, time: ManualTime, n: int) -> Stamps:
    """Start ``device`` into a :class:`Stamps` sink, stop it after ``n`` deliveries."""
    sink = Stamps(time)
    device.start(sink)
    try:
        wait_for(lambda: len(sink.pts_us) >= n, what=f"{n} deliveries")
    finally:
        device.stop()
    return sink


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s 320x240 clip at 15 fps, a keyframe a second."""
    path = tmp_path_factory.mktemp("speed") / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=15", "-t", "1", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "15", "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=60)
    return path


def assert_paced(sink: Stamps, period_ns: int, speed: float) -> None:
    """Item k is stamped k nominal periods after item 0 and arrives k periods / speed after
    it: ``speed`` times the items a real device delivers per wall second."""
    for a, b in pairwise(sink.pts_us):
        assert abs((b - a) * 1000 - period_ns) <= 1000, (a, b)
    for k, wall in enumerate(sink.wall_ns):
        assert wall - sink.wall_ns[0] == pytest.approx(k * period_ns / speed, abs=2)
    per_wall_second = sum(1 for w in sink.wall_ns[1:] if w - sink.wall_ns[0] <= 1e9)
    assert per_wall_second == round(speed * 1e9 / period_ns)


@pytest.mark.parametrize("speed", [1.0, 8.0, 30.0])
def test_replay_camera_delivers_speed_times_the_frames_at_the_nominal_spacing(
        clip: Path, speed: float) -> None:
    time = ManualTime()
    cam = ReplayCamera(clip, clock=MediaClock(speed, mono_ns=time.mono_ns, wait=time.wait))
    sink = run(cam, time, round(15 * speed) + 5)
    assert_paced(sink, 1_000_000_000 // 15, speed)
    assert cam.frames_dropped == 0


def test_sim_camera_delivers_speed_times_the_frames_at_the_nominal_spacing() -> None:
    time = ManualTime()
    cam = SimCamera(width=160, height=120, fps=10, gop=10, bitrate=200_000, overlay=False,
                    clock=MediaClock(4.0, mono_ns=time.mono_ns, wait=time.wait))
    sink = run(cam, time, 45)
    assert_paced(sink, 100_000_000, 4.0)
    assert cam.frames_dropped == 0


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_microphone_delivers_speed_times_the_audio_at_the_nominal_spacing(speed: float) -> None:
    time = ManualTime()
    start = time.ns
    mic = SimMicrophone(sample_rate=16_000, chunk_frames=1600,
                        clock=MediaClock(speed, mono_ns=time.mono_ns, wait=time.wait))
    sink = run(mic, time, round(10 * speed) + 5)
    assert_paced(sink, 100_000_000, speed)
    # A chunk is delivered once its last sample is captured: one chunk (in media time) after
    # the stamp of its first sample.
    assert sink.pts_us[0] * 1000 == start
    assert sink.wall_ns[0] - start == pytest.approx(100_000_000 / speed, abs=2)


def test_media_time_is_the_monotonic_clock_at_speed_one_and_runs_ahead_faster() -> None:
    time = ManualTime()
    real = MediaClock(1.0, mono_ns=time.mono_ns, wait=time.wait)
    fast = MediaClock(25.0, mono_ns=time.mono_ns, wait=time.wait)
    start = time.ns
    time.ns += 2_000_000_000
    assert real.now_ns() == time.ns
    assert fast.now_ns() == start + 50_000_000_000
    stop = threading.Event()
    assert fast.sleep(stop, 25_000_000_000) is False
    assert time.ns == start + 3_000_000_000  # 25 s of media is 1 s of wall time
    for bad in (0.5, 101.0):
        with pytest.raises(ValueError, match=r"within 1\.\.100"):
            MediaClock(bad)


def test_factory_puts_camera_and_microphone_on_one_media_clock(clip: Path,
                                                               tmp_path: Path) -> None:
    """One clock for both, or their stamps drift apart; real hardware refuses to speed up."""
    cfg = parse_config({"sim": {"camera": "replay", "replay": str(clip), "gps_route": "none"}})
    hw = build_hardware(cfg, kind="sim", data_dir=tmp_path, speed=12.0)
    try:
        clock = hw.camera._clock  # type: ignore[union-attr]
        assert clock.speed == 12.0
        assert hw.microphone._clock is clock  # type: ignore[union-attr]
    finally:
        hw.close()
    with pytest.raises(ValueError, match="only simulated hardware"):
        build_hardware(cfg, kind="pi", data_dir=tmp_path, speed=12.0)
