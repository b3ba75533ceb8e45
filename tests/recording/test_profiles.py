"""Each recorder profile the seed's carriers need, run on the simulator end to end."""

from __future__ import annotations

import itertools
import time
import tomllib
from pathlib import Path
from typing import Any

from agent.config import parse_config
from agent.evidence.verify import verify
from agent.testing import SMALL, running_agent, wait_for
from tests.recording.evidence_tools import decrypt, ffprobe, manifests

PROFILES = Path(__file__).resolve().parents[2] / "config" / "profiles"


def profile_config(name: str, **over: dict[str, Any]):
    """The shipped profile file, shrunk to test size."""
    raw = tomllib.loads((PROFILES / f"{name}.toml").read_text())
    for section, values in {**SMALL, **over}.items():
        raw.setdefault(section, {}).update(values)
    raw["recording"]["prerecord_s"] = min(raw["recording"].get("prerecord_s", 2), 2)
    return parse_config(raw, source=f"{name}.toml")


def test_audio_profile_records_sealed_audio_only_segments(tmp_path: Path):
    """The audio recorder seals AAC-only segments that decrypt, play and verify."""
    data = tmp_path / "data"
    with running_agent(profile_config("audio", recording={"segment_s": 2}), data) as agent:
        assert agent.hw.camera is None
        wait_for(lambda: agent.recorder.preroll.span_s >= 1.0)
        agent.controller.call("start")
        wait_for(lambda: len(agent.recorder.sealed) >= 2, timeout=20)
        agent.controller.call("stop")
        wait_for(lambda: agent.recorder.state == "standby")
    ms = manifests(data)
    assert len(ms) >= 3 and all(m["media"]["video"] is None for m in ms)
    for prev, nxt in itertools.pairwise(ms):
        assert abs(nxt["media"]["audio"]["first_pts_us"] - prev["media"]["audio"]["end_us"]) <= 21
    probe = ffprobe(decrypt(ms[1], data / "sim-agency.key", tmp_path / "a.mp4"))
    assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
    assert verify(data).ok


def test_stills_profile_seals_one_picture_per_press(tmp_path: Path):
    """Each click of a stills camera is one signed, encrypted JPEG at full resolution."""
    data = tmp_path / "data"
    with running_agent(profile_config("stills"), data) as agent:
        wait_for(lambda: agent.hw.camera.frames_delivered > 5)
        for _ in range(2):
            agent.hw.controls.sim_press()
            time.sleep(0.08)
            agent.hw.controls.sim_release()
            time.sleep(0.6)
        wait_for(lambda: len(manifests(data)) == 2)
        assert agent.recorder.state == "standby"
    ms = manifests(data)
    assert all(m["file"]["name"].endswith(".jpg.age") and "still" in m["flags"] for m in ms)
    assert len({m["recording_id"] for m in ms}) == 2
    probe = ffprobe(decrypt(ms[0], data / "sim-agency.key", tmp_path / "s.jpg"))
    (stream,) = probe["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 320, 240)
    assert verify(data).ok


def test_fixed_profile_records_continuously_without_a_button(tmp_path: Path):
    """A fixed camera starts by itself, keeps rolling segments, and a hold does not stop it."""
    data = tmp_path / "data"
    cfg = profile_config("fixed", recording={"segment_s": 2}, gpio={"button": 17})
    with running_agent(cfg, data) as agent:
        wait_for(lambda: agent.recorder.state == "recording", timeout=15)
        agent.controller.call("hold")
        wait_for(lambda: len(agent.recorder.sealed) >= 2, timeout=20)
        assert agent.recorder.state == "recording"
    ms = manifests(data)
    assert len({m["recording_id"] for m in ms}) == 1
    assert all(m["media"]["frames"] > 0 for m in ms)
    assert verify(data).ok
