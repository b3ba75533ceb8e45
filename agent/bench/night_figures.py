"""Night-vision figures: how late the IR switches after dusk and dawn, and whether it flaps.

The unit's own rule (:class:`agent.night.NightRule`, with the unit's ``[night]`` thresholds) is
driven by the simulator's light model (:class:`hw.light_sim.SimLight`, its ±15 % reading
flicker included) on a virtual clock, at the controller's 20 Hz, through real-time dusk and
dawn (16:00-20:00 and 04:00-08:00; the hours between are steady, far from both thresholds).
A further night hour has a torch or headlight sweep every 30 s (0.5 s at 5000 lux), which must
not switch anything. It is a figure of the rule against the simulated light, not of a
camera's lux estimate: on a real unit the lab reads the ``night_vision`` log events instead.

Latency is counted from the instant the noise-free light crosses the threshold (``on_lux`` at
dusk, ``off_lux`` at dawn) to the switch; flaps are switches beyond the two a day needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.night import NightRule
from hw.light_sim import SimLight

from .figures import Figures

__all__ = ["NIGHT_FIGURES", "NightRun", "night_figures", "run_night_model"]

NIGHT_FIGURES = ("night_switches_per_day", "night_flaps", "night_dusk_latency_s",
                 "night_dawn_latency_s", "night_torch_switches")

_TICK_S = 0.05
_WINDOWS = ((16.0, 20.0), (4.0, 8.0))


class NightRun:
    """Observations of one simulated day."""

    def __init__(self) -> None:
        self.switches: list[tuple[float, bool]] = []  # (hour, night)
        self.latency_s: dict[str, float | None] = {"dusk": None, "dawn": None}
        self.torch_switches = 0


def _window(rule: NightRule, light: SimLight, now: list[float], hours: tuple[float, float],
            run: NightRun) -> None:
    start, end = hours
    light.cycle(day_s=86_400.0, hour=start)
    t0 = now[0]
    crossed: float | None = None
    threshold = rule.on_lux if not rule.night else rule.off_lux
    while now[0] - t0 < (end - start) * 3600:
        if crossed is None and ((light.true_lux() < threshold) if not rule.night
                                else (light.true_lux() > threshold)):
            crossed = now[0]
        mode = rule.update(now[0], light.lux())
        if mode is not None:
            run.switches.append((light.hour(), mode))
            key = "dusk" if mode else "dawn"
            if run.latency_s[key] is None and crossed is not None:
                run.latency_s[key] = round(now[0] - crossed, 2)
        now[0] += _TICK_S


def run_night_model(night: Mapping[str, Any]) -> NightRun:
    """One day of the rule against the simulated light, plus an hour of torch sweeps."""
    rule = NightRule(on_lux=float(night.get("on_lux", 5.0)),
                     off_lux=float(night.get("off_lux", 20.0)),
                     min_dwell_s=float(night.get("min_dwell_s", 10.0)))
    now = [0.0]
    light = SimLight(mono=lambda: now[0])
    run = NightRun()
    _window(rule, light, now, _WINDOWS[0], run)
    night_mode = rule.night
    light.cycle(hour=0.0)  # a night hour with sweeps
    t0, before = now[0], len(run.switches)
    while now[0] - t0 < 3600:
        sweeping = (now[0] - t0) % 30 < 0.5
        if sweeping:
            light.hold(5000.0)
        else:
            light.release()
        mode = rule.update(now[0], light.lux())
        if mode is not None:
            run.switches.append((light.hour(), mode))
        now[0] += _TICK_S
    light.release()
    run.torch_switches = len(run.switches) - before
    if rule.night == night_mode:
        _window(rule, light, now, _WINDOWS[1], run)
    return run


def night_figures(fig: Figures, night: Mapping[str, Any]) -> NightRun:
    """Put the night-vision figures; returns the observations."""
    run = run_night_model(night)
    how = ("the unit's NightRule on the simulator's light (±15 % flicker) at 20 Hz, "
           "real-time dusk and dawn")
    fig.put("night_switches_per_day", len(run.switches) - run.torch_switches, "switches",
            how + "; a day needs 2")
    fig.put("night_flaps", max(0, len(run.switches) - 2), "switches",
            "switches beyond one at dusk and one at dawn (torch hour included)")
    for key in ("dusk", "dawn"):
        value = run.latency_s[key]
        if value is None:
            fig.missing((f"night_{key}_latency_s",), "s", f"no switch at {key}")
        else:
            fig.put(f"night_{key}_latency_s", value, "s",
                    f"from the noise-free light crossing the threshold to the switch ({how})")
    fig.put("night_torch_switches", run.torch_switches, "switches",
            "a night hour with a 0.5 s 5000 lux sweep every 30 s")
    fig.series["night_switches"] = [{"hour": round(h, 3), "night": n} for h, n in run.switches]
    return run
