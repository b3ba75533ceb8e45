"""The Pi camera driver's restart, against a stand-in picamera2 (no Pi, no libcamera here).

A stalled picamera2 pipeline comes back only through a close and reopen (#1090, #1392), so
``PiCamera.restart`` must close the wedged instance, open and configure a new one with a new
encoder, and deliver to the new sink -- also when ``stop`` itself times out on the wedge. The
stand-in modules record what the driver asked of picamera2; nothing here needs a camera.
"""

from __future__ import annotations

import enum
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from hw.camera import EncodedFrame
from hw.errors import CameraError

IDR = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x68\x01" + b"\x00\x00\x00\x01\x65\x88"


class FakePicamera2:
    """Records the calls the driver makes; ``wedge`` makes ``stop`` block like a stall."""

    instances: ClassVar[list[FakePicamera2]] = []
    refuse_open = False

    def __init__(self, num: int) -> None:
        if FakePicamera2.refuse_open:
            raise RuntimeError("Camera __init__ sequence did not complete")
        self.calls: list[str] = []
        self.output: Any = None
        self.pre_callback: Any = None
        self.wedge = threading.Event()
        self.camera_controls = {"FrameDurationLimits": (100, 1_000_000)}
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [{"Model": "imx708"}]

    def create_video_configuration(self, **kw: Any) -> dict[str, Any]:
        return kw

    def configure(self, config: dict[str, Any]) -> None:
        self.size = config["main"]["size"]
        self.calls.append("configure")

    def camera_configuration(self) -> dict[str, Any]:
        return {"main": {"size": self.size}}

    def start_encoder(self, encoder: Any, output: Any) -> None:
        self.output = output
        self.calls.append("start_encoder")

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        if self.wedge.is_set():
            threading.Event().wait(5)  # a wedged pipeline: longer than the driver waits
        self.calls.append("stop")

    def stop_encoder(self, encoder: Any) -> None:
        self.calls.append("stop_encoder")

    def close(self) -> None:
        self.calls.append("close")


class FakeEncoder:
    def __init__(self, **kw: Any) -> None:
        self.firsttimestamp: int | None = None


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakePicamera2]]:
    """picamera2 and libcamera as modules that record, installed for the test only."""
    FakePicamera2.instances = []
    FakePicamera2.refuse_open = False
    platform = types.ModuleType("picamera2.platform")
    platform.Platform = enum.Enum("Platform", "VC4 PISP")  # type: ignore[attr-defined]
    platform.get_platform = lambda: platform.Platform.VC4  # type: ignore[attr-defined]
    outputs = types.ModuleType("picamera2.outputs")
    outputs.Output = type("Output", (), {"__init__": lambda self: None})  # type: ignore[attr-defined]
    h264 = types.ModuleType("picamera2.encoders.h264_encoder")
    h264.H264Encoder = FakeEncoder  # type: ignore[attr-defined]
    pkg = types.ModuleType("picamera2")
    pkg.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    pkg.MappedArray = object  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.controls = types.SimpleNamespace(SensorTimestamp="SensorTimestamp", Lux="Lux")  # type: ignore[attr-defined]
    for name, mod in {"picamera2": pkg, "picamera2.platform": platform,
                      "picamera2.outputs": outputs, "picamera2.encoders": types.ModuleType("e"),
                      "picamera2.encoders.h264_encoder": h264, "libcamera": libcamera}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    yield FakePicamera2


def _camera(**kw: Any) -> Any:
    from hw.camera_pi import PiCamera

    return PiCamera(width=320, height=240, fps=30, overlay=False, stop_timeout_s=0.3, **kw)


def _deliver(picam2: FakePicamera2, ts_us: int) -> None:
    picam2.output.outputframe(IDR, keyframe=True, timestamp=ts_us)


def test_restart_closes_picamera2_and_delivers_from_a_new_one(
        fake_picamera2: type[FakePicamera2]) -> None:
    """restart(): the old instance is stopped and closed, a new one is configured and started,
    and frames from it reach the new sink; the counters keep counting across the restart."""
    first_frames: list[EncodedFrame] = []
    second_frames: list[EncodedFrame] = []
    cam = _camera()
    cam.start(first_frames.append)
    old = fake_picamera2.instances[0]
    _deliver(old, 0)
    cam.restart(second_frames.append)
    assert len(fake_picamera2.instances) == 2
    new = fake_picamera2.instances[1]
    assert old.calls[-3:] == ["stop", "stop_encoder", "close"]
    assert new.calls == ["configure", "start_encoder", "start"]
    _deliver(new, 0)
    assert len(first_frames) == 1 and len(second_frames) == 1
    assert cam.frames_delivered == 2
    cam.close()


def test_restart_recovers_a_pipeline_whose_stop_is_wedged(
        fake_picamera2: type[FakePicamera2]) -> None:
    """When stop() times out on the wedge (CameraStalled), restart still closes and reopens."""
    frames: list[EncodedFrame] = []
    cam = _camera()
    cam.start(frames.append)
    old = fake_picamera2.instances[0]
    old.wedge.set()
    cam.restart(frames.append)
    assert "close" in old.calls and len(fake_picamera2.instances) == 2
    _deliver(fake_picamera2.instances[1], 0)
    assert len(frames) == 1
    cam.close()


def test_a_camera_that_cannot_be_reopened_is_a_camera_error(
        fake_picamera2: type[FakePicamera2]) -> None:
    """If libcamera refuses the reopen, restart raises CameraError (the watchdog retries)."""
    cam = _camera()
    cam.start(lambda f: None)
    fake_picamera2.refuse_open = True
    with pytest.raises(CameraError, match="camera restart"):
        cam.restart(lambda f: None)
