"""Scenarios with the real agent (``bodycam run --hw sim``): each way of assigning a matter
ends in sealed manifests that carry it and a coverage report listing the checklist marks."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from matters_harness import SimAgent, sim_agent

from agent.evidence.verify import verify
from agent.matters import (
    MatterCatalogue,
    QuickList,
    RecordingCoverage,
    coverage_for_dir,
    render_coverage,
)

pytestmark = pytest.mark.timeout(180)

QUICK = ["XCJC", "DCQZ", "ZJSD"]


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimAgent]:
    """One simulated recorder shared by the ctl and button scenarios (start-up is costly)."""
    with sim_agent(tmp_path_factory.mktemp("agent"), quick_list=QUICK) as a:
        yield a


FPS = 15  # matters_harness.AGENT_CONFIG


def _record(a: SimAgent, seconds: float) -> None:
    """Let ``seconds`` of media be recorded: counted in frames the camera delivered, not in
    wall time (a loaded machine delivers late, and a fixed sleep then records too little)."""
    target = a.ok("status")["frames_delivered"] + round(seconds * FPS)
    deadline = time.monotonic() + 30 + seconds
    while a.ok("status")["frames_delivered"] < target:
        assert time.monotonic() < deadline, f"the camera did not deliver {seconds} s of frames"
        time.sleep(0.05)


def _finish(a: SimAgent, recording_id: str) -> tuple[list[dict[str, Any]], RecordingCoverage]:
    a.wait_state("standby")  # and the stop's seals done
    manifests = [m for m in a.manifests() if m["recording_id"] == recording_id]
    covs = [c for c in coverage_for_dir(a.data_dir, catalogue=MatterCatalogue.load())
            if c.recording_id == recording_id]
    assert len(covs) == 1, covs
    return manifests, covs[0]


def _assert_one_whole(cov: RecordingCoverage, manifests: list[dict[str, Any]]) -> None:
    """Continuous at every boundary, nothing damaged. Frames the simulated camera dropped
    because this shared host was too busy to encode in time are real losses: they must be
    reported, exactly where the manifests count them, and be the only problem."""
    text = "\n".join(render_coverage(cov))
    lost = {m["seq"] for m in manifests if (m["media"]["video"] or {}).get("missing_frames")}
    assert all(d.kind == "missing_frames" for d in cov.discontinuities), text
    assert {d.seq for d in cov.discontinuities} == lost, text
    assert cov.continuous == (not lost)


def test_ctl_path_matter_and_marks_reach_the_manifests(agent: SimAgent) -> None:
    """ctl matter ZJSD, start, mark both required items, stop: complete and continuous."""
    assert agent.ok("matter", code="zjsd")["matter"]["name_zh"] == "直接送达"
    rid = agent.ok("start")["recording_id"]
    assert agent.ok("mark", item="service_time") == {"marked": "service_time"}
    bad = agent.ctl("mark", item="rights_read")
    assert not bad["ok"] and "'rights_read' is not on the checklist of ZJSD" in bad["error"]
    _record(agent, 2.5)
    agent.ok("mark", item="service_result")
    _record(agent, 1.0)
    agent.ok("stop")
    manifests, cov = _finish(agent, rid)

    assert len(manifests) >= 2  # the pre-event segment and at least one roll
    for m in manifests:
        assert m["matter"]["code"] == "ZJSD" and m["matter"]["name_zh"] == "直接送达"
        assert m["matter"]["required_items"] == ["service_time", "service_result"]
        assert "checklist_codes" not in m["matter"]
        assert "uncategorised" not in m["flags"]
    marks = [b for m in manifests for b in m["bookmarks"] if b.get("item")]
    assert [b["label"] for b in marks] == ["checklist:service_time", "checklist:service_result"]

    _assert_one_whole(cov, manifests)
    (zjsd,) = cov.matters
    assert zjsd.complete and zjsd.missing == ()
    assert list(zjsd.marked) == ["service_time", "service_result"]
    assert zjsd.marked["service_time"].media_us < zjsd.marked["service_result"].media_us
    text = "\n".join(render_coverage(cov))
    assert "[x] service_time 送达时间 (Time of service) — marked at" in text
    report = verify(agent.data_dir)  # the same evidence is sealed and verifies offline
    assert report.ok, report.render()


def test_ctl_unknown_matter_is_rejected_naming_the_code(agent: SimAgent) -> None:
    """An unknown code changes nothing and the error names it, with close matches."""
    before = agent.ok("status")["matter"]
    reply = agent.ctl("matter", code="XCJX")
    assert not reply["ok"]
    assert "unknown matter code 'XCJX'" in reply["error"] and "XCJC" in reply["error"]
    assert agent.ok("status")["matter"] == before


def test_recording_without_a_matter_is_flagged_uncategorised(tmp_path: Path) -> None:
    """A fresh recorder never told a matter: every manifest says uncategorised."""
    with sim_agent(tmp_path, quick_list=QUICK) as a:
        rid = a.ok("start")["recording_id"]
        _record(a, 0.5)
        a.ok("stop")
        manifests, cov = _finish(a, rid)
    assert manifests and all(m["matter"] is None and "uncategorised" in m["flags"]
                             for m in manifests)
    assert cov.uncategorised and not cov.complete
    assert "  matter: UNCATEGORISED (no enforcement matter was assigned)" in render_coverage(cov)


def test_lost_frames_and_boundary_gaps_are_reported(tmp_path: Path) -> None:
    """A camera that drops frames and a roll that loses 300 ms: not one continuous whole."""
    with sim_agent(tmp_path, quick_list=QUICK, extra_config="[sim]\nboundary_gap_ms = 300\n") as a:
        a.ok("matter", code="XCJC")
        rid = a.ok("start")["recording_id"]
        a.ok("sim", device="camera", verb="drop-every", value="4")
        _record(a, 1.0)
        a.ok("sim", device="camera", verb="drop-every", value="0")  # keyframes flow again
        deadline = time.monotonic() + 20
        while a.ok("status")["segments_sealed"] < 1:  # the roll that loses 300 ms
            assert time.monotonic() < deadline, "no segment roll"
            time.sleep(0.2)
        _record(a, 2.5)  # the next segment opens at the first keyframe after the gap
        a.ok("stop")
        manifests, cov = _finish(a, rid)
    assert not cov.continuous and not cov.complete
    kinds = {d.kind for d in cov.discontinuities}
    assert {"missing_frames", "gap"} <= kinds, "\n".join(render_coverage(cov))
    gap = next(d for d in cov.discontinuities if d.kind == "gap")
    assert gap.seq >= 1 and "not recorded between segment" in gap.detail
    assert manifests[0]["media"]["video"]["missing_frames"] > 0  # dropped by the camera
    assert "continuous: NO" in "\n".join(render_coverage(cov))


def _triple_press(a: SimAgent) -> None:
    for _ in range(3):
        a.ok("press")  # drives the simulated button pin; ~0.2 s per press, window 1.0 s
    time.sleep(1.2)  # let the multi-press window close before the next gesture


def test_button_path_triple_press_cycles_the_quick_list(agent: SimAgent) -> None:
    """Triple press in standby starts and selects the next quick-list matter; again while
    recording selects the one after: a matter change inside the recording."""
    agent.wait_state("standby")
    quick = QuickList(QUICK, MatterCatalogue.load())
    current = (agent.ok("status")["matter"] or {}).get("code")
    first = quick.next_after(current)
    second = quick.next_after(first.code if first else None)
    assert first is not None and second is not None

    _triple_press(agent)
    snap = agent.ok("status")
    assert snap["state"] == "recording"  # the first press of the three starts recording
    assert snap["matter"]["code"] == first.code
    rid = snap["recording_id"]
    _record(agent, 2.0)
    _triple_press(agent)
    assert agent.ok("status")["matter"]["code"] == second.code
    _record(agent, 1.0)
    agent.ok("hold")
    manifests, cov = _finish(agent, rid)

    # A segment sealed before the first triple was recognised keeps the earlier matter.
    assert {(m["matter"] or {}).get("code") for m in manifests} <= {current, first.code, second.code}
    assert manifests[-1]["matter"]["code"] == second.code
    assert manifests[-1]["matter"]["name_zh"] == MatterCatalogue.load().get(second.code).name_zh
    # Both triples land inside the recording (its first press starts it); the matter before
    # the first change is the one left over from earlier, named only if the bookmark says so.
    first_change, second_change = cov.changes
    assert first_change.matter == first.code
    assert (second_change.previous, second_change.matter) == (first.code, second.code)
    assert [m.code for m in cov.matters][-2:] == [first.code, second.code]
    _assert_one_whole(cov, manifests)


# --- MQTT ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto binary not installed")
def test_mqtt_path_dispatch_assigns_the_matter(tmp_path: Path) -> None:
    """Dispatch publishes cmd/matter and cmd/start; the manifests carry the matter."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    port = _free_port()
    broker = subprocess.Popen(["mosquitto", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        extra = (f'\n[mqtt]\nenabled = true\nurl = "mqtt://127.0.0.1:{port}"\n'
                 "allow_plaintext = true\n")
        with sim_agent(tmp_path, quick_list=QUICK, extra_config=extra) as a:
            device = a.ok("status")["device_id"]
            deadline = time.monotonic() + 20  # commands sent before the device subscribed are lost
            while not a.ok("status").get("mqtt_commands_ready"):
                assert time.monotonic() < deadline, "the agent never subscribed to its commands"
                time.sleep(0.1)
            office = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            acks: list[dict[str, Any]] = []
            office.on_message = lambda _c, _u, msg: acks.append(json.loads(msg.payload))
            office.connect("127.0.0.1", port)
            office.subscribe(f"bodycam/v1/{device}/cmd/+/ack", qos=1)
            office.loop_start()

            def command(name: str, cid: str, args: dict[str, Any]) -> None:
                doc = {"id": cid, "issued_at": datetime.now(UTC).isoformat(), "args": args,
                       "issuer": "dispatch:D-12"}
                office.publish(f"bodycam/v1/{device}/cmd/{name}", json.dumps(doc), qos=1)
                deadline = time.monotonic() + 20
                while not any(x.get("id") == cid and x.get("status") == "succeeded" for x in acks):
                    assert time.monotonic() < deadline, f"no success ack for {cid}: {acks}"
                    time.sleep(0.1)

            command("matter", "m1", {"code": "XCJC", "scope": "current"})
            command("start", "s1", {})
            rid = a.ok("status")["recording_id"]
            command("bookmark", "b1", {"label": "identity", "checklist_item": "identity"})
            _record(a, 1.0)
            command("stop", "t1", {})
            office.loop_stop()
            manifests, cov = _finish(a, rid)
        assert manifests and all(m["matter"]["code"] == "XCJC" for m in manifests)
        (xcjc,) = cov.matters
        assert "identity" in xcjc.marked and "enter_site" in xcjc.missing
    finally:
        broker.terminate()
        broker.wait(timeout=10)
