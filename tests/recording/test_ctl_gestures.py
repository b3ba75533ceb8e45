"""The gesture rules on the control-socket path (``bodycam ctl press|hold`` with
``virtual``), not only on the simulated pin: a knock cannot stop evidence, a hold can."""

from __future__ import annotations

from pathlib import Path

from agent.command.ctl_server import ctl_request
from agent.testing import running_agent, small_config, wait_for


def test_a_virtual_press_never_stops_a_recording_and_a_hold_does(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_agent(small_config(), data) as agent:
        reply = ctl_request(data, "press", {"virtual": True})
        assert reply["ok"], reply
        wait_for(lambda: agent.recorder.state == "recording")
        rid = agent.recorder.recording_id
        for _ in range(3):  # knocks: each is a press while recording
            reply = ctl_request(data, "press", {"virtual": True})
            assert reply["ok"] and reply["result"]["state"] == "recording", reply
        assert agent.recorder.state == "recording" and agent.recorder.recording_id == rid
        reply = ctl_request(data, "hold", {"virtual": True})
        assert reply["ok"], reply
        wait_for(lambda: agent.recorder.state == "standby")
        assert agent.commands.stop_reason is not None
