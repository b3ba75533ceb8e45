"""The fleet link's side of a seal fails without losing a manifest or stopping anything.

The real :class:`FleetSync` (not started: its outbox is the real SQLite outbox, no broker is
needed to see what it queued) announced each seal by the real :class:`StorePort` over a real
:class:`EvidenceStore`. Faults are wrappers around its ports: the outbox refuses a manifest,
the ``published-checkpoint.json`` write fails.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import parse_config
from agent.evidence.canonical import parse_canonical
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo
from agent.evidence.store import EvidenceStore
from agent.ports import HardwareFacts
from agent.recording.store_port import ManifestContext, StorePort
from agent.sync.fleet_sync import FleetSync
from hw.errors import SyncError
from hw.still import Still

EPOCH = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9"


class FailingOnce:
    """Wraps a port: the calls numbered in ``fail_at`` raise ``error`` instead of running."""

    def __init__(self, port: Callable[..., Any], error: Exception, fail_at: set[int]) -> None:
        self.port, self.error, self.fail_at, self.calls = port, error, fail_at, 0

    def __call__(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        if self.calls in self.fail_at:
            raise self.error
        return self.port(*args, **kw)


class Unit:
    """A store, its port and the real fleet sync, as the agent wires them."""

    def __init__(self, data: Path) -> None:
        if not (data / "keys" / "device.key").exists():
            DeviceKey.generate(data / "keys" / "device.key")
        key = DeviceKey.load(data / "keys" / "device.key")
        self.store = EvidenceStore(data, key=key, recipients=[], encrypt=False,
                                   device_id="BC-0001")
        cfg = parse_config({"device": {"id": "BC-0001"},
                            "mqtt": {"enabled": True, "url": "mqtt://127.0.0.1:1",
                                     "allow_plaintext": True}})
        self.sync = FleetSync(cfg.mqtt, device=cfg.device, officer_id="", data_dir=data,
                              store=self.store, key=key,
                              hardware=HardwareFacts("sim", None, ()), submit=lambda r: None)
        ctx = ManifestContext(
            lambda us: (EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            lambda: ClockInfo("gps", 20))
        self.port = StorePort(self.store, ctx, video=None, audio=None, audio_bitrate=0,
                              on_sealed=self.sync.segment_sealed)
        self.n = 0

    def seal(self) -> dict[str, Any]:
        """Seal one still (a one-picture recording) through the port, as the recorder does."""
        self.n += 1
        return self.port.seal_still(Still(JPEG, 64, 48, self.n * 1_000_000),
                                    recording_id=uuid.UUID(int=self.n).hex, flags=[],
                                    bookmarks=[])

    def queued(self) -> list[int]:
        """device_seq of every manifest in the outbox, in queue order."""
        out = []
        for m in self.sync.outbox.pending(limit=1000):
            body = json.loads(m.payload)
            if m.kind == "segment":
                out.append(int(body["manifest"]["device_seq"]))
        return out

    def close(self) -> None:
        self.sync.outbox.close()
        self.store.close()


@pytest.fixture
def unit(tmp_path: Path) -> Any:
    u = Unit(tmp_path / "data")
    yield u
    u.close()


def test_a_manifest_the_outbox_refused_is_queued_at_the_next_seal(unit: Unit) -> None:
    """The outbox refuses the second manifest: that seal stands (logged, counted), and the
    third seal queues both -- every sealed segment reaches the outbox, in order."""
    unit.sync.link.enqueue_segment = FailingOnce(  # type: ignore[method-assign]
        unit.sync.link.enqueue_segment, SyncError("outbox is full"), {2})
    sealed = [unit.seal()["device_seq"] for _ in range(4)]
    assert unit.port.side_channel_failures == 1
    assert unit.queued() == sealed
    assert unit.store.log.size >= 4


def test_a_failing_outbox_at_start_delays_the_backlog_and_loses_nothing(tmp_path: Path) -> None:
    """Segments logged while the fleet link was down are queued at start; if the outbox fails
    then, the agent still starts and the next seal queues them."""
    data = tmp_path / "data"
    first = Unit(data)
    first.sync.link.enqueue_segment = FailingOnce(  # type: ignore[method-assign]
        first.sync.link.enqueue_segment, SyncError("outbox is full"), {1, 2})
    logged = [first.seal()["device_seq"] for _ in range(2)]
    assert first.queued() == []
    first.close()

    import agent.sync.link as link_module
    original = link_module.MqttLink.enqueue_segment
    calls = {"n": 0}

    def refuse_first(self: Any, envelope: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise SyncError("outbox is full")
        return original(self, envelope)

    link_module.MqttLink.enqueue_segment = refuse_first  # type: ignore[method-assign]
    try:
        again = Unit(data)  # FleetSync's start-up queuing of the backlog fails: no exception
    finally:
        link_module.MqttLink.enqueue_segment = original  # type: ignore[method-assign]
    again.n = 10  # a later still, in a new recording
    try:
        assert again.queued() == []
        logged.append(again.seal()["device_seq"])
        assert again.queued() == logged
    finally:
        again.close()


def test_an_unwritable_checkpoint_state_file_does_not_fail_the_seal(unit: Unit,
                                                                    tmp_path: Path) -> None:
    """published-checkpoint.json cannot be written: the manifests and checkpoints are queued
    all the same, the seal is not reported failed, and the size is kept in memory."""
    state = tmp_path / "data" / "state" / "published-checkpoint.json"
    state.unlink(missing_ok=True)
    state.mkdir(parents=True)  # a directory where the file must go: every write fails
    sealed = [unit.seal()["device_seq"] for _ in range(3)]
    assert unit.port.side_channel_failures == 0
    assert unit.queued() == sealed
    kinds = [m.kind for m in unit.sync.outbox.pending(limit=1000)]
    assert kinds.count("checkpoint") >= 3


def test_checkpoints_after_a_key_rotation_carry_the_rotation(unit: Unit) -> None:
    """A checkpoint the new key signs carries the log's key_rotation entry (its exact bytes), so
    a station's monitor that knows only the enrolled key can follow instead of alarming;
    checkpoints before any rotation carry none (the schema's field is optional)."""
    unit.seal()
    before = [json.loads(m.payload) for m in unit.sync.outbox.pending(limit=1000)
              if m.kind == "checkpoint"]
    assert before and all("rotations" not in b for b in before)
    new = unit.store.rotate_key()
    unit.seal()
    last = [json.loads(m.payload) for m in unit.sync.outbox.pending(limit=1000)
            if m.kind == "checkpoint"][-1]
    (raw,) = last["rotations"]
    entry = parse_canonical(base64.b64decode(raw))
    assert entry["type"] == "key_rotation" and entry["new_key"] == new.public_b64
