"""The picamera2 stream plumbing behind :class:`hw.camera_pi.PiCamera`: encoder choice and the
``Output`` that turns encoded buffers into :class:`~hw.camera.EncodedFrame` sink calls.

The facts these follow (threads, timestamps, silent drops, parameter sets) are set out in
:mod:`hw.camera_pi`'s docstring. Kept apart so the driver reads as its life cycle (open,
configure, start, stop, restart, overlay) and this as the per-frame path; nothing here imports
picamera2 until a camera is started.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from hw.camera import EncodedFrame, FrameSink, VideoFormat
from hw.errors import CameraError

__all__ = ["make_encoder", "make_output"]

log = logging.getLogger(__name__)

_NAL_IDR, _NAL_SPS, _NAL_PPS = 5, 7, 8


class _Counters(Protocol):
    """What the output reports back to its camera (called on picamera2's threads)."""

    @property
    def format(self) -> VideoFormat: ...

    def _record_error(self, exc: BaseException) -> None: ...

    def _count_delivered(self) -> None: ...

    def _count_dropped(self, n: int) -> None: ...

    def _check_clock(self, first_pts_us: int) -> None: ...


def _nal_units(data: bytes) -> list[tuple[int, int, int]]:
    """(type, start, end) of each NAL unit in an Annex-B access unit, end excluding the next code."""
    starts: list[tuple[int, int]] = []  # (start code offset, payload offset)
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        code = i - 1 if i > 0 and data[i - 1] == 0 else i
        starts.append((code, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    units = []
    for k, (code, payload) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(data)
        if payload < end:
            units.append((data[payload] & 0x1F, code, end))
    return units


def _with_parameter_sets(data: bytes, cached: bytes) -> tuple[bytes, bytes]:
    """The access unit with SPS/PPS guaranteed when it is an IDR, and the SPS/PPS to cache."""
    units = _nal_units(data)
    params = b"".join(data[s:e] for t, s, e in units if t in (_NAL_SPS, _NAL_PPS))
    has_sps = any(t == _NAL_SPS for t, _, _ in units)
    if has_sps:
        return data, params
    if cached and any(t == _NAL_IDR for t, _, _ in units):
        return cached + data, cached
    return data, cached


class _AccessUnitOutput:
    """Turns picamera2 ``outputframe`` calls into :class:`EncodedFrame` sink calls.

    Built by :meth:`hw.camera_pi.PiCamera.start` as an instance of a subclass of ``picamera2.outputs.Output``
    (see :func:`make_output`), so this module imports without picamera2.
    """

    def __init__(self, camera: _Counters, sink: FrameSink, encoder: Any) -> None:
        self._camera = camera
        self._sink = sink
        self._encoder = encoder
        self._interval_us = camera.format.frame_interval_us
        self._gate = threading.Lock()
        self._open = True
        self._base_us: int | None = None
        self._prev_pts: int | None = None
        self._index = -1
        self._started_key = False
        self._params = b""

    def close_within(self, timeout_s: float) -> bool:
        """Deliver nothing more, waiting for a sink call in progress (False: it overran)."""
        if not self._gate.acquire(timeout=timeout_s):
            self._open = False  # a wedged sink call: at least nothing new starts after this
            return False
        try:
            self._open = False
        finally:
            self._gate.release()
        return True

    def outputframe(
        self,
        frame: Any,
        keyframe: bool = True,
        timestamp: int | None = None,
        packet: Any = None,
        audio: bool = False,
    ) -> None:
        """Called by the encoder thread for every encoded buffer; never raises."""
        if audio or frame is None or timestamp is None:
            return
        try:
            with self._gate:
                if self._open:
                    self._deliver(bytes(frame), bool(keyframe), int(timestamp))
        except Exception as exc:  # an escaping exception would stop the encoder thread for good
            self._camera._record_error(CameraError(f"delivering a frame failed: {exc!r}"))

    def _deliver(self, data: bytes, keyframe: bool, rel_us: int) -> None:
        if self._base_us is None:
            first = self._encoder.firsttimestamp
            self._base_us = int(first) if first is not None else 0
            self._camera._check_clock(self._base_us + rel_us)
        pts = self._base_us + rel_us
        if self._prev_pts is not None and pts <= self._prev_pts:
            self._camera._record_error(
                CameraError(f"encoder returned a non-increasing timestamp ({pts} after {self._prev_pts})")
            )
            return
        if self._prev_pts is None:
            steps = 1
        else:  # whole frame periods since the previous frame; more than one means drops
            steps = max(1, round((pts - self._prev_pts) / self._interval_us))
            self._camera._count_dropped(steps - 1)
        self._prev_pts = pts
        self._index += steps
        if not self._started_key and not keyframe:  # a stream must open on an IDR
            self._camera._count_dropped(1)
            return
        self._started_key = True
        if keyframe:
            data, self._params = _with_parameter_sets(data, self._params)
        self._sink(EncodedFrame(data=data, pts_us=pts, keyframe=keyframe, index=self._index))
        self._camera._count_delivered()


def make_output(camera: _Counters, sink: FrameSink, encoder: Any) -> Any:
    """An ``Output`` picamera2's encoders accept, forwarding to :class:`_AccessUnitOutput`."""
    from picamera2.outputs import Output

    class _Output(Output):  # type: ignore[misc]  # picamera2 ships no type information
        def __init__(self) -> None:
            super().__init__()
            self.units = _AccessUnitOutput(camera, sink, encoder)

        def outputframe(
            self,
            frame: Any,
            keyframe: bool = True,
            timestamp: int | None = None,
            packet: Any = None,
            audio: bool = False,
        ) -> None:
            self.units.outputframe(frame, keyframe, timestamp, packet, audio)

    return _Output()


def make_encoder(fmt: VideoFormat) -> tuple[Any, str]:
    """The H.264 encoder for this Pi, chosen explicitly, and a name saying which it is."""
    from picamera2.platform import Platform, get_platform

    if get_platform() == Platform.VC4:
        from picamera2.encoders.h264_encoder import H264Encoder

        encoder = H264Encoder(
            bitrate=fmt.bitrate, repeat=True, iperiod=fmt.gop, framerate=fmt.fps, profile=fmt.profile
        )
        return encoder, "h264_v4l2m2m (bcm2835-codec hardware)"
    from picamera2.encoders.libav_h264_encoder import LibavH264Encoder

    class _FixedGopLibavEncoder(LibavH264Encoder):  # type: ignore[misc]  # untyped base
        """libx264 with the GOP pinned: no scene-cut keyframes, no B-frames."""

        def _start(self) -> None:
            super()._start()
            self._stream.codec_context.options["x264-params"] = (
                f"keyint={fmt.gop}:min-keyint={fmt.gop}:scenecut=0:bframes=0"
            )

    encoder = _FixedGopLibavEncoder(
        bitrate=fmt.bitrate, repeat=True, iperiod=fmt.gop, framerate=fmt.fps, profile=fmt.profile
    )
    log.info("Pi 5 (PiSP) has no hardware H.264 encoder: encoding with libx264 in software")
    return encoder, "libx264 (software)"
