"""The Camera contract, run against the simulator always and the picamera2 driver with --hw pi.

Each test arranges a camera, lets it run for a few seconds into a recording sink, and checks
the evidence: timestamps on ``CLOCK_MONOTONIC``, frame indices and visible drops, IDR
keyframes carrying SPS/PPS at the configured GOP, the frame rate, a stream that PyAV decodes
and ffprobe measures at the configured size, and the burned-in overlay read back from the
decoded picture with the same 5x7 font. With ``--hw pi`` the same checks run on
:class:`hw.camera_pi.PiCamera`; they skip cleanly when picamera2 or a camera is absent.
Off-Pi they run on both simulators: :class:`SimCamera` and :class:`ReplayCamera` (a clip made
with ffmpeg at test time, 2 s = 4 GOPs, so every run crosses loops); the replay camera plays
recorded pictures and has no overlay stage, so the overlay checks skip for it.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from agent.recording.packets import h264_parameter_sets, split_annexb
from hw.camera import Camera, EncodedFrame
from hw.camera_replay import ReplayCamera
from hw.camera_sim import SimCamera
from hw.errors import DeviceMissing
from hw.factory import is_raspberry_pi
from hw.font5x7 import GLYPH_H, GLYPH_W, render_text

pytestmark = pytest.mark.timeout(90)

W, H, FPS, GOP, BITRATE = 320, 240, 30, 15, 2_000_000
DEVICE, OFFICER = "BC0042", "PC7781"
RUN_S = 3.2
_IDR, _SPS, _PPS = 5, 7, 8
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-:./_#+ "
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


# --- arrangement ------------------------------------------------------------------------------
def make_clip(directory: Path, *, width: int, height: int, fps: int, gop: int,
              bitrate: int, seconds: float = 2.0) -> Path:
    """An H.264 clip like a camera's (IDR every ``gop``, no B-frames), made by ffmpeg."""
    path = directory / f"clip-{width}x{height}-{fps}-{gop}-{seconds}.mp4"
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size={width}x{height}:rate={fps}", "-t", str(seconds),
             "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-keyint_min", str(gop),
             "-sc_threshold", "0", "-bf", "0", "-b:v", str(bitrate), "-pix_fmt", "yuv420p",
             str(path)], check=True, timeout=60)
    return path


@pytest.fixture(scope="module", params=["sim", "replay"])
def camera_kind(request: pytest.FixtureRequest, hw_kind: str) -> str:
    """``pi`` with ``--hw pi``; otherwise each simulator in turn."""
    if hw_kind == "pi":
        if request.param == "replay":
            pytest.skip("--hw pi: the replay camera is a simulator")
        return "pi"
    return str(request.param)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the replay clips of this module are made."""
    return tmp_path_factory.mktemp("clips")


def needs_overlay(kind: str) -> None:
    """Skip a check of the burned-in overlay on a camera that has none."""
    if kind == "replay":
        pytest.skip("the replay camera plays recorded pictures: no overlay stage")


def make_camera(hw_kind: str, clip_dir: Path | None = None, **overrides: Any) -> Camera:
    """A camera of the selected kind at the test format (overridable per test)."""
    kw: dict[str, Any] = {"width": W, "height": H, "fps": FPS, "bitrate": BITRATE, "gop": GOP,
                          "device_id": DEVICE, "officer_id": OFFICER, "overlay": True}
    kw.update(overrides)
    if hw_kind == "replay":
        assert clip_dir is not None
        return ReplayCamera(make_clip(clip_dir, width=kw["width"], height=kw["height"],
                                      fps=kw["fps"], gop=kw["gop"], bitrate=kw["bitrate"]))
    if hw_kind != "pi":
        return SimCamera(**kw)
    if not is_raspberry_pi():
        pytest.skip("--hw pi: not running on a Raspberry Pi")
    from hw.camera_pi import PiCamera

    try:
        return PiCamera(**kw)
    except DeviceMissing as exc:
        pytest.skip(f"--hw pi: {exc}")


def release(camera: Camera) -> None:
    """Stop the camera and, for the real driver, give the device back."""
    camera.stop()
    close = getattr(camera, "close", None)
    if close is not None:
        close()


class Recorder:
    """A sink that keeps every frame with its arrival time, thread and call window."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.frames: list[EncodedFrame] = []
        self.arrivals_us: list[int] = []
        self.exits_us: list[int] = []
        self.threads: set[str] = set()
        self._delay = delay_s
        self._cond = threading.Condition()
        self._pause = threading.Event()

    def __call__(self, frame: EncodedFrame) -> None:
        arrival = time.monotonic_ns() // 1000
        if self._delay:
            self._pause.wait(self._delay)  # a slow consumer holding the driver's thread
        with self._cond:
            self.frames.append(frame)
            self.arrivals_us.append(arrival)
            self.threads.add(threading.current_thread().name)
            self.exits_us.append(time.monotonic_ns() // 1000)
            self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return len(self.frames)

    def wait_for(self, n: int, timeout: float = 15.0) -> int:
        """Block until ``n`` frames arrived (or the timeout); the count reached."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.frames) >= n, timeout)
            return len(self.frames)


@dataclass
class Run:
    """What one camera run left behind."""

    frames: list[EncodedFrame]
    arrivals_us: list[int]
    threads: set[str]
    start_us: int
    stop_returned_us: int
    dropped: int
    delivered: int
    late_calls: int
    stream: bytes = field(default=b"")


def record(camera: Camera, seconds: float, sink: Recorder | None = None) -> Run:
    """Run ``camera`` for ``seconds`` into a recorder, stop it, and watch for late calls."""
    rec = sink or Recorder()
    dropped0 = int(getattr(camera, "frames_dropped", 0))
    delivered0 = camera.frames_delivered
    start_us = time.monotonic_ns() // 1000
    camera.start(rec)
    rec.wait_for(1)
    threading.Event().wait(seconds)
    camera.stop()
    stop_us = time.monotonic_ns() // 1000
    at_stop = rec.count()
    threading.Event().wait(0.3)  # settle: a call after stop() would land here
    frames = list(rec.frames)
    return Run(frames, list(rec.arrivals_us), set(rec.threads), start_us, stop_us,
               int(getattr(camera, "frames_dropped", 0)) - dropped0,
               camera.frames_delivered - delivered0, rec.count() - at_stop,
               b"".join(f.data for f in frames))


def decode(stream: bytes) -> list[av.VideoFrame]:
    """Every picture PyAV decodes from an Annex-B H.264 stream."""
    with av.open(io.BytesIO(stream), mode="r", format="h264") as container:
        return list(container.decode(video=0))


def read_overlay(luma: np.ndarray, scale: int) -> str:
    """Read the burned-in 5x7 text back from a decoded luma plane ('?' = unreadable cell)."""
    table = {render_text(ch, 1)[:, :GLYPH_W].tobytes(): ch for ch in _ALPHABET}
    cell = (GLYPH_W + 1) * scale
    rows = scale + np.arange(GLYPH_H) * scale + scale // 2
    chars = []
    for x0 in range(scale, luma.shape[1] - GLYPH_W * scale, cell):
        cols = x0 + np.arange(GLYPH_W) * scale + scale // 2
        bits = luma[np.ix_(rows, cols)] > 128
        chars.append(table.get(bits.tobytes(), "?"))
    return "".join(chars).rstrip()


def overlay_utc(text: str) -> datetime | None:
    """The UTC second an overlay shows, if it shows one."""
    m = _STAMP.search(text)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) if m else None


def mono_to_utc(pts_us: int) -> float:
    """Map a CLOCK_MONOTONIC time to UTC through the clocks now."""
    return time.time() - (time.monotonic_ns() // 1000 - pts_us) / 1e6


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout
    return dict(json.loads(out)["streams"][0])


@pytest.fixture(scope="module")
def run(camera_kind: str, clip_dir: Path) -> Iterator[Run]:
    """One ~3 s run at 320x240, shared by the checks that only read its evidence."""
    camera = make_camera(camera_kind, clip_dir)
    try:
        yield record(camera, RUN_S)
    finally:
        release(camera)


@pytest.fixture
def camera_factory(camera_kind: str, clip_dir: Path) -> Iterator[Callable[..., Camera]]:
    """Build cameras for one test and release them all afterwards."""
    made: list[Camera] = []

    def build(**overrides: Any) -> Camera:
        cam = make_camera(camera_kind, clip_dir, **overrides)
        made.append(cam)
        return cam

    yield build
    for cam in made:
        release(cam)


# --- the contract -----------------------------------------------------------------------------
def test_driver_implements_the_protocol(camera_factory: Callable[..., Camera]) -> None:
    """The driver is a Camera and reports the format it was configured with."""
    cam = camera_factory()
    assert isinstance(cam, Camera)
    fmt = cam.format
    assert (fmt.width, fmt.height, fmt.fps, fmt.gop, fmt.codec) == (W, H, FPS, GOP, "h264")


def test_pts_are_strictly_increasing_monotonic_microseconds(run: Run) -> None:
    """pts rise strictly, lie between start() and stop() on CLOCK_MONOTONIC, precede arrival."""
    pts = [f.pts_us for f in run.frames]
    assert len(pts) >= FPS, "the camera delivered almost nothing"
    assert all(b > a for a, b in pairwise(pts))
    assert run.start_us - 100_000 <= pts[0] and pts[-1] <= run.stop_returned_us
    latency = [arr - p for p, arr in zip(pts, run.arrivals_us, strict=True)]
    assert min(latency) >= 0, "a frame arrived before it was captured: not CLOCK_MONOTONIC µs"
    assert max(latency) < 1_000_000


def test_index_gaps_are_exactly_the_counted_drops(run: Run) -> None:
    """Indices rise; every index skipped is a frame counted in frames_dropped."""
    idx = [f.index for f in run.frames]
    assert idx[0] >= 0 and all(b > a for a, b in pairwise(idx))
    assert run.dropped == (idx[-1] + 1) - len(idx)
    assert run.delivered == len(idx)
    assert len(idx) >= 0.5 * (idx[-1] + 1), "more than half the frames were dropped"


def test_first_frame_is_a_keyframe_and_every_keyframe_carries_sps_pps(run: Run) -> None:
    """The stream opens on an IDR; every keyframe can start a segment on its own."""
    assert run.frames[0].keyframe
    keys = [f for f in run.frames if f.keyframe]
    assert len(keys) >= 2
    for key in keys:
        params = h264_parameter_sets(key.data)
        assert params is not None, f"keyframe {key.index} lacks SPS"
        assert {u[0] & 0x1F for u in split_annexb(params)} == {_SPS, _PPS}
        assert _IDR in {u[0] & 0x1F for u in split_annexb(key.data)}
    for frame in run.frames:
        if not frame.keyframe:
            assert _IDR not in {u[0] & 0x1F for u in split_annexb(frame.data)}


def test_keyframes_come_every_gop_frames(run: Run) -> None:
    """Keyframes are exactly ``gop`` encoded frames apart."""
    positions = [i for i, f in enumerate(run.frames) if f.keyframe]
    assert [b - a for a, b in pairwise(positions)] == [GOP] * (len(positions) - 1)


def test_frame_rate_is_as_configured(run: Run) -> None:
    """Over the run, frame periods on the capture clock match the configured rate within 2%."""
    first, last = run.frames[0], run.frames[-1]
    assert last.pts_us - first.pts_us >= 2_500_000
    rate = (last.index - first.index) * 1e6 / (last.pts_us - first.pts_us)
    assert abs(rate - FPS) / FPS < 0.02, f"measured {rate:.2f} fps"


def test_stream_decodes_at_the_configured_size(run: Run, tmp_path: Path) -> None:
    """PyAV decodes every access unit; ffprobe reads the codec, size and frame count."""
    pictures = decode(run.stream)
    assert len(pictures) == len(run.frames)
    assert {(p.width, p.height) for p in pictures} == {(W, H)}
    path = tmp_path / "run.h264"
    path.write_bytes(run.stream)
    info = ffprobe(path)
    assert (info["codec_name"], info["width"], info["height"]) == ("h264", W, H)
    assert int(info["nb_read_frames"]) == len(run.frames)


def test_overlay_shows_capture_time_device_and_officer(run: Run, camera_kind: str) -> None:
    """The decoded picture carries UTC time (of capture, to the second), device and officer."""
    needs_overlay(camera_kind)
    pictures = decode(run.stream)
    scale = max(1, H // 270)
    for pos in (0, len(pictures) // 2, len(pictures) - 1):
        text = read_overlay(pictures[pos].to_ndarray(format="gray"), scale)
        assert DEVICE in text and f"OFC {OFFICER}" in text, text
        shown = overlay_utc(text)
        assert shown is not None, text
        expected = mono_to_utc(run.frames[pos].pts_us)
        assert abs(shown.timestamp() - expected) < 2.0, (text, expected)


def test_overlay_can_be_switched_off(camera_factory: Callable[..., Camera],
                                     camera_kind: str) -> None:
    """With the overlay off, the same reader finds no text: the overlay check can fail."""
    needs_overlay(camera_kind)
    result = record(camera_factory(overlay=False), 0.3)
    text = read_overlay(decode(result.stream)[0].to_ndarray(format="gray"), max(1, H // 270))
    assert DEVICE not in text and overlay_utc(text) is None


def test_set_officer_changes_the_overlay(camera_factory: Callable[..., Camera],
                                         camera_kind: str) -> None:
    """set_officer() shows the new officer id on frames captured after the call."""
    needs_overlay(camera_kind)
    cam = camera_factory()
    assert hasattr(cam, "set_officer")
    rec = Recorder()
    cam.start(rec)
    rec.wait_for(3)
    cam.set_officer("NEW123")
    changed_at = time.monotonic_ns() // 1000
    rec.wait_for(rec.count() + 10)
    cam.stop()
    frames = list(rec.frames)
    pictures = decode(b"".join(f.data for f in frames))
    scale = max(1, H // 270)
    assert f"OFC {OFFICER}" in read_overlay(pictures[0].to_ndarray(format="gray"), scale)
    assert "OFC NEW123" in read_overlay(pictures[-1].to_ndarray(format="gray"), scale)
    assert frames[-1].pts_us > changed_at


def test_stop_returns_after_the_last_sink_call(camera_factory: Callable[..., Camera]) -> None:
    """With a slow sink, stop() waits for the call in progress; nothing is delivered after."""
    rec = Recorder(delay_s=0.03)
    result = record(camera_factory(), 0.5, rec)
    assert result.frames, "no frame reached the slow sink"
    assert max(rec.exits_us) <= result.stop_returned_us
    assert result.late_calls == 0
    assert threading.current_thread().name not in result.threads


def test_stop_is_idempotent_and_the_camera_restarts(camera_factory: Callable[..., Camera]) -> None:
    """A stopped camera stops again harmlessly and starts again on a keyframe, index from 0."""
    cam = camera_factory()
    first = record(cam, 0.3)
    cam.stop()
    again = record(cam, 0.3)
    assert first.frames and again.frames
    assert again.frames[0].keyframe and again.frames[0].pts_us > first.frames[-1].pts_us
    assert again.frames[0].index <= again.dropped
    assert cam.frames_delivered >= len(first.frames) + len(again.frames)


def test_full_hd_stream_decodes_and_shows_the_overlay(
    camera_factory: Callable[..., Camera], tmp_path: Path, camera_kind: str
) -> None:
    """At 1920x1080 the few first frames decode at full size with a readable overlay."""
    cam = camera_factory(width=1920, height=1080, bitrate=8_000_000)
    rec = Recorder()
    cam.start(rec)
    rec.wait_for(4)
    cam.stop()
    frames = list(rec.frames)
    assert frames and frames[0].keyframe
    stream = b"".join(f.data for f in frames)
    pictures = decode(stream)
    assert {(p.width, p.height) for p in pictures} == {(1920, 1080)}
    path = tmp_path / "fullhd.h264"
    path.write_bytes(stream)
    info = ffprobe(path)
    assert (info["width"], info["height"]) == (1920, 1080)
    needs_overlay(camera_kind)
    text = read_overlay(pictures[0].to_ndarray(format="gray"), 1080 // 270)
    assert DEVICE in text and f"OFC {OFFICER}" in text, text


def test_simulated_stall_stops_frames_until_resumed(hw_kind: str) -> None:
    """Sim only: stall() silences the camera (picamera2 #1090); resume() restarts delivery."""
    if hw_kind != "sim":
        pytest.skip("stall()/resume() are simulator stimuli")
    cam = SimCamera(width=W, height=H, fps=FPS, gop=GOP, bitrate=BITRATE, device_id=DEVICE)
    rec = Recorder()
    try:
        cam.start(rec)
        rec.wait_for(5)
        cam.stall()
        at_stall = rec.count()
        threading.Event().wait(0.6)
        during = rec.count()
        cam.resume()
        rec.wait_for(during + 5)
    finally:
        cam.stop()
    frames = list(rec.frames)
    assert during - at_stall <= 1, "frames kept coming during a stall"
    assert len(frames) >= during + 5, "frames did not resume"
    jump = frames[during].index - frames[during - 1].index
    assert jump >= 0.6 * FPS * 0.8, f"index advanced only {jump} over the stall"
    pts = [f.pts_us for f in frames]
    assert all(b > a for a, b in pairwise(pts))


def test_a_simulated_stall_ends_at_a_restart_but_a_wedge_does_not(hw_kind: str) -> None:
    """Sim only: restart() ends a stall (as reopening picamera2 ends a real one); a wedged
    camera (a sensor gone from the bus) stays dark through restarts until resume() -- what
    lets the supervisor's escalation past restarting be exercised on the simulator."""
    if hw_kind != "sim":
        pytest.skip("stall()/wedge()/resume() are simulator stimuli")
    cam = SimCamera(width=W, height=H, fps=FPS, gop=GOP, bitrate=BITRATE, device_id=DEVICE)
    rec = Recorder()
    try:
        cam.start(rec)
        rec.wait_for(5)
        cam.stall()
        cam.restart(rec)
        rec.wait_for(rec.count() + 5)  # a stall: the restart brought frames back
        cam.wedge()
        cam.restart(rec)
        dark = rec.count()
        threading.Event().wait(0.5)
        assert rec.count() - dark <= 1, "a wedged camera delivered after a restart"
        cam.resume()
        rec.wait_for(dark + 5)
    finally:
        cam.stop()
