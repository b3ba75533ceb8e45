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
from typing import TYPE_CHECKING

from agent.commands import CommandSet
from agent.errors import RecordingRefused
from agent.evidence.store import RetentionViolation
from agent.status import status_snapshot
from agent.watch import FrameWatchdog

if TYPE_CHECKING:
    from agent.app import Agent

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)


class Supervisor:
    """Policies and watchdogs of one agent."""

    def __init__(self, agent: Agent, commands: CommandSet) -> None:
        self.a = agent
        self.c = commands
        self._battery_level = "ok"
        self._storage_level = "ok"
        self._last_stall_restart = 0.0
        self._last_mic_restart = 0.0
        # Audio progress while a camera runs (the frame watchdog then watches the camera only).
        self.mic_watchdog = FrameWatchdog(stall_after_s=agent.cfg.recording.stall_after_s)
        self._storage_retry = 0.0
        self._next_autostart = 0.0
        self._next_sync_tick = 0.0

    def tick(self, now: float) -> None:
        """Controller tick: feedback, watchdog, battery and storage policies."""
        a = self.a
        a.feedback.tick(now)
        if self.c.sync is not None and now >= self._next_sync_tick:
            self._next_sync_tick = now + 1.0
            self.c.sync.tick(now, status_snapshot(a))
        progress = (a.hw.camera.frames_delivered if a.hw.camera is not None
                    else a.controller.audio_chunks_in)
        if a.frame_watchdog.check(now, progress):
            self._capture_stalled(now)
        if a.hw.camera is not None and a.hw.microphone is not None \
                and self.mic_watchdog.check(now, a.controller.audio_chunks_in):
            self._microphone_stalled(now)
        pw = a.power_watch
        if pw is not None:
            verdict = pw.poll(now, "recording" if a.recorder.state == "recording" else "standby")
            if verdict is not None:
                self._battery(verdict.level, verdict.reasons)
        sv = a.storage_watch.poll(now)
        if sv is not None:
            self._storage(sv.level, sv.reasons, now)
        if a.cfg.device.profile == "fixed" and a.recorder.state == "standby" \
                and now >= self._next_autostart:
            self._autostart(now)
        reason = a.recorder.fault_reason or ""
        if a.recorder.state == "fault" and reason.startswith("storage"):
            if self._storage_retry == 0.0:
                self._storage_retry = now + 5.0  # let the fault be seen before probing
            elif now >= self._storage_retry:
                self._storage_retry = now + 5.0
                self._retry_storage()
        else:
            self._storage_retry = 0.0

    def _autostart(self, now: float) -> None:
        """Fixed camera: record continuously, with no button; retry every 10 s when refused."""
        if len(self.a.recorder.preroll) == 0:
            return  # nothing captured yet: the recording must begin on a keyframe
        self._next_autostart = now + 10.0
        try:
            self.c.start_recording("continuous")
        except RecordingRefused as exc:
            log.warning("continuous recording not started: %s", exc)

    def _probe_storage(self) -> None:
        """Write, fsync and remove a small probe file through the storage seam (the path
        evidence takes), raising OSError while the disk still fails."""
        probe = self.a.data_dir / "state" / "write-probe"
        with self.a.hw.storage.open_append(probe) as f:
            f.write(b"probe\n")
            fsync = getattr(f, "fsync", None)
            fsync() if callable(fsync) else os.fsync(f.fileno())
        probe.unlink()

    def _retry_storage(self) -> None:
        """After a storage fault: once the disk takes writes again, seal what the fault left
        open (its journal) and return to standby."""
        self.a.recorder.drain()  # the seals the fault started are done (or abandoned)
        try:
            self._probe_storage()
            recovered = self.a.store.recover()
        except OSError as exc:
            log.info("storage still failing: %s", exc)
            return
        for signed in recovered:  # to the back office, exactly like a segment sealed normally
            self.c.segment_sealed(signed)
        self.a.recorder.clear_fault()
        self.a.storage_watch.fault = None
        self.c.event("storage_recovered", {"recovered_segments": len(recovered)})
        self.a.feedback.show("standby")

    def _battery(self, level: str, reasons: tuple[str, ...]) -> None:
        prev, self._battery_level = self._battery_level, level
        if level == prev:
            return
        self.c.event("battery", {"level": level, "reasons": list(reasons)})
        if level == "warn":
            self.a.feedback.warning()
        if level == "critical" and self.a.recorder.state == "recording":
            self.c.stop_recording("low_battery")
        if level == "critical":
            self.a.store.log_event("low_battery_shutdown", reasons=list(reasons),
                                   recording_id=self.a.recorder.recording_id)
        self.a.feedback.show(self.a.recorder.state, warning=level != "ok")

    def _storage(self, level: str, reasons: tuple[str, ...], now: float) -> None:
        if level == "full":
            self._evict_for_space(now)
            sv = self.a.storage_watch.poll(now, force=True)
            level = sv.level if sv is not None else level
        prev, self._storage_level = self._storage_level, level
        if level == prev:
            return
        self.c.event("storage", {"level": level, "reasons": list(reasons)})
        if level == "warn":
            self.a.feedback.warning()
        if level == "full" and self.a.recorder.state == "recording":
            self.c.stop_recording("storage_full")
            self.a.store.log_event("storage_full", reasons=list(reasons),
                                   recording_id=self.a.recorder.recording_id)
        self.a.feedback.show(self.a.recorder.state, warning=level != "ok")

    def _evict_for_space(self, now: float) -> None:
        from agent.retention import evict_acknowledged

        try:
            evict_acknowledged(self.a, now)
        except RetentionViolation as exc:
            log.error("eviction refused: %s", exc)

    def _capture_stalled(self, now: float) -> None:
        a = self.a
        device = "camera" if a.hw.camera is not None else "microphone"
        self.c.event("camera_stall" if device == "camera" else "microphone_stall",
                    {"frames": a.hw.camera.frames_delivered if a.hw.camera else 0})
        if a.recorder.state in ("recording", "stopping"):
            a.recorder.fault(f"{device} stalled: nothing captured for "
                             f"{a.cfg.recording.stall_after_s} s")
            a.feedback.show("fault")
        if now - self._last_stall_restart > 5.0:
            self._last_stall_restart = now
            self._restart_capture(device)

    def _microphone_stalled(self, now: float) -> None:
        """No audio for stall_after_s beside a running camera: report it, restart the stream.
        The recording goes on (its video is intact); the gap is in the evidence log."""
        a = self.a
        self.c.event("microphone_stall", {"chunks": a.controller.audio_chunks_in})
        log.warning("no audio for %.1f s; restarting the microphone", a.cfg.recording.stall_after_s)
        a.feedback.warning()
        if now - self._last_mic_restart <= 5.0 or a.hw.microphone is None:
            return
        self._last_mic_restart = now
        try:
            a.hw.microphone.stop()
            a.hw.microphone.start(a.controller.on_audio)
        except Exception:
            log.exception("microphone restart failed")
            return
        a.store.log_event("microphone_restart", reason="stall",
                          recording_id=a.recorder.recording_id)

    def _restart_capture(self, device: str) -> None:
        a = self.a
        log.warning("restarting the %s pipeline after a stall", device)
        try:
            if device == "camera" and a.hw.camera is not None:
                a.hw.camera.stop()
                if hasattr(a.hw.camera, "resume"):
                    a.hw.camera.resume()
                a.hw.camera.start(a.controller.on_frame)
            elif a.hw.microphone is not None:
                a.hw.microphone.stop()
                a.hw.microphone.start(a.controller.on_audio)
        except Exception:
            log.exception("%s restart failed", device)
            return
        self.a.store.log_event(f"{device}_restart", reason="stall")
        if self.a.recorder.state == "fault":
            self.a.recorder.clear_fault()
            self.a.feedback.show("standby")
