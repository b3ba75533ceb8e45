"""The parts a recorder has only when its configuration or hardware says so.

The composition root (:mod:`agent.app`) builds every recorder the same way; on top of that a
unit may have a simulator bench (``bodycam ctl`` stimuli), a fleet link (``[mqtt] enabled``),
an uploader to the collection station (``[offload] enabled``), IR night vision (an IR LED or
IR-cut pin fitted, and a camera to read the light from) and activation inputs
(``[[triggers]]``). Each is decided and built here from exactly what it needs -- the
configuration, the hardware set and the narrow callables of the parts already built -- never
from the agent, so this module does not import :mod:`agent.app` and each builder can be read
on its own. The agent still decides when each is built and started. The fleet link and the
uploader are imported only when enabled (a unit without them does not load paho or the
station client).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import Config
from agent.evidence.keys import DeviceKey
from agent.evidence.store import EvidenceStore
from agent.night import NightRule, NightVision
from agent.ports import Bench, HardwareFacts
from agent.recording.controller import Controller, Request
from agent.triggers import TriggerBank
from hw.controls import Controls
from hw.factory import Hardware
from hw.ir import GpioNightOptics

if TYPE_CHECKING:
    from agent.offload.uploader import Offloader
    from agent.sync.fleet_sync import FleetSync

__all__ = ["bench_for", "fleet_sync", "night_vision", "offloader", "watch_triggers"]


def bench_for(hw: Hardware) -> Bench | None:
    """The simulator's button pin and stimuli for ``bodycam ctl`` (None on a real device)."""
    if hw.kind != "sim":
        return None
    from agent.command.sim_stimuli import apply_stimulus

    return Bench(press=hw.controls.sim_press, release=hw.controls.sim_release,
                 stimulate=lambda args: apply_stimulus(hw, args))


def fleet_sync(cfg: Config, hw: Hardware, *, officer_id: str, data_dir: Path,
               store: EvidenceStore, key: DeviceKey,
               submit: Callable[[Request], object]) -> FleetSync | None:
    """The fleet link, when ``[mqtt] enabled``, told which capabilities this hardware set
    has."""
    if not cfg.mqtt.enabled:
        return None
    from agent.sync.fleet_sync import FleetSync

    caps = ("video" if hw.camera else None, "audio" if hw.microphone else None,
            "gps" if hw.gps else None, "battery" if hw.power else None)
    facts = HardwareFacts(hw.kind, hw.camera.format if hw.camera else None,
                          tuple(c for c in caps if c))
    return FleetSync(cfg.mqtt, device=cfg.device, officer_id=officer_id, data_dir=data_dir,
                     store=store, key=key, hardware=facts, submit=submit)


def offloader(cfg: Config, hw: Hardware, store: EvidenceStore, *, data_dir: Path,
              queue_depth: Callable[[], int]) -> Offloader | None:
    """The uploader to the collection station, when ``[offload] enabled``; it pauses while
    the controller's queue holds more than a second of frames or the camera drops one."""
    if not cfg.offload.enabled:
        return None
    from agent.offload.wiring import build_offloader, pipeline_strain

    cam = hw.camera
    strained = pipeline_strain(
        queue_depth,
        lambda: cam.frames_dropped if cam else 0,
        max_depth=max(8, cam.format.fps if cam else 50))
    return build_offloader(cfg.offload, store, device_id=cfg.device.id,
                           data_dir=data_dir, strained=strained)


def night_vision(cfg: Config, hw: Hardware,
                 on_switch: Callable[[int, bool, int], None]) -> NightVision | None:
    """IR illuminator and IR-cut filter switched on the camera's light estimate, when
    either is fitted and there is a camera to read the light from."""
    n, cam = cfg.night, hw.camera
    if cam is None or not (n.ir_led_pin or n.ircut_pin):
        return None
    optics = GpioNightOptics(hw.controls, ir_led_pin=n.ir_led_pin, ircut_pin=n.ircut_pin)
    rule = NightRule(on_lux=n.on_lux, off_lux=n.off_lux, min_dwell_s=n.min_dwell_s)
    return NightVision(rule, optics, lux=cam.lux, on_switch=on_switch)


def watch_triggers(bank: TriggerBank, controls: Controls, controller: Controller) -> None:
    """Open each trigger input (before the controller runs, so its rule exists before any
    edge is handled); level changes are judged on the controller thread."""
    c = controller
    for pin in bank.pins:
        t = bank.config(pin)

        def changed(at: float, active: bool, pin: int = pin) -> None:
            c.post("call", lambda: bank.edge(pin, at, active))

        active = controls.watch_input(pin, pull=t.pull, active_high=t.active_high,
                                      on_change=changed)
        bank.begin(pin, active, time.monotonic())
    if bank.pins:
        c.every_tick(bank.poll)
