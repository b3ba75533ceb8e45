"""The whole agent running out of battery and out of disk: seal, log, stop -- lose nothing."""

from __future__ import annotations

from pathlib import Path

from agent.evidence.canonical import parse_canonical
from agent.evidence.log import replay_entries
from agent.evidence.verify import verify
from agent.testing import running_agent, small_config, wait_for
from tests.recording.evidence_tools import manifests


def _events(data: Path) -> list[dict]:
    raw = (data / "log" / "entries.bin").read_bytes()
    return [e for e in (parse_canonical(d) for d in replay_entries(raw).records)
            if e.get("kind") == "event"]


def test_battery_drains_through_warn_and_critical_while_recording(tmp_path: Path):
    """A draining battery warns, then at critical the open segment is sealed, a
    low_battery_shutdown event is logged and recording stops; new starts are refused."""
    data = tmp_path / "data"
    cfg = small_config(
        sim={"battery_wh": 0.2, "time_scale": 10.0},
        power={"warn_min": 1.0, "critical_min": 0.5, "poll_s": 0.2},
    )
    with running_agent(cfg, data) as agent:
        wait_for(lambda: agent.recorder.preroll.span_s >= 1.0)
        agent.controller.call("start")
        wait_for(lambda: any(k == "battery" and d["level"] == "warn"
                             for k, d in agent.commands.events), timeout=40)
        assert agent.recorder.state == "recording", "a warning must not stop the recording"
        wait_for(lambda: agent.recorder.state == "standby", timeout=40)
        assert agent.commands.stop_reason == "low_battery"
        reply = agent.commands.respond("start", {})
        assert not reply["ok"] and "critical" in reply["error"]
    kinds = [e["type"] for e in _events(data)]
    assert "low_battery_shutdown" in kinds
    ms = manifests(data)
    assert ms and not any("recovered" in m["flags"] for m in ms)
    assert verify(data).ok


def test_disk_filling_mid_recording_seals_and_stops(tmp_path: Path):
    """A small simulated disk fills while recording: the recording stops at the reserve with
    every segment sealed, storage_full is logged, nothing is evicted (nothing acknowledged)."""
    data = tmp_path / "data"
    cfg = small_config(
        video={"bitrate": 2_000_000},
        recording={"segment_s": 2},
        sim={"storage_quota_mb": 4},
        storage={"poll_s": 0.2, "reserve_segments": 2},
    )
    with running_agent(cfg, data) as agent:
        wait_for(lambda: agent.recorder.preroll.span_s >= 1.0)
        agent.controller.call("start")
        wait_for(lambda: agent.recorder.state == "standby", timeout=60)
        assert agent.commands.stop_reason == "storage_full"
        assert agent.recorder.state != "fault", "running out of space is a clean stop"
    kinds = [e["type"] for e in _events(data)]
    assert "storage_full" in kinds and "eviction" not in kinds
    assert verify(data).ok
    assert all(m["file"]["plain_sha256"] for m in manifests(data))
