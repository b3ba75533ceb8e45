"""Commands given over the control socket are in the evidence log with the caller's uid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main as bodycam
from agent.command.ctl_server import ctl_request
from agent.evidence.canonical import canonical_json, parse_canonical
from agent.evidence.log import replay_entries
from agent.evidence.manifest import parse_envelope
from agent.testing import running_agent, small_config, wait_for
from tests.tools.receipts import make_station


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


def test_ctl_ack_takes_a_receipt_file_and_logs_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`bodycam ctl ack FILE` hands a station receipt to the agent: accepted and logged with the
    caller's uid; a receipt for a segment that does not exist yet is refused (exit 1)."""
    station = make_station(tmp_path / "station")
    data = tmp_path / "data"
    cfg = small_config(offload={"station_keys": [station.public_b64]})
    with running_agent(cfg, data) as agent:
        assert ctl_request(data, "start")["ok"]
        wait_for(lambda: len(agent.recorder.sealed) >= 1)
        assert ctl_request(data, "stop")["ok"]
        wait_for(lambda: agent.recorder.state == "standby")
        first = parse_envelope(next(data.glob("recordings/*/*_00000.manifest.json")).read_bytes())
        good, early = tmp_path / "good.json", tmp_path / "early.json"
        good.write_bytes(canonical_json(station.receipt(first).to_json()))
        early.write_bytes(canonical_json(station.receipt(first, device_seq=500).to_json()))
        assert bodycam(["ctl", "ack", str(good), "--data-dir", str(data)]) == 0
        assert '"ack_index"' in capsys.readouterr().out
        assert bodycam(["ctl", "ack", str(early), "--data-dir", str(data)]) == 1
        assert "segment 500 is not sealed" in capsys.readouterr().err
        assert agent.store.acknowledged(0) and not agent.store.acknowledged(500)
    records = replay_entries((data / "log" / "entries.bin").read_bytes()).records
    [ack] = [e for e in map(parse_canonical, records) if e.get("type") == "acknowledged"]
    assert ack["device_seq"] == 0 and ack["origin"] == {"via": "ctl", "uid": os.getuid(),
                                                        "pid": os.getpid()}
    acks = [c for c in _commands(data) if c["command"] == "ack"]
    assert [(c["outcome"], c["args"]) for c in acks] == [("succeeded", {"receipts": 1}),
                                                         ("refused", {"receipts": 1})]
