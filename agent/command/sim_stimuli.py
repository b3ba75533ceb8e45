"""``bodycam ctl sim DEVICE VERB [ARG]``: drive the simulated hardware of a running agent.

Benches and scenario tests need to make the simulated world misbehave on cue -- a camera
stall, a draining battery, a filling disk, a GPS unplugged -- through the same control
socket a lab uses, without reaching into the process. Each verb maps to a stimulus method of
the simulator in :mod:`hw`; unknown devices or verbs are rejected with the list of known ones.

Two stimuli take their argument in the verb's place: ``sim pin PIN high|low`` drives any
simulated input pin (the button or a trigger input) through gpiozero's ``MockFactory``, and
``sim light LUX|auto`` holds the simulated scene at LUX lux (a torch, a dark stairwell) or
returns it to the simulated day/night cycle; ``sim light day SECONDS`` sets how long a
simulated day lasts (a dusk-to-dawn bench in minutes) and ``sim light hour H`` what hour it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hw.errors import CommandRejected
from hw.factory import Hardware

__all__ = ["STIMULI", "apply_stimulus"]


def _num(args: dict[str, Any]) -> float:
    try:
        return float(args.get("value", ""))
    except (TypeError, ValueError):
        raise CommandRejected("this stimulus needs a numeric value") from None


STIMULI: dict[tuple[str, str], Callable[[Any, dict[str, Any]], Any]] = {
    ("camera", "stall"): lambda d, a: d.stall(),
    ("camera", "wedge"): lambda d, a: d.wedge(),
    ("camera", "resume"): lambda d, a: d.resume(),
    ("camera", "drop-every"): lambda d, a: d.drop_every(int(_num(a))),
    ("microphone", "overflow"): lambda d, a: d.overflow(int(_num(a))),
    ("microphone", "mute"): lambda d, a: d.mute(True),
    ("microphone", "unmute"): lambda d, a: d.mute(False),
    ("battery", "set"): lambda d, a: d.set_capacity(_num(a)),
    ("battery", "plug"): lambda d, a: d.plug(),
    ("battery", "unplug"): lambda d, a: d.unplug(),
    ("battery", "undervoltage"): lambda d, a: d.undervoltage(bool(int(_num(a)))),
    ("battery", "die-at"): lambda d, a: d.die_at(_num(a)),
    ("storage", "fill"): lambda d, a: d.fill(int(_num(a))),
    ("storage", "free"): lambda d, a: d.free(int(_num(a))),
    ("storage", "fail"): lambda d, a: d.fail_writes(int(_num(a)) if a.get("value") else 5),
    ("storage", "heal"): lambda d, a: d.fail_writes(None),
    ("gps", "silence"): lambda d, a: d.silence(),
    ("gps", "resume"): lambda d, a: d.resume(),
    ("gps", "unplug"): lambda d, a: d.unplug(),
    ("gps", "replug"): lambda d, a: d.replug(),
    ("gps", "time-offset"): lambda d, a: d.set_time_offset(_num(a)),
    ("gps", "drift"): lambda d, a: d.drift(_num(a)),
}


def _drive_pin(hw: Hardware, pin_text: str, level: Any) -> None:
    """``sim pin PIN high|low``."""
    if level not in ("high", "low"):
        raise CommandRejected("usage: sim pin PIN high|low")
    try:
        pin = int(pin_text)
    except ValueError:
        raise CommandRejected(f"{pin_text!r} is not a pin number") from None
    try:
        hw.controls.sim_drive(pin, level == "high")
    except ValueError as exc:
        raise CommandRejected(str(exc)) from None


def _light(hw: Hardware, verb: str, value: Any) -> None:
    """``sim light LUX|auto`` · ``sim light day SECONDS`` · ``sim light hour H``."""
    camera = hw.sim.get("camera")
    light = getattr(camera, "light", None)
    if light is None:
        raise CommandRejected("this simulated camera has no light model (no camera, or a "
                              "replay clip, which carries no light estimate)")
    try:
        if verb == "auto":
            light.release()
        elif verb == "day":
            light.cycle(day_s=float(value))
        elif verb == "hour":
            light.cycle(hour=float(value))
        else:
            light.hold(float(verb))
    except (TypeError, ValueError) as exc:
        raise CommandRejected(f"usage: sim light LUX|auto · sim light day SECONDS · "
                              f"sim light hour H ({exc})") from None


PARAMETRIC: dict[str, Callable[[Hardware, str, Any], None]] = {"pin": _drive_pin,
                                                               "light": _light}


def apply_stimulus(hw: Hardware, args: dict[str, Any]) -> dict[str, Any]:
    """Apply ``{"device": ..., "verb": ..., "value": ...}`` to the simulated hardware."""
    device, verb = str(args.get("device", "")), str(args.get("verb", ""))
    if device in PARAMETRIC:
        PARAMETRIC[device](hw, verb, args.get("value"))
        return {"device": device, "verb": verb, "value": args.get("value")}
    fn = STIMULI.get((device, verb))
    if fn is None:
        known = ", ".join([*(f"{d} {v}" for d, v in STIMULI), "pin PIN high|low",
                           "light LUX|auto|day S|hour H"])
        raise CommandRejected(f"unknown stimulus {device!r} {verb!r}; known: {known}")
    target = hw.sim.get(device)
    if target is None:
        raise CommandRejected(f"this simulated hardware set has no {device}")
    try:
        fn(target, args)
    except AttributeError as exc:
        raise CommandRejected(f"{device} does not support {verb!r} ({exc})") from None
    return {"device": device, "verb": verb, "value": args.get("value")}
