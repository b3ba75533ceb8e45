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
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.aac import AacEncoder
from agent.atomic import fsync_dir
from agent.commands import CommandSet
from agent.config import Config, station_public_keys
from agent.controller import Controller
from agent.ctl import CtlServer, socket_path
from agent.errors import KeyMissing, StorageError
from agent.evidence.age import Identity, Recipient
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import SignedManifest
from agent.evidence.store import EvidenceStore
from agent.evidence_port import ManifestContext, StorePort
from agent.feedback import Feedback
from agent.gestures import GestureRecognizer
from agent.health import HealthGate
from agent.matters.catalogue import MatterCatalogue
from agent.matters.quick import QuickList
from agent.night import NightPort, NightRule, NightVision
from agent.overrides import with_overrides
from agent.power.policy import BatteryPolicy
from agent.power.projection import PowerProjector
from agent.recorder import Recorder
from agent.sdnotify import Notifier
from agent.segment_worker import SegmentWorker
from agent.storage.policy import BitrateMeter, StoragePolicy
from agent.supervisor import Supervisor
from agent.timekeeping import TimeKeeper
from agent.triggers import TriggerBank
from agent.watch import FrameWatchdog, PowerWatch, StorageWatch
from agent.witness import WitnessPool
from agent.witnessing import start_witnessing
from hw.factory import Hardware, build_hardware
from hw.ir import GpioNightOptics

if TYPE_CHECKING:
    from agent.offload.uploader import Offloader

__all__ = ["Agent", "check_data_dir"]

log = logging.getLogger(__name__)


def check_data_dir(data_dir: Path) -> Path:
    """Create/verify the data directory; a clear :class:`StorageError` if it is unusable."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(exc.errno or 0, f"data directory {data_dir}: cannot create it "
                                          f"({exc.strerror})") from exc
    if not data_dir.is_dir():
        raise StorageError(20, f"data directory {data_dir}: not a directory")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StorageError(13, f"data directory {data_dir}: not writable by this user")
    return data_dir


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    except OSError:
        return ""


def _content_credentials(cfg: Config, data_dir: Path
                         ) -> Callable[[Path, SignedManifest], None] | None:
    """The store's after-seal C2PA port, or None; the C2PA library loads only when enabled."""
    if not cfg.evidence.c2pa:
        return None
    from agent.c2pa.port import after_seal_port  # ~23 MB shared library: only when asked for
    return after_seal_port(data_dir, cfg.device.id, test_ca=cfg.evidence.c2pa_test_ca)


class Agent:
    """One running recorder."""

    def __init__(self, cfg: Config, *, data_dir: Path, hw_kind: str,
                 hardware: Hardware | None = None, notifier: Notifier | None = None) -> None:
        self.data_dir = check_data_dir(data_dir)
        self.cfg = cfg = with_overrides(cfg, self.data_dir)
        self.hw = hardware or build_hardware(cfg, kind=hw_kind, data_dir=self.data_dir)
        self.notifier = notifier or Notifier.from_env()
        self._stop = threading.Event()
        self._threads_stop = threading.Event()
        self.key = self._load_key()
        self.recipients = self._recipients()
        credentials = _content_credentials(cfg, self.data_dir)
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
        self.boot_id = _boot_id()
        self.store.log_event("boot", boot_id=self.boot_id, version=__version__,
                             hardware=self.hw.kind, recovered=len(self.recovered))
        self.time = TimeKeeper(cfg.time, on_step=self._clock_step)
        self.matters = MatterCatalogue.load(cfg.matters.catalogue or None)
        self.quick = QuickList(cfg.matters.quick_list, self.matters) if cfg.matters.quick_list else None
        self._build_pipeline()

    # --- construction -----------------------------------------------------------------------
    def _load_key(self) -> DeviceKey:
        path = self.data_dir / "keys" / "device.key"
        try:
            return DeviceKey.load(path)
        except KeyMissing:
            if self.hw.kind != "sim":
                raise
            log.warning("simulator: generating a device key at %s", path)
            return DeviceKey.generate(path)

    def _recipients(self) -> list[Recipient]:
        rcpts = [Recipient.parse(r) for r in self.cfg.evidence.recipients]
        if rcpts or not self.cfg.evidence.encrypt or self.hw.kind != "sim":
            return rcpts
        # The simulator has no agency: it makes a bench identity so its output can be opened.
        path = self.data_dir / "sim-agency.key"
        if path.exists():
            identity = Identity.parse(path.read_text().strip().splitlines()[-1])
        else:
            from agent.atomic import atomic_write

            identity = Identity.generate()
            atomic_write(path, f"# simulator bench identity (not an agency key)\n{identity}\n"
                         .encode(), mode=0o600)
            log.warning("simulator: no agency recipient configured; encrypting to %s", path)
        return [identity.recipient]

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
        self.night = self._night_vision()
        self.segment_worker = SegmentWorker()  # the recording's file work (agent.segment_worker)
        self.recorder = Recorder(
            port=NightPort(self.port, self.night) if self.night else self.port,
            video=cam.format if cam else None, audio=mic.format if mic else None,
            audio_extradata=self.aac.extradata if self.aac else b"",
            audio_bitrate=cfg.audio.bitrate, prerecord_s=cfg.recording.prerecord_s,
            prerecord_audio=cfg.recording.prerecord_audio, segment_s=cfg.recording.segment_s,
            on_event=self._on_recorder_event,
            fault_boundary_gap_us=cfg.sim.boundary_gap_ms * 1000 if self.hw.kind == "sim" else 0,
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
        self.commands = CommandSet(self)
        self.commands.register(self.controller)
        self.supervisor = Supervisor(self, self.commands)
        self.triggers = TriggerBank(cfg.triggers, on_activation=self.commands.trigger)
        if cfg.mqtt.enabled:
            from agent.fleet_sync import FleetSync

            self.commands.sync = FleetSync(self)
        self.health = HealthGate(frames=self._frames_delivered, heartbeat=self._heartbeat,
                                 notifier=self.notifier, stall_after_s=cfg.recording.stall_after_s)
        self.ctl = CtlServer(socket_path(self.data_dir), self.commands.respond)
        self.offloader = self._offloader()

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the controller, the devices, the control socket and the health gate."""
        hw, c = self.hw, self.controller
        self.controller.every_tick(self.supervisor.tick)
        self.controller.observe_packets(self._meter_packet)
        self._watch_triggers()
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
        self.feedback.show("standby")
        if self.offloader is not None:
            self.offloader.start()
        threading.Thread(target=self.health.run, args=(self._threads_stop,),
                         name="health", daemon=True).start()
        # READY=1 is the health gate's to send, once frames really flow: systemd must not
        # believe a recorder is up whose camera never delivered a frame.
        self._await_frames()
        self.commands.started()

    def _offloader(self) -> Offloader | None:
        """The uploader to the collection station, when ``[offload] enabled``; it pauses while
        the controller's queue holds more than a second of frames or the camera drops one."""
        if not self.cfg.offload.enabled:
            return None
        from agent.offload.wiring import build_offloader, pipeline_strain

        cam = self.hw.camera
        strained = pipeline_strain(
            self.controller.queue_depth,
            lambda: getattr(cam, "frames_dropped", 0) if cam else 0,
            max_depth=max(8, cam.format.fps if cam else 50))
        return build_offloader(self.cfg.offload, self.store, device_id=self.cfg.device.id,
                               data_dir=self.data_dir, strained=strained)

    def _night_vision(self) -> NightVision | None:
        """IR illuminator and IR-cut filter switched on the camera's light estimate, when
        either is fitted and there is a camera to read the light from."""
        n, cam = self.cfg.night, self.hw.camera
        if cam is None or not (n.ir_led_pin or n.ircut_pin):
            return None
        optics = GpioNightOptics(self.hw.controls, ir_led_pin=n.ir_led_pin,
                                 ircut_pin=n.ircut_pin)
        rule = NightRule(on_lux=n.on_lux, off_lux=n.off_lux, min_dwell_s=n.min_dwell_s)
        return NightVision(rule, optics, lux=cam.lux, on_switch=self._night_switch)

    def _night_switch(self, mono_us: int, night: bool, lux: int) -> None:
        """The optics switched: an evidence-log event (the picture changes character)."""
        self.store.log_event("night_vision", ir=night, lux=lux, mono_us=mono_us)
        self.commands.event("night_vision", {"ir": night, "lux": lux, "mono_us": mono_us})

    def _watch_triggers(self) -> None:
        """Open each trigger input (before the controller runs, so its rule exists before any
        edge is handled); level changes are judged on the controller thread."""
        bank, c = self.triggers, self.controller
        for pin in bank.pins:
            t = bank.config(pin)

            def changed(at: float, active: bool, pin: int = pin) -> None:
                c.post("call", lambda: bank.edge(pin, at, active))

            active = self.hw.controls.watch_input(pin, pull=t.pull, active_high=t.active_high,
                                                  on_change=changed)
            bank.begin(pin, active, time.monotonic())
        if bank.pins:
            c.every_tick(bank.poll)

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
        """Seal, log and stop everything; safe to call once."""
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
        self.commands.recorder_event(kind, data)

    def _on_sealed(self, signed: Any) -> None:
        self.commands.segment_sealed(signed)
        if self.offloader is not None:
            self.offloader.wake()

    def _clock_step(self, fields: dict[str, Any]) -> None:
        self.controller.post("call", lambda: self.store.log_event("clock_step", **fields))
