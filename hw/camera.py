"""Camera seam: what every camera driver (real or simulated) must deliver.

A camera here is the sensor *and* its always-running H.264 encoder, because that is how the
device works (picamera2's encoder thread) and because the recorder must only ever hold
encoded video in memory. Implementations call the sink from their own thread, once per
access unit, in capture order.

Contract (checked by ``tests/contract/test_camera_contract.py``):

* ``pts_us`` is the capture time on ``CLOCK_MONOTONIC`` in microseconds, strictly increasing.
* ``index`` counts frames produced since ``start()``; a gap in ``index`` means the driver
  dropped a frame and must be visible to the recorder (it is reported, never hidden).
* every keyframe is an IDR access unit in Annex-B form that carries SPS and PPS, so any
  segment can start on it.
* ``stop()`` returns only after the last ``sink`` call has finished.
* ``lux()`` is the scene illuminance (lux) the image pipeline estimated for the most recent
  frame -- picamera2/libcamera's per-frame ``Lux`` metadata; the simulator's light model --
  or None before the first frame or when the pipeline gives no estimate. Night vision
  (:mod:`agent.night`) switches on it. Every backend implements it; there is no default.
* ``frames_dropped`` counts frames that were due but never reached the sink (the status and
  the offload pacing read it); ``set_officer`` changes the officer id burned into the picture
  (a backend whose picture carries no overlay accepts and ignores it).
* ``restart(sink)`` is the recovery from a stall (picamera2 #1090: the pipeline stops
  returning buffers and only a close and reopen brings it back): stop however the pipeline
  lets it, bring the device back, and start delivering to ``sink`` again. It raises
  :class:`hw.errors.CameraError` when the camera cannot be brought back; the recorder's
  watchdog then retries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Camera", "EncodedFrame", "FrameSink", "VideoFormat"]


@dataclass(frozen=True, slots=True)
class VideoFormat:
    """What the encoder produces; recorded in every manifest."""

    width: int
    height: int
    fps: int
    bitrate: int
    codec: str = "h264"
    profile: str = "high"
    gop: int = 30

    @property
    def frame_interval_us(self) -> int:
        """Nominal time between frames, used by watchdogs and gap checks."""
        return 1_000_000 // self.fps


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One H.264 access unit as it leaves the encoder."""

    data: bytes
    pts_us: int
    keyframe: bool
    index: int


FrameSink = Callable[[EncodedFrame], None]


@runtime_checkable
class Camera(Protocol):
    """A sensor with an always-running encoder, delivering access units to one sink."""

    @property
    def format(self) -> VideoFormat:
        """The stream's format; fixed for the camera's lifetime."""
        ...

    def start(self, sink: FrameSink) -> None:
        """Start capturing; ``sink`` is called from the driver's thread for every frame."""
        ...

    def stop(self) -> None:
        """Stop capturing; returns after the last ``sink`` call completed."""
        ...

    @property
    def frames_delivered(self) -> int:
        """Access units handed to the sink since the first ``start()``."""
        ...

    @property
    def frames_dropped(self) -> int:
        """Frames that were due but were never handed to the sink (sensor, encoder or a
        stall lost them)."""
        ...

    def lux(self) -> float | None:
        """Estimated scene illuminance of the latest frame in lux; None if not known (yet).
        Safe to call from any thread."""
        ...

    def set_officer(self, officer_id: str) -> None:
        """Burn ``officer_id`` into the picture from the next frame on (thread-safe)."""
        ...

    def restart(self, sink: FrameSink) -> None:
        """Stop, bring the capture pipeline back (however wedged) and start again with
        ``sink``; raises :class:`hw.errors.CameraError` if the camera cannot be recovered."""
        ...
