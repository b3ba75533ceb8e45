"""Who may write what on the shipped broker ACL, with real per-device certificates.

A certificate copied off a unit's SD card must not be able to command any unit (its own
included): only back-office identities write ``cmd/``. Each publish here is QoS 1 over MQTT v5,
so the broker's verdict is the PUBACK reason code (0x87 = not authorized), and a back-office
subscriber on ``bodycam/v1/#`` shows that nothing refused was ever delivered.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_harness import Broker, back_office, device_key, is_ack, sample_birth
from paho.mqtt.enums import CallbackAPIVersion

from agent.sync.command_messages import Command, iso_utc
from agent.sync.link import MqttLink, TlsSettings
from agent.sync.outbox import Outbox

pytestmark = pytest.mark.timeout(60)

NOT_AUTHORIZED = 0x87


class Identity:
    """A raw MQTT v5 client holding one certificate; ``publish`` returns the PUBACK code."""

    def __init__(self, ca: Path, who: str, port: int) -> None:
        self._acks: dict[int, int] = {}
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{who}-probe",
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(ca / "ca.crt"), certfile=str(ca / f"{who}.crt"),
                            keyfile=str(ca / f"{who}.key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_publish = self._on_publish
        self.client.connect("localhost", port)
        self.client.loop_start()

    def _on_publish(self, _c: object, _u: object, mid: int, reason: object, _p: object) -> None:
        with self._cond:
            self._acks[mid] = int(getattr(reason, "value", 0))
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self._acks, timeout=10), topic
            return self._acks.pop(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bo_tls(ca: Path) -> tuple[Path, Path, Path]:
    return (ca / "ca.crt", ca / "backoffice.crt", ca / "backoffice.key")


def test_devices_write_only_their_own_non_command_topics(tls_broker: Broker,
                                                        test_ca: Path) -> None:
    """cam-a: own telemetry/acks accepted; own and cam-b's cmd/, cam-b's telemetry refused."""
    cam_a = Identity(test_ca, "cam-a", tls_broker.port)
    try:
        with back_office("localhost", tls_broker.port, tls=bo_tls(test_ca)) as bo:
            bo.wait_subscribed()
            verdicts = {
                topic: cam_a.publish(topic)
                for topic in (
                    "bodycam/v1/cam-a/cmd/stop",
                    "bodycam/v1/cam-a/cmd/config_set",
                    "bodycam/v1/cam-b/cmd/stop",
                    "bodycam/v1/cam-b/telemetry",
                    "bodycam/v1/cam-b/cmd/stop/ack",
                    "bodycam/v1/cam-a/telemetry",
                    "bodycam/v1/cam-a/cmd/stop/ack",
                )
            }
            # The two accepted ones reach the subscriber; wait for them, then nothing else.
            bo.wait_for(lambda ms: len(ms) >= 2)
            time.sleep(0.3)  # a refused message delivered late would show up here
            seen = sorted(m.topic for m in bo.messages)
    finally:
        cam_a.close()
    refused = {t for t, code in verdicts.items() if code == NOT_AUTHORIZED}
    accepted = {t for t, code in verdicts.items() if code < 0x80}
    assert refused == {"bodycam/v1/cam-a/cmd/stop", "bodycam/v1/cam-a/cmd/config_set",
                       "bodycam/v1/cam-b/cmd/stop", "bodycam/v1/cam-b/telemetry",
                       "bodycam/v1/cam-b/cmd/stop/ack"}
    assert accepted == {"bodycam/v1/cam-a/telemetry", "bodycam/v1/cam-a/cmd/stop/ack"}
    assert seen == ["bodycam/v1/cam-a/cmd/stop/ack", "bodycam/v1/cam-a/telemetry"]


def test_back_office_commands_but_cannot_forge_device_topics(tls_broker: Broker,
                                                             test_ca: Path) -> None:
    """backoffice: cmd/<name> accepted; a device's telemetry or a command ack refused."""
    bo = Identity(test_ca, "backoffice", tls_broker.port)
    try:
        assert bo.publish("bodycam/v1/cam-a/cmd/stop") < 0x80
        assert bo.publish("bodycam/v1/cam-b/cmd/config_set") < 0x80
        assert bo.publish("bodycam/v1/cam-a/telemetry") == NOT_AUTHORIZED
        assert bo.publish("bodycam/v1/cam-a/cmd/stop/ack") == NOT_AUTHORIZED
        assert bo.publish("bodycam/v1/cam-a/segment") == NOT_AUTHORIZED
    finally:
        bo.close()


def test_only_the_back_office_writes_alarms(tls_broker: Broker, test_ca: Path) -> None:
    """A station (back-office identity) publishes a device's alarm; no device may write or
    clear one, not even about itself; a shared subscription to checkpoints is granted."""
    bo = Identity(test_ca, "backoffice", tls_broker.port)
    cam_a = Identity(test_ca, "cam-a", tls_broker.port)
    try:
        assert bo.publish("bodycam/v1/cam-a/alarm") < 0x80
        assert cam_a.publish("bodycam/v1/cam-a/alarm") == NOT_AUTHORIZED
        assert cam_a.publish("bodycam/v1/cam-b/alarm") == NOT_AUTHORIZED
        granted = threading.Event()
        codes: list[int] = []

        def on_subscribe(_c: object, _u: object, _mid: int, reasons: list[object],
                         _p: object) -> None:
            codes.extend(int(getattr(r, "value", 0x80)) for r in reasons)
            granted.set()

        bo.client.on_subscribe = on_subscribe
        bo.client.subscribe("$share/stations/bodycam/v1/+/checkpoint", qos=1)
        assert granted.wait(10)
        assert codes == [1]
    finally:
        bo.close()
        cam_a.close()


def test_a_command_round_trip_passes_the_shipped_acl(tls_broker: Broker, test_ca: Path,
                                                     tmp_path: Path) -> None:
    """The device link subscribes to its commands and its acks get through the ACL."""
    key = device_key()
    got: list[Command] = []

    def on_command(cmd: Command) -> None:
        got.append(cmd)
        cmd.succeed({"done": True})

    link = MqttLink(device_id="cam-a", outbox=Outbox(tmp_path / "o.db"),
                    url=f"mqtts://localhost:{tls_broker.port}",
                    tls=TlsSettings(test_ca / "ca.crt", test_ca / "cam-a.crt",
                                    test_ca / "cam-a.key"),
                    on_command=on_command, birth=sample_birth(key), reconnect=(0.1, 0.5))
    with back_office("localhost", tls_broker.port, tls=bo_tls(test_ca)) as bo:
        link.start()
        try:
            deadline = time.monotonic() + 10
            while not link.stats().commands_ready:
                assert time.monotonic() < deadline, "command subscription never came up"
                time.sleep(0.05)
            doc = {"id": "cp-1", "issued_at": iso_utc(datetime.now(UTC))}
            bo.publish("bodycam/v1/cam-a/cmd/checkpoint", json.dumps(doc))
            bo.wait_for(lambda ms: any(is_ack(m.topic) and m.json().get("status") == "succeeded"
                                       for m in ms))
        finally:
            link.stop()
    assert [c.name for c in got] == ["checkpoint"]
    assert link.stats().faults == 0
