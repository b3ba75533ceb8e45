"""What the recorder does about the world, checked on every controller tick.

Battery and storage policies act here: a warning is shown and sent; critical battery or
full storage seals the open segment, logs why (``low_battery_shutdown``, ``storage_full``)
and stops; only acknowledged segments are ever evicted to make room. The frame-progress
watchdog restarts a stalled camera (or microphone); beside a camera, the microphone has its own
watchdog, because a dead audio stream stops nothing else (PortAudio ends a stream silently) and
would otherwise leave recordings without sound unnoticed; a storage fault is retried through the
storage seam until the disk takes writes again; a fixed camera restarts its recording; and
fleet telemetry goes out on its period.

Not thread-safe: runs on the controller thread only (registered with ``every_tick``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.evidence.store import RetentionViolation
from agent.ports import BatteryWatch, Capture, EvidenceOps, Indicators, RecorderView, SpaceWatch
from agent.recording.control import RecordingControl
from agent.upkeep.watches import FrameWatchdog
from hw.errors import RecordingRefused

__all__ = ["Supervised", "Supervisor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Supervised:
    """What the supervisor watches and acts on. ``control`` starts and stops recordings with
    the same admission and reasons as the commands, and reports events; ``evict`` makes room
    by evicting acknowledged segments (returns bytes freed); ``open_append`` is the storage
    seam evidence is written through (probed after a storage fault); ``status`` is the
    snapshot sent as telemetry."""

    recorder: RecorderView
    control: RecordingControl
    indicators: Indicators
    store: EvidenceOps
    capture: Capture
    frame_watchdog: FrameWatchdog
    battery: BatteryWatch | None
    storage: SpaceWatch
    evict: Callable[[], int]
    open_append: Callable[[Path], Any]
    data_dir: Path
    status: Callable[[], dict[str, Any]]
    profile: str
    stall_after_s: float


RESTARTS_BEFORE_FAILED = 3  # capture restarts without a frame before the device is declared failed
MAX_RESTART_PAUSE_S = 300.0  # longest pause between restarts of a failed device


class Supervisor:
    """Policies and watchdogs of one recorder."""

    def __init__(self, parts: Supervised) -> None:
        self.p = parts
        self._battery_level = "ok"
        self._storage_level = "ok"
        self._last_stall_restart = 0.0
        self._restarts = 0  # capture restarts since frames last flowed
        self._failed = False  # the capture device was declared failed (reported once)
        self._progress_at_restart: int | None = None
        self._last_mic_restart = 0.0
        # Audio progress while a camera runs (the frame watchdog then watches the camera only).
        self.mic_watchdog = FrameWatchdog(stall_after_s=parts.stall_after_s)
        self._storage_retry = 0.0
        self._next_autostart = 0.0
        self._next_sync_tick = 0.0

    def tick(self, now: float) -> None:
        """Controller tick: feedback, watchdog, battery and storage policies."""
        p = self.p
        p.indicators.tick(now)
        sync = p.control.sync
        if sync is not None and now >= self._next_sync_tick:
            self._next_sync_tick = now + 1.0
            sync.tick(now, p.status())
        cap = p.capture
        progress = cap.progress()
        if p.frame_watchdog.check(now, progress):
            self._capture_stalled(now)
        elif self._progress_at_restart is not None and progress != self._progress_at_restart:
            self._capture_recovered()
        if cap.camera is not None and cap.microphone is not None \
                and self.mic_watchdog.check(now, cap.audio_chunks_in()):
            self._microphone_stalled(now)
        if p.battery is not None:
            verdict = p.battery.poll(now, "recording" if p.recorder.state == "recording"
                                     else "standby")
            if verdict is not None:
                self._battery(verdict.level, verdict.reasons)
        sv = p.storage.poll(now)
        if sv is not None:
            self._storage(sv.level, sv.reasons, now)
        if p.profile == "fixed" and p.recorder.state == "standby" \
                and now >= self._next_autostart:
            self._autostart(now)
        reason = p.recorder.fault_reason or ""
        if p.recorder.state == "fault" and reason.startswith("storage"):
            if self._storage_retry == 0.0:
                self._storage_retry = now + 5.0  # let the fault be seen before probing
            elif now >= self._storage_retry:
                self._storage_retry = now + 5.0
                self._retry_storage()
        else:
            self._storage_retry = 0.0

    def _autostart(self, now: float) -> None:
        """Fixed camera: record continuously, with no button; retry every 10 s when refused."""
        if len(self.p.recorder.preroll) == 0:
            return  # nothing captured yet: the recording must begin on a keyframe
        self._next_autostart = now + 10.0
        try:
            self.p.control.start_recording("continuous")
        except RecordingRefused as exc:
            log.warning("continuous recording not started: %s", exc)

    def _probe_storage(self) -> None:
        """Write, fsync and remove a small probe file through the storage seam (the path
        evidence takes), raising OSError while the disk still fails."""
        probe = self.p.data_dir / "state" / "write-probe"
        with self.p.open_append(probe) as f:
            f.write(b"probe\n")
            fsync = getattr(f, "fsync", None)
            fsync() if callable(fsync) else os.fsync(f.fileno())
        probe.unlink()

    def _retry_storage(self) -> None:
        """After a storage fault: once the disk takes writes again, seal what the fault left
        open (its journal) and return to standby."""
        self.p.recorder.drain()  # the seals the fault started are done (or abandoned)
        try:
            self._probe_storage()
            recovered = self.p.store.recover()
        except OSError as exc:
            log.info("storage still failing: %s", exc)
            return
        for signed in recovered:  # to the back office, exactly like a segment sealed normally
            self.p.control.segment_sealed(signed)
        self.p.recorder.clear_fault()
        self.p.storage.clear_fault()
        self.p.control.event("storage_recovered", {"recovered_segments": len(recovered)})
        self.p.indicators.show("standby")

    def _battery(self, level: str, reasons: tuple[str, ...]) -> None:
        prev, self._battery_level = self._battery_level, level
        if level == prev:
            return
        self.p.control.event("battery", {"level": level, "reasons": list(reasons)})
        if level == "warn":
            self.p.indicators.warning()
        if level == "critical" and self.p.recorder.state == "recording":
            self.p.control.stop_recording("low_battery")
        if level == "critical":
            self.p.store.log_event("low_battery_shutdown", reasons=list(reasons),
                                   recording_id=self.p.recorder.recording_id)
        self.p.indicators.show(self.p.recorder.state, warning=level != "ok")

    def _storage(self, level: str, reasons: tuple[str, ...], now: float) -> None:
        if level == "full":
            self._evict_for_space(now)
            sv = self.p.storage.poll(now, force=True)
            level = sv.level if sv is not None else level
        prev, self._storage_level = self._storage_level, level
        if level == prev:
            return
        self.p.control.event("storage", {"level": level, "reasons": list(reasons)})
        if level == "warn":
            self.p.indicators.warning()
        if level == "full" and self.p.recorder.state == "recording":
            self.p.control.stop_recording("storage_full")
            self.p.store.log_event("storage_full", reasons=list(reasons),
                                   recording_id=self.p.recorder.recording_id)
        self.p.indicators.show(self.p.recorder.state, warning=level != "ok")

    def _evict_for_space(self, now: float) -> None:
        try:
            self.p.evict()
        except RetentionViolation as exc:
            log.error("eviction refused: %s", exc)

    def _capture_stalled(self, now: float) -> None:
        """Nothing captured for ``stall_after_s``: fault a recording (sealing what is open),
        then restart the capture pipeline through its own ``restart``. The fault is cleared
        only once frames flow again. After :data:`RESTARTS_BEFORE_FAILED` restarts that
        brought nothing back the device is declared failed -- fault shown, a warning, one
        ``camera_failed`` log entry -- and restarts go on with a growing pause (up to
        :data:`MAX_RESTART_PAUSE_S`), while the health gate stops vouching for the agent."""
        p = self.p
        cam = p.capture.camera
        device = "camera" if cam is not None else "microphone"
        p.control.event("camera_stall" if device == "camera" else "microphone_stall",
                        {"frames": cam.frames_delivered if cam else 0})
        if p.recorder.state in ("recording", "stopping"):
            p.recorder.fault(f"{device} stalled: nothing captured for {p.stall_after_s} s")
            p.indicators.show("fault")
        if self._restarts >= RESTARTS_BEFORE_FAILED and not self._failed:
            self._failed = True
            self._capture_failed(device)
        extra = self._restarts - RESTARTS_BEFORE_FAILED
        pause = 5.0 if extra < 0 else min(MAX_RESTART_PAUSE_S, 10.0 * 2 ** extra)
        if now - self._last_stall_restart > pause:
            self._last_stall_restart = now
            self._restart_capture(device)

    def _capture_failed(self, device: str) -> None:
        """Restarts did not bring the pictures back: say so, once, clearly."""
        p = self.p
        reason = (f"{device} failed: nothing captured after {self._restarts} restarts; "
                  "the unit needs service")
        log.error("%s", reason)
        p.store.log_event(f"{device}_failed", restarts=self._restarts)
        p.control.event(f"{device}_failed", {"restarts": self._restarts})
        if p.recorder.state != "fault":
            p.recorder.fault(reason)
        p.indicators.show("fault")
        p.indicators.warning()

    def _capture_recovered(self) -> None:
        """Frames flow again after a restart: the fault it caused is cleared."""
        p = self.p
        self._restarts, self._progress_at_restart, self._failed = 0, None, False
        reason = p.recorder.fault_reason or ""
        if p.recorder.state == "fault" and reason.startswith(("camera ", "microphone ")):
            p.recorder.clear_fault()
            p.indicators.show("standby")

    def _microphone_stalled(self, now: float) -> None:
        """No audio for stall_after_s beside a running camera: report it, restart the stream.
        The recording goes on (its video is intact); the gap is in the evidence log."""
        p = self.p
        p.control.event("microphone_stall", {"chunks": p.capture.audio_chunks_in()})
        log.warning("no audio for %.1f s; restarting the microphone", p.stall_after_s)
        p.indicators.warning()
        if now - self._last_mic_restart <= 5.0 or p.capture.microphone is None:
            return
        self._last_mic_restart = now
        try:
            p.capture.restart_microphone()
        except Exception:
            log.exception("microphone restart failed")
            return
        p.store.log_event("microphone_restart", reason="stall",
                          recording_id=p.recorder.recording_id)

    def _restart_capture(self, device: str) -> None:
        p = self.p
        log.warning("restarting the %s pipeline after a stall", device)
        try:
            if device == "camera":
                p.capture.restart_camera()
            else:
                p.capture.restart_microphone()
        except Exception:
            log.exception("%s restart failed", device)
            self._restarts += 1
            return
        self._restarts += 1
        self._progress_at_restart = p.capture.progress()
        p.store.log_event(f"{device}_restart", reason="stall", attempt=self._restarts)
