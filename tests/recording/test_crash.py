"""SIGKILL at random moments: earlier segments survive, the interrupted one is recovered."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from agent.command.ctl_server import ctl_request
from agent.evidence.verify import verify
from tests.recording.agent_process import start_agent
from tests.recording.evidence_tools import manifests, playable_end_us

KILLS = 20

CONFIG = """
[video]
width = 320
height = 240
bitrate = 2000000
[recording]
prerecord_s = 1
segment_s = 2
[gps]
source = "none"
"""


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kills", [8, pytest.param(KILLS, marks=pytest.mark.soak)])
def test_random_kills_lose_at_most_about_a_second(tmp_path: Path, kills: int):
    """Kill -9 the agent mid-recording (8 times in the default run, 20 in the soak run:
    ``scripts/test.sh -m soak``); every segment is sealed (the interrupted ones as recovered),
    all verify, all play, and each kill loses at most ~1 s of video."""
    cfg = tmp_path / "small.toml"
    cfg.write_text(CONFIG)
    data = tmp_path / "data"
    rng = random.Random(947)
    kill_times: list[int] = []
    for _ in range(kills):
        proc = start_agent(cfg, data)
        assert ctl_request(data, "start")["ok"]
        time.sleep(rng.uniform(0.5, 2.5))
        kill_times.append(time.monotonic_ns() // 1000)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    proc = start_agent(cfg, data)  # the last interruption is recovered at this start
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0

    ms = manifests(data)
    recordings: dict[str, list[dict]] = {}
    for m in ms:  # in device order, so recordings come out in the order they were killed
        recordings.setdefault(m["recording_id"], []).append(m)
    interrupted = [r for r in recordings.values() if any("recovered" in m["flags"] for m in r)]
    # every kill interrupted one recording; a kill during a roll (the previous segment waits
    # for its audio tail) leaves two open segments of that recording, both recovered
    assert len(recordings) == kills and len(interrupted) == kills
    report = verify(data, identity=None)
    assert report.ok, report

    ident = data / "sim-agency.key"
    ends: dict[int, int] = {}  # device_seq -> monotonic µs just after its last playable frame
    for m in ms:
        end = playable_end_us(m, ident, tmp_path / f"s{m['device_seq']}.mp4")
        if end is None:
            assert "truncated" in m["flags"]  # killed before its first fragment was complete
            continue
        ends[m["device_seq"]] = end
    losses = []
    for same, killed_at in zip(interrupted, kill_times, strict=True):
        floor = min(x["start"]["mono_us"] for x in same)  # nothing playable: lost since here
        before = [ends[x["device_seq"]] for x in same if x["device_seq"] in ends]
        lost_s = (killed_at - max([floor, *before])) / 1e6
        losses.append(lost_s)
        # one fragment (a 1 s GOP) plus the age chunk still being filled (64 KiB at ~2 Mbit/s)
        rid = same[0]["recording_id"][:8]
        assert lost_s <= 1.5, f"kill of recording {rid} lost {lost_s:.2f} s of video"
    print(f"loss per kill: max {max(losses):.2f} s, mean {sum(losses) / len(losses):.2f} s")
    for m in ms:
        if "recovered" not in m["flags"]:
            assert m["file"]["plain_sha256"] is not None
