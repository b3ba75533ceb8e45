"""The agent: builds the recorder from configuration and hardware, runs it, shuts it down.

Start-up order matters for evidence:

1. the data directory must be writable (else a clear error before anything is touched);
2. the device key must exist (on a device: ``bodycam keys init`` at provisioning; the simulator
   creates one) -- without it nothing can be signed, so recording is refused;
3. the evidence store seals whatever a crash left open (``recovered``) *before* the camera
   starts, so a recovered segment precedes the new boot in the log;
4. a ``boot`` event is logged; then the pipeline starts, and the health gate tells systemd
   ``READY=1`` once frames flow.

Shutdown (SIGTERM, ``--for`` elapsed) seals the open segment, logs ``shutdown`` and stops the
devices; nothing is left half-written.

The parts only some units have (simulator bench, fleet link, uploader, night vision, trigger
inputs) are built by :mod:`agent.optional_parts`; this module decides when.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent import __version__, optional_parts
from agent.atomic import fsync_dir
from agent.clock.keeper import TimeKeeper
from agent.command.command_set import CommandPorts, CommandSet
from agent.command.ctl_server import CtlServer, socket_path
from agent.command.overrides import LiveConfig, with_overrides
from agent.config import Config, station_public_keys
from agent.evidence.store import EvidenceStore
from agent.matters.catalogue import MatterCatalogue
from agent.matters.quick import QuickList
from agent.night import NightPort
from agent.ports import Capture
from agent.power.battery_policy import BatteryPolicy
from agent.power.projection import PowerProjector
from agent.provision import boot_id, check_data_dir, content_credentials, device_key, recipients
from agent.recording.aac import AacEncoder
from agent.recording.control import RecordingControl
from agent.recording.controller import Controller
from agent.recording.fault_ports import BoundaryGapPort
from agent.recording.feedback import Feedback
from agent.recording.gestures import GestureRecognizer
from agent.recording.recorder import Recorder
from agent.recording.segment import SegmentPort
from agent.recording.segment_worker import SegmentWorker
from agent.recording.store_port import ManifestContext, StorePort
from agent.sdnotify import Notifier
from agent.status import StatusSources, status_snapshot
from agent.storage.reclaim import evict_acknowledged
from agent.storage.space_policy import BitrateMeter, StoragePolicy
from agent.triggers import TriggerBank
from agent.upkeep.liveness import HealthGate
from agent.upkeep.reactions import Supervised, Supervisor
from agent.upkeep.watches import FrameWatchdog, PowerWatch, StorageWatch
from agent.witness import WitnessPool
from agent.witnessing import start_witnessing
from hw.factory import Hardware, build_hardware

__all__ = ["Agent"]

log = logging.getLogger(__name__)


class Agent:
    """One running recorder: the composition root.

    It builds every part and wires each to the narrow views of the others it needs
    (:mod:`agent.ports`); no part below it sees the agent. Simulated hardware adds a
    :class:`~agent.ports.Bench` (button pin, stimuli), a generated device key and bench
    identity, and the bench's fault ports around the recorder's (:mod:`agent.recording.
    fault_ports`) -- decided here, once, from the hardware set.
    """

    def __init__(self, cfg: Config, *, data_dir: Path, hw_kind: str,
                 hardware: Hardware | None = None, notifier: Notifier | None = None) -> None:
        self.data_dir = check_data_dir(data_dir)
        cfg = with_overrides(cfg, self.data_dir)
        self.settings = LiveConfig(cfg, self.data_dir)
        self.hw = hardware or build_hardware(cfg, kind=hw_kind, data_dir=self.data_dir)
        self.bench = optional_parts.bench_for(self.hw)
        self.notifier = notifier or Notifier.from_env()
        self._stop = threading.Event()
        self._threads_stop = threading.Event()
        self._shut_down = False
        simulated = self.bench is not None
        self.key = device_key(self.data_dir, simulated=simulated)
        self.recipients = recipients(cfg.evidence, self.data_dir, simulated=simulated)
        credentials = content_credentials(cfg, self.data_dir)
        self.store = EvidenceStore(
            self.data_dir, key=self.key, recipients=self.recipients,
            encrypt=cfg.evidence.encrypt, device_id=cfg.device.id,
            open_append=self.hw.storage.open_append,
            station_keys=station_public_keys(cfg.offload),
            after_seal=credentials,
        )
        # First boot: the store has just created recordings/, log/ and state/; until the data
        # directory is fsynced a power cut takes all three, and every segment under them, away.
        fsync_dir(self.data_dir)
        self.recovered = self.store.recover()
        if credentials is not None:  # a power cut between a log leaf and its credential
            from agent.c2pa.backfill import issue_missing
            issue_missing(credentials, self.data_dir, self.store.log.entries())
        self.witness_pool: WitnessPool | None = None
        self.boot_id = boot_id()
        self.store.log_event("boot", boot_id=self.boot_id, version=__version__,
                             hardware=self.hw.kind, recovered=len(self.recovered))
        self.time = TimeKeeper(cfg.time, on_step=self._clock_step)
        self.matters = MatterCatalogue.load(cfg.matters.catalogue or None)
        self.quick = QuickList(cfg.matters.quick_list, self.matters) if cfg.matters.quick_list else None
        self._build_pipeline()

    # --- construction -----------------------------------------------------------------------
    def _build_pipeline(self) -> None:
        cfg, hw = self.cfg, self.hw
        cam, mic = hw.camera, hw.microphone
        self.aac = AacEncoder(mic.format, bitrate=cfg.audio.bitrate,
                              coder=cfg.audio.aac_coder) if mic is not None else None
        self.ctx = ManifestContext(
            utc_for_mono_us=self.time.utc_for_mono_us,
            clock_info=self.time.clock_info,
            gps_summary=self.time.gps_summary,
            segment_opened=self.time.open_track,
            matter=self._matter_for_manifest,
            officer_id=lambda: self.commands.officer_id,
            unit=cfg.device.unit,
            boot_id=self.boot_id,
        )
        self.port = StorePort(self.store, self.ctx, video=cam.format if cam else None,
                              audio=mic.format if mic else None, audio_bitrate=cfg.audio.bitrate,
                              on_sealed=self._on_sealed)
        self.night = optional_parts.night_vision(cfg, hw, self._night_switch)
        self.segment_worker = SegmentWorker()  # the recording's file work (agent.recording.segment_worker)
        port: SegmentPort = NightPort(self.port, self.night) if self.night else self.port
        if self.bench is not None and cfg.sim.boundary_gap_ms:  # bench fault: media lost at rolls
            port = BoundaryGapPort(port, gap_us=cfg.sim.boundary_gap_ms * 1000)
        self.recorder = Recorder(
            port=port,
            video=cam.format if cam else None, audio=mic.format if mic else None,
            audio_extradata=self.aac.extradata if self.aac else b"",
            audio_bitrate=cfg.audio.bitrate, prerecord_s=cfg.recording.prerecord_s,
            prerecord_audio=cfg.recording.prerecord_audio, segment_s=cfg.recording.segment_s,
            on_event=self._on_recorder_event,
            worker=self.segment_worker,
        )
        frame_us = cam.format.frame_interval_us if cam else 0
        self.controller = Controller(
            recorder=self.recorder, aac=self.aac,
            gestures=GestureRecognizer(hold_s=cfg.recording.stop_hold_s,
                                       double_press_s=cfg.recording.double_press_s),
            frame_interval_us=frame_us, sync_interval_s=cfg.recording.sync_interval_s,
        )
        self.segment_worker.set_wake(lambda: self.controller.post("wake"))
        self.feedback = Feedback(hw.controls, reminder_s=cfg.recording.reminder_s)
        nominal_bps = (cfg.video.bitrate if cam else 0) + (cfg.audio.bitrate if mic else 0)
        self.meter = BitrateMeter(max(1, nominal_bps) / 8)
        self.storage_watch = StorageWatch(
            hw.storage,
            StoragePolicy(cfg.storage.warn_min * 60, cfg.storage.reserve_segments,
                          segment_s=cfg.recording.segment_s),
            self.meter, poll_s=cfg.storage.poll_s)
        self.power_watch = (
            PowerWatch(hw.power, BatteryPolicy(cfg.power.warn_min * 60, cfg.power.critical_min * 60,
                                               cfg.power.undervoltage_grace_s),
                       PowerProjector(nominal_recording_w=cfg.power.nominal_recording_w,
                                      pack_wh=cfg.power.pack_wh or None),
                       poll_s=cfg.power.poll_s)
            if hw.power is not None else None)
        self.frame_watchdog = FrameWatchdog(stall_after_s=cfg.recording.stall_after_s)
        self.capture = Capture(cam, mic, self.controller.on_frame, self.controller.on_audio,
                               lambda: self.controller.audio_chunks_in)
        self.recording = RecordingControl(
            recorder=self.recorder, indicators=self.feedback, store=self.store,
            storage=self.storage_watch, battery=self.power_watch, meter=self.meter, camera=cam,
            seal_still=self.port.seal_still, profile=cfg.device.profile)
        self.commands = CommandSet(CommandPorts(
            recorder=self.recorder, recording=self.recording, indicators=self.feedback,
            store=self.store, requests=self.controller, settings=self.settings,
            matters=self.matters, quick=self.quick, camera=cam, status=self.status,
            bench=self.bench))
        self.commands.register(self.controller)
        self.supervisor = Supervisor(Supervised(
            recorder=self.recorder, control=self.recording, indicators=self.feedback,
            store=self.store, capture=self.capture, frame_watchdog=self.frame_watchdog,
            battery=self.power_watch, storage=self.storage_watch,
            evict=lambda: evict_acknowledged(
                self.store, self.storage_watch, self.data_dir,
                min_age_s=self.cfg.storage.min_retention_h * 3600),
            open_append=hw.storage.open_append, data_dir=self.data_dir, status=self.status,
            profile=cfg.device.profile, stall_after_s=cfg.recording.stall_after_s))
        self.triggers = TriggerBank(cfg.triggers, on_activation=self.commands.trigger)
        self.sync = optional_parts.fleet_sync(
            self.cfg, hw, officer_id=self.commands.officer_id, data_dir=self.data_dir,
            store=self.store, key=self.key, submit=self.controller.submit)
        self.recording.sync = self.sync
        self._live_settings()
        self.health = HealthGate(frames=self._frames_delivered, heartbeat=self._heartbeat,
                                 notifier=self.notifier, stall_after_s=cfg.recording.stall_after_s)
        self.ctl = CtlServer(socket_path(self.data_dir), self.commands.respond)
        self.offloader = optional_parts.offloader(self.cfg, hw, self.store, data_dir=self.data_dir,
                                                  queue_depth=self.controller.queue_depth)
        self._status = self._status_sources()

    @property
    def cfg(self) -> Config:
        """The configuration as it is now (remote changes included)."""
        return self.settings.cfg

    def _live_settings(self) -> None:
        """What each remotely settable key changes in the running recorder."""
        on, rec, pw, sw = self.settings.on_change, self.recorder, self.power_watch, self.storage_watch
        on("recording.prerecord_s", rec.preroll.resize)
        on("recording.segment_s", rec.set_segment_s)
        on("recording.reminder_s", self.feedback.set_reminder)
        if pw is not None:
            on("power.warn_min", lambda v: pw.set_warn_s(v * 60))
        on("storage.warn_min", lambda v: sw.set_warn_s(v * 60))
        on("device.officer_id", self.commands.set_officer)
        on("matters.default", self.commands.default_matter, check=self.commands.check_matter)
        if self.sync is not None:
            on("mqtt.telemetry_s", self.sync.set_telemetry_period)

    def _status_sources(self) -> StatusSources:
        """Where ``ctl status``, telemetry and the fleet's state read from, in snapshot order."""
        def witnesses() -> dict[str, Any]:
            if self.witness_pool is None:
                return {}
            from agent.witnessing import witness_status

            return {"witnesses": witness_status(self.witness_pool)}

        sections: list[Callable[[], Mapping[str, Any]]] = [self.time.status]
        if self.power_watch is not None:
            sections.append(self.power_watch.telemetry)
        sections.append(self.storage_watch.telemetry)
        if self.sync is not None:
            sections.append(self.sync.status)
        if self.offloader is not None:
            off = self.offloader
            sections.append(lambda: off.status().fields())
        sections.append(witnesses)
        # failures of what runs beside the recording (fleet link, feedback, observers, the
        # manifest's context, the after-seal hook): each was logged; none stopped anything
        sections.append(lambda: {"side_channel_failures": self.controller.side_channel_failures
                                 + self.port.side_channel_failures})
        return StatusSources(
            device_id=self.cfg.device.id, profile=self.cfg.device.profile, hardware=self.hw.kind,
            data_dir=self.data_dir, recorder=self.recorder, commands=self.commands,
            capture=self.capture, queue_depth=self.controller.queue_depth,
            queue_max=lambda: self.controller.max_queue,
            camera_stalls=lambda: self.frame_watchdog.stalls,
            log_size=lambda: self.store.log.size, sections=sections)

    def status(self) -> dict[str, Any]:
        """The status snapshot (controller thread)."""
        return status_snapshot(self._status)

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the controller, the devices, the control socket and the health gate."""
        hw, c = self.hw, self.controller
        self.controller.every_tick(self.supervisor.tick)
        self.controller.observe_packets(self._meter_packet)
        optional_parts.watch_triggers(self.triggers, hw.controls, c)
        if self.night is not None:
            c.every_tick(self.night.tick)
        c.start()
        hw.controls.on_edges(c.on_press, c.on_release)
        if hw.camera is not None:
            hw.camera.start(c.on_frame)
        if hw.microphone is not None:
            hw.microphone.start(c.on_audio)
        if hw.gps is not None:
            hw.gps.start(self.time.on_fix)
        self.ctl.start()
        self.witness_pool = start_witnessing(self.cfg.witnesses, self.store.log,
                                             self.data_dir / "log")
        # The indicators belong to the controller thread (the supervisor may already be
        # warning on it): gpiozero's blink threads do not survive two threads setting an LED.
        c.post("call", lambda: self.feedback.show("standby"))
        if self.offloader is not None:
            self.offloader.start()
        threading.Thread(target=self.health.run, args=(self._threads_stop,),
                         name="health", daemon=True).start()
        # READY=1 is the health gate's to send, once frames really flow: systemd must not
        # believe a recorder is up whose camera never delivered a frame.
        self._await_frames()
        self.commands.started()

    def _night_switch(self, mono_us: int, night: bool, lux: int) -> None:
        """The optics switched: an evidence-log event (the picture changes character)."""
        self.store.log_event("night_vision", ir=night, lux=lux, mono_us=mono_us)
        self.recording.event("night_vision", {"ir": night, "lux": lux, "mono_us": mono_us})

    def _await_frames(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self._frames_delivered() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    def request_stop(self) -> None:
        """Ask :meth:`wait` to return (signal handlers call this)."""
        self._stop.set()

    def wait(self, seconds: float | None = None) -> None:
        """Run until asked to stop or ``seconds`` passed."""
        self._stop.wait(seconds)

    def shutdown(self) -> None:
        """Seal, log and stop everything. A second call (a signal handler and the normal exit
        path both shutting down) returns at once: the controller it would ask is gone."""
        if self._shut_down:
            return
        self._shut_down = True
        self.notifier.stopping()
        try:
            self.controller.call("shutdown", timeout=30)
        except Exception:
            log.exception("sealing at shutdown failed")
        hw = self.hw
        for dev in (hw.camera, hw.microphone, hw.gps):
            if dev is not None:
                try:
                    dev.stop()
                except Exception:
                    log.exception("stopping %s failed", type(dev).__name__)
        self.controller.stop()
        self.segment_worker.close()
        self._threads_stop.set()
        self.commands.close()
        self.ctl.stop()
        if self.witness_pool is not None:
            self.witness_pool.close()
        if self.offloader is not None:
            self.offloader.close()
        self.store.close()
        hw.close()

    # --- callbacks --------------------------------------------------------------------------
    def _frames_delivered(self) -> int:
        cam = self.hw.camera
        if cam is not None:
            return cam.frames_delivered
        return self.controller.audio_chunks_in

    def _heartbeat(self) -> float:
        return self.controller.heartbeat

    def _meter_packet(self, packet: Any) -> None:
        if self.recorder.state == "recording":
            self.meter.add(len(packet.data), time.monotonic())

    def _matter_for_manifest(self) -> dict[str, Any] | None:
        return self.commands.matter_for_manifest()

    def _on_recorder_event(self, kind: str, data: dict[str, Any]) -> None:
        self.recording.recorder_event(kind, data)

    def _on_sealed(self, signed: Any) -> None:
        """A segment is sealed: tell the fleet link and wake the uploader -- the uploader even
        when the fleet link failed (the port's guard logs and counts that)."""
        try:
            self.recording.segment_sealed(signed)
        finally:
            if self.offloader is not None:
                self.offloader.wake()

    def _clock_step(self, fields: dict[str, Any]) -> None:
        self.controller.post("call", lambda: self.store.log_event("clock_step", **fields))
