"""A microphone that stops delivering beside a running camera is noticed and restarted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.evidence.canonical import parse_canonical
from agent.testing import running_agent, small_config, wait_for

pytestmark = pytest.mark.timeout(60)


def test_dead_audio_stream_beside_a_camera_is_restarted(data_dir: Path) -> None:
    """The audio stream dies silently (as PortAudio's does after an aborted callback) while the
    camera keeps running: within the watchdog window a microphone_stall is raised, the stream is
    restarted, the restart is in the evidence log, and the recording itself goes on."""
    cfg = small_config(recording={"stall_after_s": 1.0})
    with running_agent(cfg, data_dir) as agent:
        assert agent.hw.camera is not None and agent.hw.microphone is not None
        wait_for(lambda: agent.controller.audio_chunks_in > 20)
        agent.controller.call("start")
        wait_for(lambda: agent.recorder.state == "recording")
        agent.hw.microphone.stop()  # no error anywhere: the chunks just stop coming
        t0 = time.monotonic()
        wait_for(lambda: agent.supervisor.mic_watchdog.stalls >= 1, timeout=10)
        detected = time.monotonic() - t0
        chunks = agent.controller.audio_chunks_in
        wait_for(lambda: agent.controller.audio_chunks_in > chunks + 10, timeout=10)
        assert agent.recorder.state == "recording"
        assert agent.hw.camera.frames_delivered > 0
        events = [parse_canonical(data) for _, data in agent.store.log.entries()]
        restarts = [e for e in events if e.get("type") == "microphone_restart"]
        assert len(restarts) == 1 and restarts[0]["reason"] == "stall"
        assert restarts[0]["recording_id"] == agent.recorder.recording_id
    assert detected < cfg.recording.stall_after_s + 1.5
