"""Segments sealed at start-up (crash recovery) or logged just before a power cut reach the
outbox exactly like segments sealed while running: the manifest, then a checkpoint covering it."""

from __future__ import annotations

import errno
import json
import sqlite3
import uuid
from pathlib import Path

from agent.evidence.age import Identity
from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import MediaInfo, Timestamp
from agent.evidence.store import EvidenceStore
from agent.testing import running_agent, small_config, wait_for
from tests.evidence.evbench import segment_info

DEVICE = "BC-RECOVER-1"


def _outbox(data: Path) -> list[tuple[str, dict]]:
    """(kind, payload) of every queued message, oldest first, read from SQLite directly."""
    db = sqlite3.connect(data / "state" / "outbox.sqlite")
    try:
        rows = db.execute("SELECT kind, payload FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()
    return [(kind, json.loads(payload)) for kind, payload in rows]


def _crashed_device(data: Path) -> tuple[str, str]:
    """A data directory as a power cut leaves it: one segment sealed and logged whose manifest
    was never queued, and one still open (journal + partial media). Returns both recording ids."""
    identity = Identity.generate()
    (data / "sim-agency.key").parent.mkdir(parents=True)
    (data / "sim-agency.key").write_text(f"# bench\n{identity}\n")
    key = DeviceKey.generate(data / "keys" / "device.key")
    store = EvidenceStore(data, key=key, recipients=[identity.recipient], encrypt=True,
                          device_id=DEVICE)
    sealed, crashed = uuid.uuid4().hex, uuid.uuid4().hex
    seg = store.open_segment(segment_info(sealed, 0))
    seg.sink.write(b"\x00" * 100_000)
    store.seal(seg, end=Timestamp("2026-11-27T10:00:10.000000Z", 10_000_000),
               media=MediaInfo(frames=300, duration_us=10_000_000))
    seg = store.open_segment(segment_info(crashed, 0, seconds=20))
    seg.sink.write(b"\x01" * 200_000)  # three full age chunks and a partial one
    seg.sink.sync()
    store.close()  # no seal: the power went
    return sealed, crashed


def test_recovered_and_unqueued_segments_reach_the_outbox_at_start(tmp_path: Path) -> None:
    """After a cut, the next start queues the recovered segment's manifest and the one a cut
    kept out of the outbox, then one checkpoint whose tree covers both."""
    data = tmp_path / "data"
    sealed, crashed = _crashed_device(data)
    cfg = small_config(device={"id": DEVICE},
                       mqtt={"enabled": True, "url": "mqtt://127.0.0.1:9",  # nobody listens
                             "allow_plaintext": True})
    with running_agent(cfg, data) as agent:
        assert [m.manifest["recording_id"] for m in agent.recovered] == [crashed]
        log_size = agent.store.log.size
        queued = _outbox(data)

    segments = [p for kind, p in queued if kind == "segment"]
    assert [(s["manifest"]["recording_id"], "recovered" in s["manifest"]["flags"])
            for s in segments] == [(sealed, False), (crashed, True)]
    assert segments[1]["manifest"]["file"]["cipher_bytes"] > 0
    assert all("inclusion" in s for s in segments)  # as a segment sealed while running
    kinds = [kind for kind, _ in queued]
    first_cp = kinds.index("checkpoint")
    assert first_cp > kinds.index("segment", kinds.index("segment") + 1)  # after both manifests
    cp = parse_signed_checkpoint(queued[first_cp][1]["note"].encode())
    cp.verify([agent.key.public_bytes])
    assert cp.checkpoint.size == 4  # sealed segment, recovery event, recovered segment, boot
    assert log_size >= 4


def test_a_restart_does_not_queue_published_segments_again(tmp_path: Path) -> None:
    """Segments already covered by a published checkpoint are not queued a second time."""
    data = tmp_path / "data"
    _crashed_device(data)
    cfg = small_config(device={"id": DEVICE},
                       mqtt={"enabled": True, "url": "mqtt://127.0.0.1:9",
                             "allow_plaintext": True})
    with running_agent(cfg, data):
        pass
    first = [p["manifest"]["device_seq"] for kind, p in _outbox(data) if kind == "segment"]
    with running_agent(cfg, data):
        pass
    again = [p["manifest"]["device_seq"] for kind, p in _outbox(data) if kind == "segment"]
    assert first == again == [0, 1]


def test_segments_recovered_after_a_storage_fault_reach_the_outbox(tmp_path: Path) -> None:
    """A write fault mid-recording leaves a journal; once the disk takes writes again the
    agent seals it as recovered and queues its manifest, as at a start after a crash."""
    data = tmp_path / "data"
    cfg = small_config(device={"id": DEVICE}, sim={"storage_quota_mb": 64},  # a SimStorage
                       mqtt={"enabled": True, "url": "mqtt://127.0.0.1:9",
                             "allow_plaintext": True})
    with running_agent(cfg, data) as agent:
        wait_for(lambda: agent.recorder.preroll.span_s >= 1.0)
        agent.controller.call("start")
        agent.hw.storage.fail_writes(errno.EIO)
        wait_for(lambda: agent.recorder.state == "fault", timeout=20)
        agent.hw.storage.fail_writes(None)
        wait_for(lambda: agent.recorder.state == "standby", timeout=30)
        queued = _outbox(data)
    recovered = [p["manifest"] for kind, p in queued
                 if kind == "segment" and "recovered" in p["manifest"]["flags"]]
    assert recovered, [k for k, _ in queued]
    kinds = [k for k, _ in queued]
    last_recovered = max(i for i, (k, p) in enumerate(queued)
                         if k == "segment" and "recovered" in p["manifest"]["flags"])
    assert "checkpoint" in kinds[last_recovered:]  # and the checkpoint that covers it
