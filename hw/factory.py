"""The one place that builds the hardware set from configuration.

``sim`` builds the first-class simulators (the off-Pi default): camera and microphone
generators, gpiozero ``MockFactory`` pins, a NMEA route written into a real pty and read back
by the real serial reader, a battery model, and the real filesystem (or a quota over it).
``pi`` builds the real drivers; a configured device that is absent is a :class:`DeviceMissing`
error -- never a silent fallback to a simulator, because a recorder that believes it records
while it does not is the worst failure there is.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.audio import Microphone
from hw.camera import Camera
from hw.controls import Controls
from hw.errors import DeviceMissing
from hw.gps import GpsReceiver
from hw.power import PowerMonitor
from hw.storage import Storage

__all__ = ["Hardware", "build_hardware", "is_raspberry_pi", "resolve_kind"]

log = logging.getLogger(__name__)


@dataclass
class Hardware:
    """Every device the recorder uses; ``sim`` holds the simulators' stimulus handles."""

    kind: str
    camera: Camera | None
    microphone: Microphone | None
    controls: Controls
    gps: GpsReceiver | None
    power: PowerMonitor | None
    storage: Storage
    sim: dict[str, Any] = field(default_factory=dict)
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Stop and release every device (idempotent)."""
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        self._closers.clear()


def is_raspberry_pi(model_path: Path = Path("/proc/device-tree/model")) -> bool:
    """True on a Raspberry Pi (the device-tree model names it)."""
    try:
        return "Raspberry Pi" in model_path.read_text(errors="replace")
    except OSError:
        return False


def resolve_kind(kind: str) -> str:
    """``auto`` → ``pi`` on a Raspberry Pi, else ``sim``."""
    if kind == "auto":
        return "pi" if is_raspberry_pi() else "sim"
    return kind


def build_hardware(cfg: Any, *, kind: str, data_dir: Path, speed: float = 1.0) -> Hardware:
    """Build the hardware set ``kind`` (``sim`` or ``pi``) for configuration ``cfg``.

    ``speed`` (simulators only; a soak's knob, never configuration): the camera and the
    microphone deliver media that many times faster than real time on one shared
    :class:`hw.sim_clock.MediaClock`, stamped at the nominal period; GPS, battery and
    storage stay real time. Real hardware runs at 1 and refuses anything else.
    """
    kind = resolve_kind(kind)
    if kind == "sim":
        return _build_sim(cfg, data_dir, speed)
    if speed != 1.0:
        raise ValueError(f"speed {speed}: only simulated hardware can run faster than real time")
    if kind == "pi":
        return _build_pi(cfg, data_dir)
    raise ValueError(f"unknown hardware kind {kind!r}")


def _leds(cfg: Any) -> dict[str, int]:
    g = cfg.gpio
    return {"recording": g.led_recording, "standby": g.led_standby, "fault": g.led_fault}


def _controls(cfg: Any, pin_factory: Any) -> Controls:
    g = cfg.gpio
    return Controls(pin_factory=pin_factory, button=g.button, leds=_leds(cfg), buzzer=g.buzzer,
                    vibration=g.vibration)


def _chunk_frames(sample_rate: int, chunk_ms: int) -> int:
    """Sample frames per capture chunk: each chunk wakes the controller once."""
    return max(1, sample_rate * chunk_ms // 1000)


def _build_sim(cfg: Any, data_dir: Path, speed: float) -> Hardware:
    from gpiozero.pins.mock import MockFactory

    from hw.audio_sim import SimMicrophone
    from hw.camera_replay import ReplayCamera
    from hw.camera_sim import SimCamera
    from hw.gps_serial import SerialGps
    from hw.gps_sim import DEFAULT_ROUTE, Route, SimGps
    from hw.power_sim import SimBattery
    from hw.sim_clock import MediaClock
    from hw.storage_fs import FsStorage
    from hw.storage_sim import SimStorage

    profile = cfg.device.profile
    v, a, s = cfg.video, cfg.audio, cfg.sim
    media = MediaClock(speed)  # one time line for the camera and the microphone
    camera: SimCamera | ReplayCamera | None = None
    if profile != "audio" and s.camera == "replay":
        # A recorded clip as a hardware encoder would deliver it: the format is the clip's.
        camera = ReplayCamera(Path(s.replay).expanduser(), clock=media)
    elif profile != "audio":
        camera = SimCamera(width=v.width, height=v.height, fps=v.fps, bitrate=v.bitrate, gop=v.gop,
                           device_id=cfg.device.id, officer_id=cfg.device.officer_id,
                           overlay=v.overlay, clapper_s=s.clapper_s, clock=media)
        camera.drop_every(s.drop_every)
    mic = None
    if a.enabled and profile != "stills":
        mic = SimMicrophone(sample_rate=a.sample_rate, channels=a.channels, clapper_s=s.clapper_s,
                            delay_ms=s.audio_delay_ms,
                            chunk_frames=_chunk_frames(a.sample_rate, a.chunk_ms), clock=media)
    factory = MockFactory()
    controls = _controls(cfg, factory)
    sim: dict[str, Any] = {"pins": factory}
    closers: list[Any] = [factory.close, controls.close]  # closed in reverse: devices first
    gps = None
    if cfg.gps.source != "none" and s.gps_route != "none":
        here = DEFAULT_ROUTE.waypoints[0]
        gps_sim = SimGps(Route(waypoints=(here, here)) if s.gps_route == "static" else DEFAULT_ROUTE)
        if s.gps_drift_ppm:
            gps_sim.drift(s.gps_drift_ppm)
        gps_sim.start()
        closers.append(gps_sim.close)
        sim["gps"] = gps_sim
        gps = SerialGps(gps_sim.port_path, cfg.gps.baud, stale_after_s=cfg.gps.stale_after_s)
    battery = SimBattery(s.battery_wh, percent=s.battery_pct, time_scale=s.time_scale)
    storage: Storage
    if s.storage_quota_mb:
        # "station": the loopback collection station of --with-station keeps its files in
        # <data-dir>/station (agent.offload.loopback.STATION_DIR); they are not the device's
        storage = SimStorage(data_dir, s.storage_quota_mb * 1024 * 1024, exclude=("station",))
    else:
        storage = FsStorage(data_dir)
    sim.update(camera=camera, microphone=mic, battery=battery, storage=storage, controls=controls)
    return Hardware("sim", camera, mic, controls, gps, battery, storage, sim, closers)


def _build_pi(cfg: Any, data_dir: Path) -> Hardware:
    from hw.storage_fs import FsStorage

    closers: list[Any] = []
    try:
        from gpiozero.pins.lgpio import LGPIOFactory  # the Pi 5 capable backend

        factory = LGPIOFactory()
    except ImportError as exc:
        raise DeviceMissing(f"GPIO: the lgpio library is not installed ({exc}); on Raspberry "
                            "Pi OS: apt install python3-lgpio") from exc
    except Exception as exc:  # lgpio raises its own error types when /dev/gpiochip is absent
        if ".lgd-nfy" in str(exc):  # lgpio's notification pipe, made at import (joan2937/lg#22)
            raise DeviceMissing(
                f"GPIO: lgpio cannot create its notification pipe in {Path.cwd()} ({exc}); run "
                "from a writable working directory or set LG_WD to one (bodycam.service sets "
                "both to /run/bodycam)"
            ) from exc
        raise DeviceMissing(f"GPIO: cannot open the GPIO chip ({exc})") from exc
    controls = _controls(cfg, factory)
    closers.append(controls.close)
    camera = None
    if cfg.device.profile != "audio":
        from hw.camera_pi import PiCamera

        camera = PiCamera(width=cfg.video.width, height=cfg.video.height, fps=cfg.video.fps,
                          bitrate=cfg.video.bitrate, gop=cfg.video.gop, overlay=cfg.video.overlay,
                          device_id=cfg.device.id, officer_id=cfg.device.officer_id)
        closers.append(camera.close)
    mic = None
    if cfg.audio.enabled and cfg.device.profile != "stills":
        from hw.audio_pyaudio import PyAudioMicrophone

        mic = PyAudioMicrophone(device=cfg.audio.device, sample_rate=cfg.audio.sample_rate,
                                channels=cfg.audio.channels,
                                chunk_frames=_chunk_frames(cfg.audio.sample_rate, cfg.audio.chunk_ms))
        closers.append(mic.close)
    gps = _pi_gps(cfg)
    power = _pi_power(cfg)
    return Hardware("pi", camera, mic, controls, gps, power, FsStorage(data_dir), {}, closers)


def _pi_gps(cfg: Any) -> GpsReceiver | None:
    g = cfg.gps
    if g.source == "none":
        return None
    if g.source == "gpsd":
        from hw.gps_gpsd import GpsdClient

        return GpsdClient(g.gpsd_host, g.gpsd_port)
    from hw.gps_serial import SerialGps

    if not Path(g.port).exists():
        raise DeviceMissing(f"GPS: serial port {g.port} does not exist (gps.port)")
    return SerialGps(g.port, g.baud, stale_after_s=g.stale_after_s)


def _pi_power(cfg: Any) -> PowerMonitor | None:
    if cfg.power.source == "none":
        return None
    from hw.power_select import select_power
    from hw.throttle import pi_throttle_source

    # Undervoltage and throttling flags, whatever gauge is fitted.
    return select_power(cfg.power, throttle=pi_throttle_source())
