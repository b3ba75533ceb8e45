"""Group activation end to end: three recorders on simulated hardware (real agents, real GPS
simulator on a pty, real mosquitto on loopback) and a real ``bodycam station run``.

Unit A starts recording; B (same team, same spot) starts within 2 s through the station's
``cmd/start``; C (same team, walking away, beyond the radius) does not. B's evidence log holds
the start with the station's origin naming A; the station's index records both sides.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from agent.config import Config
from agent.evidence.canonical import parse_canonical
from agent.evidence.log import replay_entries
from agent.station.group import ISSUER, haversine_m
from agent.station.index import open_index
from agent.testing import running_agent, small_config, wait_for
from tests.station.harness import StationProcess
from tests.sync.mqtt_harness import Broker, back_office, free_port, plain_broker_conf

pytestmark = pytest.mark.timeout(120)

A, B, C = "GRP-A", "GRP-B", "GRP-C"
RADIUS_M = 3.0


def _station(root: Path, port: int) -> StationProcess:
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "station.toml"
    cfg.write_text("\n".join([
        "[station]", 'listen = "127.0.0.1"', "port = 0", "insecure_http = true",
        "[mqtt]", "enabled = true", f'url = "mqtt://127.0.0.1:{port}"', "allow_plaintext = true",
        "[group]", "enabled = true", f"radius_m = {RADIUS_M}", "max_fix_age_s = 10",
        "cooldown_s = 60", "[[group.teams]]", 'name = "alpha"', f'devices = ["{A}", "{B}", "{C}"]',
        ""]))
    return StationProcess(cfg, root / "data")


def _unit(device: str, port: int, route: str) -> Config:
    return small_config(
        device={"id": device}, gps={"source": "serial"}, sim={"gps_route": route},
        video={"width": 160, "height": 120, "fps": 10, "gop": 10, "bitrate": 100_000},
        recording={"prerecord_s": 1, "segment_s": 2},
        mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{port}", "allow_plaintext": True,
              "telemetry_s": 1})


def test_a_start_starts_the_near_team_mate_and_not_the_far_one(tmp_path: Path) -> None:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed")
    work = tmp_path / "broker"
    work.mkdir()
    port = free_port()
    broker = Broker(plain_broker_conf(work, port), "127.0.0.1", port, work)
    broker.start()
    station = _station(tmp_path / "station", port).start()
    try:
        wait_for(lambda: "group activation: subscribed" in station.stderr(), timeout=20)
        with back_office("127.0.0.1", port) as bo, \
                running_agent(_unit(A, port, "static"), tmp_path / "a") as a, \
                running_agent(_unit(B, port, "static"), tmp_path / "b") as b, \
                running_agent(_unit(C, port, "walk"), tmp_path / "c") as c:
            def fixes(dev: str) -> list[tuple[int, int]]:
                return [(d["gps_lat_e7"], d["gps_lon_e7"]) for m in bo.messages
                        if m.topic == f"bodycam/v1/{dev}/telemetry"
                        and "gps_lat_e7" in (d := m.json())]

            def ready() -> bool:  # every unit reported twice since C walked out of range
                fa, fb, fc = fixes(A), fixes(B), fixes(C)
                far = [i for i, p in enumerate(fc) if fa and haversine_m(*fa[-1], *p) > 3 * RADIUS_M]
                return len(fa) >= 2 and len(fb) >= 2 and bool(far) and len(fc) - far[0] >= 2
            wait_for(ready, timeout=40)
            assert haversine_m(*fixes(A)[-1], *fixes(B)[-1]) < RADIUS_M
            t0 = time.monotonic()
            assert a.commands.respond("start", {})["ok"]
            wait_for(lambda: b.recorder.state == "recording", timeout=5, step=0.01)
            latency = time.monotonic() - t0
            a_rid = a.recorder.recording_id
            index = open_index("", station.data_dir)
            try:
                wait_for(lambda: any(e[2] == "group-activation-caused" for e in index.events()))
                events = [e for e in index.events() if e[2].startswith("group-activation")]
            finally:
                index.close()
            assert c.recorder.state == "standby"
        print(f"group activation: B recording {latency * 1000:.0f} ms after A's start")
        assert latency < 2.0
        assert [(e[1], e[2]) for e in events] == [(B, "group-activation"),
                                                 (A, "group-activation-caused")]
        assert f"{A} started recording {a_rid}" in events[0][3]
        assert B in events[1][3] and a_rid in events[1][3]
        log = [parse_canonical(r) for r in replay_entries(
            (tmp_path / "b" / "log" / "entries.bin").read_bytes()).records]
        [start] = [e for e in log if e.get("type") == "command" and e["command"] == "start"]
        assert start["outcome"] == "succeeded"
        assert start["origin"]["via"] == "mqtt" and start["origin"]["issuer"] == ISSUER
        assert start["origin"]["command_id"].startswith(f"grp.{A}.{a_rid[:12]}.")
        c_log = [parse_canonical(r) for r in replay_entries(
            (tmp_path / "c" / "log" / "entries.bin").read_bytes()).records]
        assert not [e for e in c_log if e.get("type") == "command"]
    finally:
        station.stop()
        broker.kill()
