"""Commands given over the control socket are in the evidence log with the caller's uid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agent.ctl import ctl_request
from agent.evidence.canonical import parse_canonical
from agent.evidence.log import replay_entries
from tests.recording.conftest import running_agent, small_config, wait_for


def _commands(data_dir: Path) -> list[dict[str, Any]]:
    records = replay_entries((data_dir / "log" / "entries.bin").read_bytes()).records
    return [e for e in map(parse_canonical, records) if e.get("type") == "command"]


def test_ctl_commands_are_logged_with_peer_uid_old_and_new_values(tmp_path: Path) -> None:
    """ctl start/stop, a matter change and config_set recording.prerecord_s=0 each leave a
    command entry naming the socket peer's uid (SO_PEERCRED) and what changed; a refused
    command is logged as refused with its reason; status and checkpoint are not logged."""
    data = tmp_path / "data"
    with running_agent(small_config(), data) as agent:
        assert ctl_request(data, "status")["ok"]
        assert ctl_request(data, "start")["ok"]
        wait_for(lambda: agent.recorder.state == "recording")
        rid = agent.recorder.recording_id
        assert ctl_request(data, "matter", {"code": "XCJC"})["ok"]
        assert ctl_request(data, "stop")["ok"]
        wait_for(lambda: agent.recorder.state == "standby")
        reply = ctl_request(data, "config_set", {"key": "recording.prerecord_s", "value": 0})
        assert reply["ok"], reply
        refused = ctl_request(data, "config_set", {"key": "evidence.encrypt", "value": False})
        assert not refused["ok"]
        assert ctl_request(data, "checkpoint")["ok"]
    by_name = {c["command"]: c for c in _commands(data) if c["outcome"] == "succeeded"}
    assert sorted(c["command"] for c in _commands(data)) == [
        "config_set", "config_set", "matter", "start", "stop"]
    me = {"via": "ctl", "uid": os.getuid(), "pid": os.getpid()}
    assert all(c["origin"] == me for c in _commands(data))
    assert by_name["start"]["effect"]["recording_id"] == rid
    assert by_name["stop"]["effect"]["recording_id"] == rid
    assert by_name["matter"]["effect"]["matter"]["code"] == "XCJC"
    change = by_name["config_set"]
    assert change["args"] == {"key": "recording.prerecord_s", "value": 0}
    assert (change["effect"]["previous"], change["effect"]["value"]) == (3, 0)
    [no] = [c for c in _commands(data) if c["outcome"] == "refused"]
    assert no["args"]["key"] == "evidence.encrypt" and "cannot be set remotely" in no["reason"]
