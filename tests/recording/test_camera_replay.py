"""The replay camera: a recorded clip, looped, delivered like a hardware encoder's output.

The camera contract suite (tests/contract/test_camera_contract.py) runs on it too; these
checks cover what only a replay has: looping without a seam in time or index, keyframes where
the clip has them, parameter sets on every IDR even when the file sends them once, refusal
of unusable files, the configuration that selects it, and its near-zero CPU cost.
"""

from __future__ import annotations

import subprocess
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from hw.camera import EncodedFrame
from hw.camera_replay import ReplayCamera, load_clip
from hw.errors import CameraError, ConfigError
from hw.factory import build_hardware

pytestmark = pytest.mark.timeout(60)

_SPS, _PPS, _IDR = 7, 8, 5


def make_clip(path: Path, *, size: str = "320x240", fps: int = 30, gop: int = 15,
              seconds: float = 1.0) -> Path:
    """A camera-like H.264 clip (IDR every ``gop``, no B-frames) made by ffmpeg."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop),
         "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p",
         str(path)], check=True, timeout=60)
    return path


def nal_types(au: bytes) -> list[int]:
    """NAL unit types of an Annex-B access unit."""
    parts = au.split(b"\x00\x00\x01")[1:]
    return [p[0] & 0x1F for p in parts if p]


class Collect:
    """A sink that keeps frames and wakes a waiter at a count."""

    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self._cond = threading.Condition()

    def __call__(self, frame: EncodedFrame) -> None:
        with self._cond:
            self.frames.append(frame)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 20.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.frames) >= n, timeout), len(self.frames)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s clip: 30 frames, keyframes at 0 and 15."""
    return make_clip(tmp_path_factory.mktemp("replay") / "clip.mp4")


def test_loops_keep_time_index_and_keyframes_continuous(clip: Path) -> None:
    """Over 2.5 loops: indices 0..n-1 without a gap, pts one frame interval apart on the
    monotonic clock, a keyframe exactly every 15 frames, and frame i is the clip's i mod 30."""
    cam = ReplayCamera(clip)
    units = load_clip(clip).frames
    sink = Collect()
    before = time.monotonic_ns() // 1000
    cam.start(sink)
    try:
        sink.wait_for(75)
    finally:
        cam.stop()
    frames = sink.frames
    assert cam.loops >= 2
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[0].pts_us >= before
    gaps = [b.pts_us - a.pts_us for a, b in pairwise(frames)]
    assert set(gaps) <= {33_333, 33_334}, set(gaps)
    assert [f.index for f in frames if f.keyframe] == list(range(0, len(frames), 15))
    assert all(f.data == units[f.index % 30][0] for f in frames)
    assert cam.frames_dropped == 0 and cam.frames_delivered == len(frames)


def test_format_comes_from_the_clip(clip: Path) -> None:
    """Size, rate and GOP are read from the stream; the bitrate is measured from it."""
    fmt = ReplayCamera(clip).format
    assert (fmt.width, fmt.height, fmt.fps, fmt.gop, fmt.codec) == (320, 240, 30, 15, "h264")
    assert fmt.bitrate == sum(len(au) for au, _ in load_clip(clip).frames) * 8


def test_raw_stream_gets_parameter_sets_on_every_idr(clip: Path, tmp_path: Path) -> None:
    """A raw Annex-B file that sends SPS/PPS only once still yields keyframes that each carry
    them (a segment can open on any keyframe), with the slices untouched."""
    frames = load_clip(clip).frames
    stripped = [frames[0][0]]
    for au, _ in frames[1:]:
        nals = au.split(b"\x00\x00\x00\x01")
        stripped.append(b"".join(b"\x00\x00\x00\x01" + n for n in nals
                                 if n and n[0] & 0x1F not in (_SPS, _PPS)))
    assert _SPS not in nal_types(stripped[15])
    raw = tmp_path / "clip.h264"
    raw.write_bytes(b"".join(stripped))
    replayed = load_clip(raw, fps=30).frames
    assert len(replayed) == 30
    assert [i for i, (_, key) in enumerate(replayed) if key] == [0, 15]
    for au, key in replayed:
        if key:
            assert {_SPS, _PPS, _IDR} <= set(nal_types(au))
    assert replayed[15][0].endswith(stripped[15])


@pytest.mark.parametrize("content", [b"", b"not a video at all\n" * 100], ids=["empty", "text"])
def test_unusable_files_are_a_camera_error(tmp_path: Path, content: bytes) -> None:
    """An empty, non-video or missing file is a clear CameraError naming the file."""
    for name in ("bad.mp4", "bad.h264"):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CameraError, match=name):
            ReplayCamera(path)
    with pytest.raises(CameraError, match=r"missing\.mp4"):
        ReplayCamera(tmp_path / "missing.mp4")


def test_config_selects_the_replay_camera(clip: Path, tmp_path: Path) -> None:
    """[sim] camera = "replay" builds the replay camera on the named clip; without a clip the
    configuration is refused naming sim.replay."""
    toml = tmp_path / "replay.toml"
    toml.write_text(f'[sim]\ncamera = "replay"\nreplay = "{clip}"\ngps_route = "none"\n')
    hw = build_hardware(load_config(toml), kind="sim", data_dir=tmp_path)
    try:
        assert isinstance(hw.camera, ReplayCamera)
        assert hw.camera.format.gop == 15
    finally:
        hw.close()
    with pytest.raises(ConfigError, match=r"sim\.replay"):
        parse_config({"sim": {"camera": "replay"}})


def test_playback_costs_almost_no_cpu(tmp_path: Path) -> None:
    """Delivering 1080p30 for 1.5 s costs well under 5 % of a core (a hardware encoder's
    share: the recorder's benchmarks measure the recorder, not the camera)."""
    cam = ReplayCamera(make_clip(tmp_path / "hd.mp4", size="1920x1080", seconds=1.0))
    sink = Collect()
    cpu0 = time.process_time()
    cam.start(sink)
    try:
        sink.wait_for(45)
    finally:
        cam.stop()
    used = time.process_time() - cpu0
    assert used < 0.05 * 1.5, f"{used:.3f} CPU-s for 1.5 s of playback"
