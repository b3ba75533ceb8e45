"""Raspberry Pi camera on picamera2: sensor, always-running H.264 encoder, burned-in overlay.

Facts this driver is built around (read in picamera2's source, ``raspberrypi/picamera2``,
and its issue tracker):

* **Threads.** ``Picamera2.start()`` runs an event loop in its own thread (the ``NullPreview``
  thread when no preview is shown). For every completed request it calls ``pre_callback``
  while holding ``Picamera2.lock``, then hands the request to each encoder
  (``Picamera2.process_requests``). ``H264Encoder`` (V4L2, ``/dev/video11``) queues the
  buffer and returns; its own poll thread calls ``Output.outputframe`` as encoded buffers
  come back. ``LibavH264Encoder`` encodes synchronously, so there ``outputframe`` runs on the
  event-loop thread itself. Our sink therefore runs on the encoder thread (Pi 4) or the
  camera thread (Pi 5) and must be quick on both.
* **An exception kills the pipeline silently.** ``NullPreview.handle_request`` logs and
  re-raises, which ends the event-loop thread: no further frames, no error anywhere. An
  exception in the V4L2 poll thread ends it, after which the camera thread blocks forever in
  ``buf_available.get()``. Hence neither our ``pre_callback`` nor our ``outputframe`` lets
  any exception escape; they record it in :attr:`PiCamera.error` for the health checks.
* **Timestamps.** ``Encoder._timestamp`` takes ``SensorTimestamp`` (ns) from the request
  metadata, divides by 1000 and *subtracts the first frame's value* (kept in
  ``encoder.firsttimestamp``, µs), so ``outputframe`` receives µs since the first frame.
  We add ``firsttimestamp`` back to get the capture time. libcamera documents
  ``SensorTimestamp`` as ``CLOCK_BOOTTIME``; the Raspberry Pi pipeline copies it from the
  V4L2 capture buffer, and picamera2 itself compares it against ``time.monotonic_ns()``
  (``capture_request(flush=True)``). The two clocks differ only across a system suspend,
  which this device never does; the driver checks the first frame against
  ``CLOCK_MONOTONIC`` and reports an error if they disagree by more than a second.
* **Silent drops (#427).** Requests that complete with a non-success status are released
  without a word (``process_requests``), and when the event loop falls behind, libcamera
  runs out of buffers and the sensor drops frames. Neither is reported. Every such frame
  leaves a gap of whole frame periods in ``SensorTimestamp`` (the frame duration is pinned
  with ``FrameDurationLimits``), so the driver counts drops from the gaps and advances
  :attr:`EncodedFrame.index` by them: a drop is always visible to the recorder.
* **Stalls (#1090, #1392).** After hours of streaming the camera or the V4L2 codec can stop
  returning buffers with no error at all (threads blocked in ``v4l2_m2m_fop_poll``); only a
  close and reopen recovers. The recorder's frame-progress watchdog watches
  :attr:`PiCamera.frames_delivered`; :meth:`PiCamera.stop` is bounded by a timeout and raises
  :class:`CameraStalled` instead of hanging the controller when the pipeline is wedged.
* **Encoders.** ``picamera2.encoders.H264Encoder`` is the V4L2 hardware encoder only on VC4
  (Pi 4 and earlier); on PiSP (Pi 5) the same name is silently ``LibavH264Encoder``, software
  libx264. The driver picks explicitly by ``picamera2.platform.get_platform()`` and says which
  in :attr:`PiCamera.encoder_name`. ``repeat=True`` puts SPS/PPS before every IDR (V4L2
  ``REPEAT_SEQ_HEADER``; for libx264 by leaving ``GLOBAL_HEADER`` unset). ``iperiod`` sets the
  GOP; for libx264 we also pin ``keyint``/``min-keyint`` and ``scenecut=0`` so the GOP is
  exactly as configured. The V4L2 encoder drops buffers that hold SPS/PPS but no picture
  (``_check_for_picture``); should a keyframe ever arrive without them, the driver prepends
  the last parameter sets it saw.
* **Stopping.** ``Picamera2.stop()`` stops the camera (on the event-loop thread, waiting for
  it); ``stop_encoder()`` then joins the V4L2 poll thread (which gives up on buffers not
  returned within 400 ms) or flushes libx264's queue, calling ``outputframe`` for the tail.
  Only after both does the driver close its gate, so the last frames are delivered and no
  sink call can follow :meth:`PiCamera.stop`.
* **Outputs.** picamera2's ``CircularOutput2 → SplittableOutput → PyavOutput`` chain shows
  what the recorder must do itself instead: ``CircularOutput2.close_output()`` drops the
  buffered tail (only ``stop()`` flushes it), and ``SplittableOutput.split_output()`` blocks
  until the next keyframe arrives, forever if frames stop. This driver therefore only hands
  access units to one sink; pre-roll and segmenting live in the recorder.
* **Overlay.** ``pre_callback`` may write into the buffer through ``MappedArray`` before the
  encoders see it; for ``YUV420`` the array is ``(height * 3 // 2, stride)`` with the luma
  plane first. A slow callback delays every frame behind it (#427, and the picamera2 manual's
  advice), so the text mask is rendered once per second and each frame costs one slice copy
  (:mod:`hw.camera_pi_overlay`).

Locking: :class:`hw.camera_pi_overlay.PiOverlay`'s ``_lock`` guards the officer id and the
cached overlay block (written by the controller, read by the camera thread).
:class:`hw.camera_pi_stream._AccessUnitOutput` has its own ``_gate`` lock, held around every
sink call, so closing it waits for a call in progress.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from hw.camera import FrameSink, VideoFormat
from hw.camera_pi_overlay import PiOverlay
from hw.camera_pi_stream import make_encoder, make_output
from hw.errors import CameraError, CameraStalled, DeviceMissing
from hw.still import Still, encode_jpeg, i420_from_padded

__all__ = ["PiCamera"]

log = logging.getLogger(__name__)

_CLOCK_TOLERANCE_US = 1_000_000


class PiCamera:
    """The Pi camera module behind the :class:`hw.camera.Camera` contract."""

    def __init__(
        self,
        *,
        width: int = 1920,
        height: int = 1080,
        fps: int = 30,
        bitrate: int = 8_000_000,
        gop: int = 30,
        overlay: bool = True,
        device_id: str = "",
        officer_id: str = "",
        camera_num: int = 0,
        buffer_count: int = 6,
        stop_timeout_s: float = 5.0,
        still_timeout_s: float = 2.0,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if width % 2 or height % 2 or not 1 <= fps <= 120 or gop < 1:
            raise CameraError(f"unsupported video mode {width}x{height}@{fps} gop {gop}")
        self._overlay = overlay
        self._stop_timeout_s = stop_timeout_s
        self._still_timeout_s = still_timeout_s
        self._mono_ns = mono_ns
        self._delivered = 0
        self._dropped = 0
        self._overlay_failures = 0
        self._error: BaseException | None = None
        self._output: Any = None
        self._running = False
        self._lux: float | None = None
        self._camera_num = camera_num
        self._buffer_count = buffer_count
        self._picam2 = self._open(camera_num)
        try:
            from libcamera import controls
            from picamera2 import MappedArray

            self._stamper = PiOverlay(device_id=device_id, officer_id=officer_id, width=width,
                                      scale=max(1, height // 270), mapped_array=MappedArray,
                                      sensor_timestamp=controls.SensorTimestamp, wall=wall,
                                      mono_ns=mono_ns)
            self._lux_control: Any = controls.Lux
            self._platform_profile = self._profile_for_platform()
            self._format = VideoFormat(width=width, height=height, fps=fps, bitrate=bitrate,
                                       profile=self._platform_profile, gop=gop)
            self._configure(buffer_count)
            self._encoder, self._encoder_name = make_encoder(self._format)
        except Exception as exc:
            self._picam2.close()
            raise CameraError(f"cannot configure the camera for {width}x{height}@{fps}: {exc}") from exc

    # --- contract ---------------------------------------------------------------------------
    @property
    def format(self) -> VideoFormat:
        """The encoded stream's format."""
        return self._format

    @property
    def frames_delivered(self) -> int:
        """Access units handed to the sink since the first ``start()``."""
        return self._delivered

    @property
    def frames_dropped(self) -> int:
        """Frames the sensor, ISP or encoder lost, counted from timestamp gaps."""
        return self._dropped

    @property
    def overlay_failures(self) -> int:
        """Frames that went out without their overlay because stamping failed."""
        return self._overlay_failures

    @property
    def error(self) -> BaseException | None:
        """The last error the camera threads hit (they never raise; health reads this)."""
        return self._error

    @property
    def encoder_name(self) -> str:
        """Which H.264 encoder runs: the V4L2 hardware codec or software libx264."""
        return self._encoder_name

    def start(self, sink: FrameSink) -> None:
        """Start the encoder and the camera; ``sink`` runs on picamera2's threads."""
        if self._running:
            raise CameraError("camera already started")
        output = make_output(self, sink, self._encoder)
        self._output = output
        self._picam2.pre_callback = self._per_frame
        try:
            self._picam2.start_encoder(self._encoder, output)
            self._picam2.start()
        except Exception as exc:
            self._teardown_after_failed_start()
            raise CameraError(f"cannot start the camera: {exc}") from exc
        self._running = True

    def stop(self) -> None:
        """Stop the camera, flush the encoder and return after the last sink call.

        Raises :class:`CameraStalled` if the pipeline does not stop within ``stop_timeout_s``
        (a wedged camera or codec); no sink call starts after this returns or raises.
        """
        if not self._running:
            return
        self._running = False
        done = threading.Event()
        failure: list[BaseException] = []

        def halt() -> None:
            try:
                self._picam2.stop()
                self._picam2.stop_encoder(self._encoder)
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=halt, name="picamera2-stop", daemon=True).start()
        finished = done.wait(self._stop_timeout_s)
        units = self._output.units
        closed = units.close_within(self._stop_timeout_s if finished else 0.5)
        self._picam2.pre_callback = None
        if not finished or not closed:
            raise CameraStalled(
                f"camera did not stop within {self._stop_timeout_s:.1f} s; the capture pipeline "
                "is wedged and the camera must be closed and reopened"
            )
        if failure:
            raise CameraError(f"stopping the camera failed: {failure[0]}") from failure[0]

    def restart(self, sink: FrameSink) -> None:
        """Recover from a stall: stop (a wedged pipeline raises :class:`CameraStalled`, which
        is expected here), close picamera2, open and configure the camera afresh with a new
        encoder, and start delivering to ``sink``. A stalled camera or V4L2 codec comes back
        only through a close and reopen (#1090, #1392). Raises :class:`CameraError` when the
        camera cannot be reopened (for instance while the old instance stays wedged); the
        caller retries later. ``frames_delivered``/``frames_dropped`` keep counting."""
        try:
            self.stop()
        except CameraError as exc:
            log.warning("camera restart: %s", exc)
        self._close_picam2()
        try:
            self._picam2 = self._open(self._camera_num)
        except DeviceMissing as exc:
            raise CameraError(f"camera restart: {exc}") from exc
        try:
            self._configure(self._buffer_count)
            self._encoder, self._encoder_name = make_encoder(self._format)
        except Exception as exc:
            self._close_picam2()
            raise CameraError(f"camera restart: cannot configure the camera again: {exc}") from exc
        self.start(sink)

    # --- controller verbs -------------------------------------------------------------------
    def set_officer(self, officer_id: str) -> None:
        """Change the officer id burned into the picture from the next frame on."""
        self._stamper.set_officer(officer_id)

    def capture_still(self) -> Still:
        """The next main-stream picture (YUV 4:2:0, overlay included) as a JPEG.

        ``capture_array`` takes the next completed request while the encoder keeps running,
        so taking a still never interrupts a recording. It waits at most ``still_timeout_s``
        (picamera2's numeric ``wait``, >= 0.3.20): on a stalled pipeline no request ever
        completes, and an unbounded wait would hang the controller thread that called this. A
        timed-out job is cancelled (``cancel_all_and_flush``) so it cannot fire later, and the
        stall is raised as :class:`CameraStalled`. The array is ``height * 3/2`` rows of the
        stream's stride; :func:`hw.still.i420_from_padded` takes the planes out of it.
        """
        fmt = self._format
        mono_us = time.monotonic_ns() // 1000
        try:
            arr = self._picam2.capture_array("main", wait=self._still_timeout_s)
        except TimeoutError as exc:  # concurrent.futures.TimeoutError is TimeoutError (3.11)
            with contextlib.suppress(Exception):
                self._picam2.cancel_all_and_flush()
            raise CameraStalled(
                f"no picture within {self._still_timeout_s:.1f} s for a still: the capture "
                "pipeline is stalled"
            ) from exc
        except Exception as exc:  # picamera2 raises RuntimeError for a stopped camera
            raise CameraError(f"capturing a still failed: {exc}") from exc
        try:
            i420 = i420_from_padded(arr, fmt.width, fmt.height)
        except ValueError as exc:
            raise CameraError(f"the camera returned an unexpected still buffer: {exc}") from exc
        return Still(encode_jpeg(i420, fmt.width, fmt.height), fmt.width, fmt.height, mono_us)

    def close(self) -> None:
        """Stop if running and release the camera for other processes (bounded in time)."""
        try:
            self.stop()
        finally:
            self._close_picam2()

    def _close_picam2(self) -> None:
        """Close the current Picamera2 instance, waiting at most ``stop_timeout_s``."""
        closer = threading.Thread(target=self._picam2.close, name="picamera2-close", daemon=True)
        closer.start()
        closer.join(self._stop_timeout_s)
        if closer.is_alive():
            log.error("the camera did not close within %.1f s; it stays wedged until reboot",
                      self._stop_timeout_s)

    # --- picamera2 plumbing -----------------------------------------------------------------
    @staticmethod
    def _open(camera_num: int) -> Any:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise DeviceMissing(f"camera: picamera2 is not installed ({exc})") from exc
        cameras = Picamera2.global_camera_info()
        if camera_num >= len(cameras):
            raise DeviceMissing(
                f"camera: no camera {camera_num} connected (libcamera sees {len(cameras)}); "
                "check the ribbon cable and camera_auto_detect in config.txt"
            )
        try:
            return Picamera2(camera_num)
        except Exception as exc:  # picamera2 wraps every open failure in RuntimeError
            raise DeviceMissing(f"camera: cannot open camera {camera_num}: {exc}") from exc

    @staticmethod
    def _profile_for_platform() -> str:
        from picamera2.platform import Platform, get_platform

        # The VC4 codec does High profile in hardware; libx264's cheapest preset is Baseline.
        return "high" if get_platform() == Platform.VC4 else "baseline"

    def _configure(self, buffer_count: int) -> None:
        fmt = self._format
        duration_us = round(1_000_000 / fmt.fps)
        config = self._picam2.create_video_configuration(
            main={"size": (fmt.width, fmt.height), "format": "YUV420"},
            controls={"FrameDurationLimits": (duration_us, duration_us)},
            buffer_count=buffer_count,
        )
        self._picam2.configure(config)
        size = tuple(self._picam2.camera_configuration()["main"]["size"])
        if size != (fmt.width, fmt.height):
            raise CameraError(f"the camera can only deliver {size[0]}x{size[1]}")
        # Drop counting assumes frames come exactly every 1/fps: refuse a mode that cannot.
        limits = self._picam2.camera_controls.get("FrameDurationLimits")
        if limits is not None and int(limits[0]) > duration_us:
            raise CameraError(
                f"the sensor mode for {fmt.width}x{fmt.height} cannot run faster than "
                f"{1_000_000 / int(limits[0]):.1f} fps; {fmt.fps} fps was asked for"
            )

    def _teardown_after_failed_start(self) -> None:
        for step in (self._picam2.stop, lambda: self._picam2.stop_encoder(self._encoder)):
            try:
                step()
            except Exception as exc:  # best effort: the start error is what the caller sees
                log.debug("cleanup after a failed start: %s", exc)
        self._picam2.pre_callback = None

    # --- called from picamera2's threads ----------------------------------------------------
    def _record_error(self, exc: BaseException) -> None:
        if self._error is None or str(self._error) != str(exc):
            log.error("%s", exc)
        self._error = exc

    def _count_delivered(self) -> None:
        self._delivered += 1

    def _count_dropped(self, n: int) -> None:
        if n > 0:
            self._dropped += n

    def _check_clock(self, first_pts_us: int) -> None:
        now_us = self._mono_ns() // 1000
        if abs(now_us - first_pts_us) > _CLOCK_TOLERANCE_US:
            self._record_error(
                CameraError(
                    f"SensorTimestamp is not on CLOCK_MONOTONIC: first frame at {first_pts_us} us, "
                    f"monotonic clock {now_us} us"
                )
            )

    def lux(self) -> float | None:
        """libcamera's ``Lux`` estimate for the latest frame (None before one, or if the
        tuning file has no lux algorithm)."""
        return self._lux

    def _per_frame(self, request: Any) -> None:
        """``pre_callback``: note the frame's light estimate, burn the overlay; never raises."""
        # no Lux in this frame's metadata (or no lux algorithm): keep the last estimate
        with contextlib.suppress(Exception):
            self._lux = float(request.request.metadata[self._lux_control])
        if self._overlay:
            self._stamp(request)

    def _stamp(self, request: Any) -> None:
        """``pre_callback``: burn UTC time, device and officer into the luma plane; never raises."""
        try:
            self._stamper.burn(request)
        except Exception as exc:  # an escaping exception would end picamera2's event loop
            self._overlay_failures += 1
            self._record_error(CameraError(f"overlay failed: {exc!r}"))
