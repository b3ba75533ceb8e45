"""Whole agent on simulated pins: a holster drawn in standby starts a recording with its
pre-roll, once however the contact bounces; a trigger during a recording bookmarks and never
stops it; the cause is in the manifest and the evidence log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.command.ctl_server import ctl_request
from agent.config import Config, parse_config
from agent.evidence.canonical import parse_canonical
from agent.evidence.log import replay_entries
from agent.testing import SMALL, running_agent, wait_for
from tests.recording.evidence_tools import manifests

pytestmark = pytest.mark.timeout(90)

HOLSTER, SPOTLIGHT = 5, 6


def _config(triggers: list[dict[str, Any]], **sections: dict[str, Any]) -> Config:
    """The small test recorder with ``[[triggers]]`` (and section overrides)."""
    raw: dict[str, Any] = {k: dict(v) for k, v in SMALL.items()}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config({**raw, "triggers": triggers})


def _commands(data_dir: Path) -> list[dict[str, Any]]:
    records = replay_entries((data_dir / "log" / "entries.bin").read_bytes()).records
    return [e for e in map(parse_canonical, records) if e.get("type") == "command"]


def test_holster_trigger_starts_once_bookmarks_and_never_stops(tmp_path: Path) -> None:
    """A bouncing holster contact starts exactly one recording, pre-roll included, flagged
    ``trigger:holster`` and logged with origin via trigger; drawing again while recording
    bookmarks; a bookmark trigger bookmarks; neither stops; ``ctl sim pin`` drives the pins."""
    data = tmp_path / "data"
    cfg = _config([
        {"name": "holster", "pin": HOLSTER, "pull": "up", "active_high": False,
         "debounce_ms": 50},
        {"name": "spotlight", "pin": SPOTLIGHT, "pull": "down", "active_high": True,
         "debounce_ms": 20, "action": "bookmark"},
    ])
    with running_agent(cfg, data) as agent:
        controls = agent.hw.controls
        wait_for(lambda: agent.controller.frames_in >= 45)  # 1.5 s of pre-roll buffered
        for level in (False, True, False, True, False):  # five edges well inside 50 ms
            controls.sim_drive(HOLSTER, level)
        wait_for(lambda: agent.recorder.state == "recording", timeout=10)
        wait_for(lambda: agent.controller.queue_depth() == 0 and agent.triggers.activations)
        rid = agent.recorder.recording_id
        # holstered again, then drawn again (through the control socket this time)
        assert ctl_request(data, "sim", {"device": "pin", "verb": str(HOLSTER),
                                         "value": "high"})["ok"]
        wait_for(lambda: agent.triggers.activations == 1 and controls.input_active(HOLSTER)
                 is False)
        wait_for(lambda: agent.controller.frames_in >= 45 + 30)
        assert ctl_request(data, "sim", {"device": "pin", "verb": str(HOLSTER),
                                         "value": "low"})["ok"]
        wait_for(lambda: agent.triggers.activations == 2)
        controls.sim_drive(SPOTLIGHT, True)
        wait_for(lambda: agent.triggers.activations == 3)
        assert agent.recorder.state == "recording" and agent.recorder.recording_id == rid
        bad = ctl_request(data, "sim", {"device": "pin", "verb": "27", "value": "high"})
        assert not bad["ok"] and "not an input" in bad["error"]
        assert ctl_request(data, "stop")["ok"]
        wait_for(lambda: agent.recorder.state == "standby")
    segs = [m for m in manifests(data) if m["recording_id"] == rid]
    first = min(segs, key=lambda m: m["seq"])
    assert {"preroll", "trigger:holster"} <= set(first["flags"])
    assert first["start"]["mono_us"] < first["end"]["mono_us"]
    assert not any("trigger:holster" in m["flags"] for m in segs if m["seq"] > 0)
    marks = [b for m in segs for b in m["bookmarks"]]
    assert [(b["label"], b["pin"]) for b in marks] == [("trigger:holster", HOLSTER),
                                                       ("trigger:spotlight", SPOTLIGHT)]
    starts = [c for c in _commands(data) if c["command"] == "start"]
    assert len(starts) == 1
    assert starts[0]["origin"] == {"via": "trigger", "name": "holster", "pin": HOLSTER}
    assert starts[0]["outcome"] == "succeeded" and starts[0]["effect"]["recording_id"] == rid
    assert [c["origin"]["via"] for c in _commands(data) if c["command"] == "stop"] == ["ctl"]


def test_a_trigger_start_is_refused_like_a_press_when_the_battery_is_critical(
        tmp_path: Path) -> None:
    """Admission is the button's: with the battery nearly empty the trigger does not start,
    and the refusal is logged with the trigger as its origin."""
    data = tmp_path / "data"
    cfg = _config([{"name": "lightbar", "pin": HOLSTER, "pull": "down",
                                  "active_high": True, "debounce_ms": 0,
                                  "action": "start_matter", "matter": "XCJC"}],
                       sim={"battery_pct": 0.5}, power={"poll_s": 0.2})
    with running_agent(cfg, data) as agent:
        wait_for(lambda: agent.power_watch is not None
                 and not agent.power_watch.policy.can_start())
        agent.hw.controls.sim_drive(HOLSTER, True)
        wait_for(lambda: any(c["command"] == "start" for c in _commands(data)))
        assert agent.recorder.state == "standby"
    [start] = [c for c in _commands(data) if c["command"] == "start"]
    assert start["outcome"] == "refused" and start["origin"]["name"] == "lightbar"
    [matter] = [c for c in _commands(data) if c["command"] == "matter"]
    assert matter["outcome"] == "succeeded" and matter["origin"]["via"] == "trigger"
