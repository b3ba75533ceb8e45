"""Night vision (seed Art. 7, 红外夜视): IR illuminator and IR-cut filter switched on the
camera's light estimate, with hysteresis so they never flap, and every switch in the evidence.

Three parts, one job each:

* :class:`NightRule` -- pure: light readings with explicit times in, a mode change out. Night
  below ``on_lux``, day above ``off_lux``; readings inside the band between them never switch.
  A switch also needs the reading to stay past the threshold for ``settle_s`` without a break
  (a passing headlight, a torch sweep, the estimate's frame-to-frame noise do not count) and
  the current mode to have lasted ``min_dwell_s``. The unit starts in day mode; the first dark
  spell switches without waiting for a dwell.
* :class:`NightVision` -- controller-thread glue: reads ``Camera.lux()`` each tick, applies the
  rule, drives :class:`hw.ir.NightOptics`, keeps the switch history and reports each switch
  (the agent logs it as a ``night_vision`` event).
* :class:`NightPort` -- wraps the recorder's segment port so each sealed manifest says what
  the optics did while it was recorded, without a new manifest field: the flag ``night_ir``
  when the IR illuminator was on at any moment of the segment, and device-made bookmarks
  labelled ``night`` -- one at the segment's start with the mode then (``"ir": true|false``),
  one per switch inside it (``mono_us``, ``offset_us``, ``ir``, ``lux`` rounded to an integer,
  since manifests hold no floats). A reviewer can tell for every instant whether the picture
  was IR-lit monochrome. Segments sealed by crash recovery lack them.

Not thread-safe: everything runs on the controller thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from agent.recording.recorder import SegmentPort
from agent.recording.segment import SegmentStats
from hw.ir import NightOptics

__all__ = ["NightPort", "NightRule", "NightVision"]

_HISTORY = 4096  # switches kept; the rule allows at most one per settle_s


class NightRule:
    """Light in, day/night mode out, with a hysteresis band, a settle time and a dwell time."""

    def __init__(self, *, on_lux: float, off_lux: float, min_dwell_s: float,
                 settle_s: float = 1.0) -> None:
        if not on_lux < off_lux:
            raise ValueError("on_lux must be below off_lux (the band between is the hysteresis)")
        self.on_lux, self.off_lux = on_lux, off_lux
        self.min_dwell_s, self.settle_s = min_dwell_s, settle_s
        self.night = False
        self._past_since: float | None = None
        self._last_switch: float | None = None

    def update(self, t: float, lux: float) -> bool | None:
        """A reading at ``t``; returns the new mode (True = night) when it switches."""
        past = lux > self.off_lux if self.night else lux < self.on_lux
        if not past:
            self._past_since = None
            return None
        if self._past_since is None:
            self._past_since = t
        settled = t - self._past_since >= self.settle_s
        dwelt = self._last_switch is None or t - self._last_switch >= self.min_dwell_s
        if not (settled and dwelt):
            return None
        self.night = not self.night
        self._last_switch = t
        self._past_since = None
        return self.night


Switch = tuple[int, bool, int]  # (mono_us, night, lux)


class NightVision:
    """Camera light → :class:`NightRule` → optics; the switch history for manifests."""

    def __init__(self, rule: NightRule, optics: NightOptics, *, lux: Callable[[], float | None],
                 on_switch: Callable[[int, bool, int], None] = lambda t, night, lux: None) -> None:
        self._rule = rule
        self._optics = optics
        self._lux = lux
        self._on_switch = on_switch
        self.switches: deque[Switch] = deque(maxlen=_HISTORY)
        self.last_lux: float | None = None
        optics.set_night(False)

    @property
    def night(self) -> bool:
        """True while the IR illuminator is on and the filter out."""
        return self._rule.night

    def tick(self, now: float) -> None:
        """Judge the latest light estimate (each controller tick)."""
        lux = self._lux()
        if lux is None:
            return
        self.last_lux = lux
        mode = self._rule.update(now, lux)
        if mode is None:
            return
        self._optics.set_night(mode)
        switch = (int(now * 1_000_000), mode, round(lux))
        self.switches.append(switch)
        self._on_switch(*switch)

    def mode_at(self, mono_us: int) -> bool:
        """The mode at ``mono_us`` (day before the first switch)."""
        mode = False
        for t, night, _ in self.switches:
            if t > mono_us:
                break
            mode = night
        return mode

    def marks(self, start_us: int, end_us: int) -> tuple[list[dict[str, Any]], bool]:
        """Manifest bookmarks for ``[start_us, end_us]`` and whether IR was on in it."""
        at_start = self.mode_at(start_us)
        marks: list[dict[str, Any]] = [
            {"label": "night", "mono_us": start_us, "offset_us": 0, "ir": at_start}]
        for t, night, lux in self.switches:
            if start_us < t <= end_us:
                marks.append({"label": "night", "mono_us": t, "offset_us": t - start_us,
                              "ir": night, "lux": lux})
        return marks, any(m["ir"] for m in marks)


class NightPort:
    """A :class:`agent.recording.recorder.SegmentPort` that adds night-vision state to each manifest."""

    def __init__(self, port: SegmentPort, night: NightVision) -> None:
        self._port = port
        self._night = night
        self._starts: dict[int, int] = {}

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int,
                     flags: list[str]) -> Any:
        """Open through the store; remember where the segment starts."""
        handle = self._port.open_segment(recording_id=recording_id, seq=seq,
                                         start_mono_us=start_mono_us, flags=flags)
        self._starts[id(handle)] = start_mono_us
        return handle

    def sync(self, handle: Any) -> None:
        """Forwarded."""
        self._port.sync(handle)

    def seal(self, handle: Any, *, stats: SegmentStats, end_mono_us: int, flags: list[str],
             bookmarks: list[dict[str, Any]]) -> dict[str, Any]:
        """Seal with the ``night`` bookmarks (in time order with the others) and flag."""
        start = self._starts.pop(id(handle), end_mono_us)
        marks, ir = self._night.marks(start, end_mono_us)
        merged = sorted([*bookmarks, *marks], key=lambda b: int(b.get("mono_us", 0)))
        return self._port.seal(handle, stats=stats, end_mono_us=end_mono_us,
                               flags=[*flags, *(["night_ir"] if ir else [])], bookmarks=merged)

    def seal_later(self, handle: Any, *, end_mono_us: int, flags: list[str],
                   bookmarks: list[dict[str, Any]]) -> Callable[[SegmentStats, list[str]], Any]:
        """As :meth:`seal`, in two steps (the file work may run on the segment worker)."""
        start = self._starts.pop(id(handle), end_mono_us)
        marks, ir = self._night.marks(start, end_mono_us)
        merged = sorted([*bookmarks, *marks], key=lambda b: int(b.get("mono_us", 0)))
        return self._port.seal_later(handle, end_mono_us=end_mono_us,
                                     flags=[*flags, *(["night_ir"] if ir else [])],
                                     bookmarks=merged)

    def sealed(self, result: Any) -> dict[str, Any]:
        """Forwarded."""
        return self._port.sealed(result)

    def abandon(self, handle: Any) -> None:
        """Forwarded (crash recovery seals it, without night marks)."""
        self._starts.pop(id(handle), None)
        self._port.abandon(handle)
