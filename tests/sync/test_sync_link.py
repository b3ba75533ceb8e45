"""MqttLink against a real mosquitto on loopback (plain TCP, opted in)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mqtt_harness import (
    BackOffice,
    Broker,
    assert_valid,
    back_office,
    dedupe_seqs,
    device_key,
    is_ack,
    sample_birth,
    sample_checkpoint,
    sample_envelope,
)

from agent.sync.command_messages import Command
from agent.sync.link import MqttLink, TlsSettings
from agent.sync.outbox import Outbox
from hw.errors import ConfigError, SyncError

pytestmark = pytest.mark.timeout(90)
DEV = "cam-a"


class Device:
    """An Outbox + MqttLink pair wired the way the agent wires them."""

    def __init__(self, broker: Broker, db: Path, **kw: Any) -> None:
        self.key = device_key()
        self.outbox = Outbox(db)
        self.commands: list[Command] = []
        self.faults: list[tuple[int, str]] = []
        self.link = MqttLink(
            device_id=kw.pop("device_id", DEV), outbox=self.outbox,
            url=f"mqtt://{broker.host}:{broker.port}", tls=None, allow_plaintext=True,
            on_command=kw.pop("on_command", self.commands.append),
            on_delivery_fault=lambda seq, why: self.faults.append((seq, why)),
            birth=sample_birth(self.key), keepalive=kw.pop("keepalive", 10),
            reconnect=(0.1, 0.5), **kw)

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.link.stats().commands_ready:
            assert time.monotonic() < deadline, "link did not connect"
            time.sleep(0.05)


@pytest.fixture
def bo(plain_broker: Broker) -> Iterator[BackOffice]:
    with back_office(plain_broker.host, plain_broker.port) as office:
        yield office


@pytest.fixture
def device(plain_broker: Broker, tmp_path: Path) -> Iterator[Device]:
    dev = Device(plain_broker, tmp_path / "outbox.db")
    yield dev
    dev.link.stop()


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def test_every_topic_is_published_and_matches_its_schema(device: Device, bo: BackOffice) -> None:
    """status, birth, state, telemetry, segment, checkpoint, event and acks all validate."""
    d = device
    d.link.enqueue_segment(sample_envelope(d.key, DEV, 0))
    d.link.enqueue_checkpoint(sample_checkpoint(d.key, DEV, 1), None)
    d.link.enqueue_checkpoint(sample_checkpoint(d.key, DEV, 2),
                              {"old_size": 1, "new_size": 2, "hashes": ["AAAA"]})
    d.link.enqueue_event({"type": "bookmark", "label": "door"})
    d.link.publish_state({"recorder": "idle"})
    d.link.start()
    d.wait_connected()
    d.link.publish_telemetry({"recording": False, "battery_pct": 80, "storage_recording_s": 7200})
    bo.publish(f"bodycam/v1/{DEV}/cmd/bookmark",
               f'{{"id":"b1","issued_at":"{now_iso()}","args":{{"label":"x"}}}}')
    bo.wait_for(lambda ms: sum(is_ack(m.topic) for m in ms) >= 1
                and len(dedupe_seqs(ms, "/checkpoint")) == 2)
    d.commands[0].succeed({"bookmark": 3})
    bo.wait_for(lambda ms: sum(is_ack(m.topic) for m in ms) >= 2
                and any(m.topic.endswith("/telemetry") for m in ms)
                and any(m.topic.endswith("/state") for m in ms))
    suffixes = {m.topic.rsplit("/", 1)[1] for m in bo.messages}
    assert {"status", "birth", "state", "telemetry", "segment", "checkpoint", "event",
            "ack"} <= suffixes
    assert assert_valid(bo.messages) >= 10
    seg = bo.on("/segment")[0].json()
    assert seg["manifest"]["device_seq"] == 0 and seg["seq"] == 1
    assert seg["outbox_epoch"] == d.outbox.epoch
    acks = [m.json() for m in bo.on("/bookmark/ack")]
    assert [a["status"] for a in acks] == ["accepted", "succeeded"]
    assert acks[1]["result"] == {"bookmark": 3}


def test_backlog_drains_in_order_and_the_outbox_empties(device: Device, bo: BackOffice) -> None:
    """A backlog larger than the in-flight window arrives in seq order; rows then leave."""
    seqs = [device.link.enqueue_event({"type": "warning", "n": i}) for i in range(300)]
    device.link.start()
    bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 300, timeout=30)
    assert dedupe_seqs(bo.messages, "/event") == seqs
    deadline = time.monotonic() + 5
    while device.outbox.depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = device.link.stats()
    assert (stats.outbox_depth, stats.delivered, stats.faults) == (0, 300, 0)


def test_broker_crash_loses_nothing_and_status_sessions_grow(
    plain_broker: Broker, device: Device, bo: BackOffice
) -> None:
    """Enqueue across a SIGKILLed broker: every seq arrives once (after dedupe), in order.
    The broker is killed once the back office has the first 20: what a broker acknowledged
    and then lost unsent dies with it (mosquitto here keeps no persistence) -- the device's
    part is everything it queued while the broker was gone."""
    device.link.start()
    device.wait_connected()
    sent = [device.link.enqueue_event({"type": "warning", "n": i}) for i in range(20)]
    bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 20, timeout=30)
    plain_broker.kill()
    sent += [device.link.enqueue_event({"type": "warning", "n": i}) for i in range(20, 60)]
    time.sleep(0.5)
    plain_broker.start()
    sent += [device.link.enqueue_event({"type": "warning", "n": i}) for i in range(60, 80)]
    bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 80, timeout=30)
    assert dedupe_seqs(bo.messages, "/event") == sent
    online = [m.json() for m in bo.on("/status") if m.json()["state"] == "online"]
    assert len(online) >= 2
    assert online[-1]["session"] > online[0]["session"]
    assert assert_valid(bo.messages) > 80


def test_telemetry_is_coalesced_while_offline(plain_broker: Broker, device: Device,
                                              bo: BackOffice) -> None:
    """Telemetry is not queued: after an outage only the newest report is sent."""
    device.link.start()
    device.wait_connected()
    plain_broker.kill()
    for pct in (90, 80, 70, 60):
        device.link.publish_telemetry({"battery_pct": pct})
    plain_broker.start()
    bo.wait_for(lambda ms: any(m.topic.endswith("/telemetry") for m in ms))
    device.link.enqueue_event({"type": "marker"})  # a later message: telemetry went before it
    bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 1)
    assert [m.json()["battery_pct"] for m in bo.on("/telemetry")] == [60]


def test_clean_stop_leaves_a_retained_offline_status(plain_broker: Broker, device: Device) -> None:
    """stop() publishes offline/shutdown itself; a late subscriber sees it retained."""
    device.link.start()
    device.wait_connected()
    session = device.link.stats().session
    device.link.stop()
    with back_office(plain_broker.host, plain_broker.port, topic=f"bodycam/v1/{DEV}/status") as late:
        late.wait_for(lambda ms: len(ms) >= 1)
        status = late.messages[0]
    assert status.retain
    assert status.json() == {**status.json(), "state": "offline", "cause": "shutdown",
                             "session": session}


def test_fuzzed_commands_are_all_rejected_and_the_link_survives(
    device: Device, bo: BackOffice
) -> None:
    """Garbage on cmd/<name> gets a rejected ack each; a valid command still works after."""
    device.link.start()
    device.wait_connected()
    garbage: list[tuple[str, bytes]] = [
        ("start", b"\xff\xfe\xfd"), ("start", b"{"), ("start", b"null"), ("start", b"[]"),
        ("stop", b'{"id": 12}'), ("bookmark", b"x" * 20_000), ("launch", b'{"id":"z"}'),
        ("bookmark", f'{{"id":"a","issued_at":"{now_iso()}","args":{{"label":7}}}}'.encode()),
        ("ack", f'{{"id":"b","issued_at":"{now_iso()}","args":{{"device_seq":"all"}}}}'.encode()),
        ("start", b'{"id":"c","issued_at":"2001-01-01T00:00:00Z"}'),
        ("config_set", f'{{"id":"d","issued_at":"{now_iso()}","args":{{"key":"x","value":1}}}}'
         .encode()),
        ("start", b""),
    ]
    for name, payload in garbage:
        bo.publish(f"bodycam/v1/{DEV}/cmd/{name}", payload)
    bo.wait_for(lambda ms: sum(is_ack(m.topic) for m in ms) == len(garbage))
    acks = [m.json() for m in bo.messages if is_ack(m.topic)]
    assert all(a["status"] == "rejected" and a["reason"] for a in acks)
    assert not device.commands
    bo.publish(f"bodycam/v1/{DEV}/cmd/stop",
               f'{{"id":"ok1","issuer":"dispatch:1","issued_at":"{now_iso()}"}}')
    bo.wait_for(lambda ms: any(m.topic.endswith("/stop/ack") and m.json()["id"] == "ok1"
                               for m in ms))
    assert [c.id for c in device.commands] == ["ok1"]
    bo.publish(f"bodycam/v1/{DEV}/cmd/stop",
               f'{{"id":"ok1","issuer":"dispatch:1","issued_at":"{now_iso()}"}}')
    bo.wait_for(lambda ms: any("duplicate" in (m.json().get("reason") or "")
                               for m in ms if is_ack(m.topic)))
    assert assert_valid(bo.messages) >= len(garbage) + 2


def test_on_command_exceptions_become_failed_acks(plain_broker: Broker, tmp_path: Path,
                                                  bo: BackOffice) -> None:
    """A controller callback that raises yields a failed ack, not a dead link."""
    def explode(_command: Command) -> None:
        raise RuntimeError("boom")

    dev = Device(plain_broker, tmp_path / "o.db", on_command=explode)
    dev.link.start()
    try:
        dev.wait_connected()
        bo.publish(f"bodycam/v1/{DEV}/cmd/start",
                   f'{{"id":"s1","issuer":"dispatch:1","issued_at":"{now_iso()}"}}')
        bo.wait_for(lambda ms: sum(m.topic.endswith("/start/ack") for m in ms) == 2)
        assert [m.json()["status"] for m in bo.on("/start/ack")] == ["accepted", "failed"]
        assert dev.link.stats().connected
    finally:
        dev.link.stop()


def test_configuration_errors_name_the_problem(tmp_path: Path) -> None:
    """Plain MQTT needs an explicit opt-in; mqtts needs TLS material; bad values are refused."""
    box = Outbox(tmp_path / "o.db")
    birth = sample_birth(device_key())
    common: dict[str, Any] = {"device_id": DEV, "outbox": box, "on_command": print, "birth": birth}
    with pytest.raises(ConfigError, match="plaintext"):
        MqttLink(url="mqtt://localhost", tls=None, **common)
    with pytest.raises(ConfigError, match="TLS"):
        MqttLink(url="mqtts://localhost", tls=None, **common)
    with pytest.raises(ConfigError, match="no such file"):
        MqttLink(url="mqtts://localhost", tls=TlsSettings(tmp_path / "ca", tmp_path / "c",
                                                          tmp_path / "k"), **common)
    with pytest.raises(ConfigError, match="scheme"):
        MqttLink(url="http://localhost", tls=None, **common)
    with pytest.raises(ConfigError, match="device"):
        MqttLink(url="mqtt://x", tls=None, allow_plaintext=True,
                 **{**common, "device_id": "a/b"})
    with pytest.raises(ConfigError, match="birth"):
        MqttLink(url="mqtt://x", tls=None, allow_plaintext=True, **{**common, "birth": {}})
    link = MqttLink(url="mqtt://x", tls=None, allow_plaintext=True, **common)
    with pytest.raises(SyncError, match="cannot be sent as"):
        link.enqueue_segment(sample_envelope(device_key(), "cam-z", 0))
    with pytest.raises(SyncError, match="type"):
        link.enqueue_event({"label": "no type"})
    assert box.depth() == 0


def test_an_ack_sent_just_before_stop_still_goes_out(device: Device, bo: BackOffice) -> None:
    """The controller finishing a command and stopping right away does not lose the ack."""
    device.link.start()
    device.wait_connected()
    bo.publish(f"bodycam/v1/{DEV}/cmd/checkpoint", f'{{"id":"k1","issued_at":"{now_iso()}"}}')
    bo.wait_for(lambda ms: any(m.topic.endswith("/checkpoint/ack") for m in ms))
    device.commands[0].succeed({"size": 12})
    device.link.stop()
    bo.wait_for(lambda ms: any(m.topic.endswith("/status") and m.json()["state"] == "offline"
                               for m in ms))
    acks = [m.json()["status"] for m in bo.on("/checkpoint/ack")]
    assert acks == ["accepted", "succeeded"]
