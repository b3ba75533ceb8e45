"""The night-vision rule, instantly: it follows every real crossing of the hysteresis band,
never switches inside it, never flaps on noise, and respects its dwell time."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.night import NightPort, NightRule, NightVision

ON, OFF, DWELL, SETTLE, STEP = 5.0, 20.0, 10.0, 1.0, 0.1

# A light level in one of three places: dark (night wanted), the band, bright (day wanted).
_LEVEL = {
    "dark": st.floats(min_value=0.0, max_value=ON * 0.999),
    "band": st.floats(min_value=ON, max_value=OFF),
    "bright": st.floats(min_value=OFF * 1.001, max_value=100_000.0),
}
_spell = st.sampled_from(sorted(_LEVEL)).flatmap(
    lambda side: st.tuples(st.just(side), st.lists(_LEVEL[side], min_size=1, max_size=5),
                           st.floats(min_value=DWELL + SETTLE + 0.5, max_value=60.0)))


def _transitions(sides: list[str]) -> int:
    """Crossings of the band: changes of the wanted mode, in-band spells ignored, from day."""
    mode, n = "bright", 0
    for side in sides:
        if side not in ("band", mode):
            mode, n = side, n + 1
    return n


@settings(max_examples=150, deadline=None)
@given(st.lists(_spell, min_size=1, max_size=12))
def test_switches_equal_true_transitions_and_none_inside_the_band(spells: list[Any]) -> None:
    """Hypothesis: for any sequence of spells (each long enough to settle and dwell), each a
    noisy mix of readings from one place, the rule switches exactly once per true crossing of
    the band, every switch happens on a reading past the threshold it crosses, and no two
    switches are closer than the dwell time."""
    rule = NightRule(on_lux=ON, off_lux=OFF, min_dwell_s=DWELL, settle_s=SETTLE)
    t, switches = 0.0, []
    for _side, readings, duration in spells:
        end = t + duration
        i = 0
        while t < end:
            lux = readings[i % len(readings)]
            mode = rule.update(t, lux)
            if mode is not None:
                switches.append((t, mode, lux))
                assert (lux < ON) if mode else (lux > OFF)  # never from inside the band
            t += STEP
            i += 1
    assert len(switches) == _transitions([s[0] for s in spells])
    assert all(b[0] - a[0] >= DWELL for a, b in itertools.pairwise(switches))
    assert [m for _, m, _ in switches] == [i % 2 == 0 for i in range(len(switches))]


def test_a_torch_sweep_or_headlight_does_not_switch_back_to_day() -> None:
    """At night, 0.5 s of 5000 lux (shorter than the settle time) changes nothing."""
    rule = NightRule(on_lux=ON, off_lux=OFF, min_dwell_s=0, settle_s=SETTLE)
    assert rule.update(0.0, 1.0) is None and rule.update(1.0, 1.0) is True
    for i in range(5):
        assert rule.update(2.0 + i * STEP, 5000.0) is None
    assert rule.update(2.5, 1.0) is None and rule.night


def test_noise_straddling_a_threshold_never_flaps() -> None:
    """Readings jumping across on_lux every frame never settle: no switch at all."""
    rule = NightRule(on_lux=ON, off_lux=OFF, min_dwell_s=0, settle_s=SETTLE)
    assert all(rule.update(i * 0.033, 4.0 if i % 2 else 6.0) is None for i in range(3000))


def test_dwell_holds_the_mode_even_when_the_light_really_changes() -> None:
    """Dark at 0 s (switch at 1 s), bright from 2 s: day only once 10 s have passed."""
    rule = NightRule(on_lux=ON, off_lux=OFF, min_dwell_s=DWELL, settle_s=SETTLE)
    modes = {round(i * STEP, 1): rule.update(i * STEP, 1.0 if i * STEP < 2 else 500.0)
             for i in range(150)}
    assert [t for t, m in modes.items() if m is not None] == [1.0, 11.0]


def test_band_must_be_a_band() -> None:
    """on_lux >= off_lux is refused (config validation says the same, naming the key)."""
    with pytest.raises(ValueError, match="below off_lux"):
        NightRule(on_lux=20, off_lux=20, min_dwell_s=0)


class _Optics:
    def __init__(self) -> None:
        self.night = False
        self.calls: list[bool] = []

    def set_night(self, on: bool) -> None:
        self.night = on
        self.calls.append(on)


class _Port:
    def __init__(self) -> None:
        self.sealed: list[dict[str, Any]] = []

    def open_segment(self, **kw: Any) -> object:
        return object()

    def sync(self, handle: Any) -> None:
        pass

    def seal(self, handle: Any, **kw: Any) -> dict[str, Any]:
        self.sealed.append(kw)
        return kw

    def abandon(self, handle: Any) -> None:
        pass


def test_manifests_carry_the_mode_at_start_and_each_switch_in_time_order() -> None:
    """A segment from 0 to 20 s with a switch to night at 5 s: a start mark (day), the switch
    (with its integer lux) between the officer's bookmarks, and the night_ir flag; the next
    segment starts at night."""
    readings = iter([100.0] * 10 + [2.0] * 400)
    optics = _Optics()
    vision = NightVision(NightRule(on_lux=ON, off_lux=OFF, min_dwell_s=DWELL, settle_s=SETTLE),
                         optics, lux=lambda: next(readings))
    port = _Port()
    night = NightPort(port, vision)
    h = night.open_segment(recording_id="ab" * 16, seq=0, start_mono_us=0, flags=[])
    for i in range(200):
        vision.tick(i * STEP)
    assert optics.calls == [False, True] and vision.night
    officer = [{"label": "a", "mono_us": 1_000_000}, {"label": "b", "mono_us": 8_000_000}]
    seal = night.seal(h, stats=None, end_mono_us=20_000_000, flags=["preroll"],  # type: ignore[arg-type]
                      bookmarks=officer)
    [(when, _mode, lux)] = vision.switches
    assert [(b["label"], b.get("ir")) for b in seal["bookmarks"]] == [
        ("night", False), ("a", None), ("night", True), ("b", None)]
    assert seal["bookmarks"][2] == {"label": "night", "mono_us": when, "offset_us": when,
                                    "ir": True, "lux": lux}
    assert isinstance(lux, int) and seal["flags"] == ["preroll", "night_ir"]
    h2 = night.open_segment(recording_id="ab" * 16, seq=1, start_mono_us=20_000_000, flags=[])
    second = night.seal(h2, stats=None, end_mono_us=21_000_000, flags=[],  # type: ignore[arg-type]
                        bookmarks=[])
    assert second["bookmarks"] == [{"label": "night", "mono_us": 20_000_000, "offset_us": 0,
                                    "ir": True}]
