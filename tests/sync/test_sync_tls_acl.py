"""The shipped broker config (TLS, client certificates, ACL) with real certificates."""

from __future__ import annotations

import signal
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_harness import (
    Broker,
    assert_valid,
    back_office,
    dedupe_seqs,
    device_key,
    sample_birth,
    sample_envelope,
)
from paho.mqtt.enums import CallbackAPIVersion

from agent.sync.link import MqttLink, TlsSettings
from agent.sync.outbox import Outbox

pytestmark = pytest.mark.timeout(60)


def tls_for(ca: Path, who: str) -> TlsSettings:
    return TlsSettings(ca / "ca.crt", ca / f"{who}.crt", ca / f"{who}.key")


def wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def bo_tls(ca: Path) -> tuple[Path, Path, Path]:
    return (ca / "ca.crt", ca / "backoffice.crt", ca / "backoffice.key")


def test_device_delivers_under_its_own_id_over_mutual_tls(
    tls_broker: Broker, test_ca: Path, tmp_path: Path
) -> None:
    """cam-a with its own certificate: everything arrives and validates."""
    key = device_key()
    box = Outbox(tmp_path / "o.db")
    link = MqttLink(device_id="cam-a", outbox=box, url=f"mqtts://localhost:{tls_broker.port}",
                    tls=tls_for(test_ca, "cam-a"), on_command=print, birth=sample_birth(key),
                    reconnect=(0.1, 0.5))
    with back_office("localhost", tls_broker.port, tls=bo_tls(test_ca)) as bo:
        seqs = [link.enqueue_segment(sample_envelope(key, "cam-a", n)) for n in range(5)]
        link.start()
        try:
            bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/segment")) == 5)
            wait(lambda: box.depth() == 0)
        finally:
            link.stop()
        assert dedupe_seqs(bo.messages, "/segment") == seqs
        assert link.stats().faults == 0
        assert assert_valid(bo.messages) >= 7


def test_acl_rejection_is_noticed_and_the_rows_are_kept(
    tls_broker: Broker, test_ca: Path, tmp_path: Path
) -> None:
    """cam-a's certificate posing as cam-b: PUBACK 0x87, a delivery fault, nothing deleted."""
    key = device_key()
    box = Outbox(tmp_path / "o.db")
    faults: list[tuple[int, str]] = []
    link = MqttLink(device_id="cam-b", outbox=box, url=f"mqtts://localhost:{tls_broker.port}",
                    tls=tls_for(test_ca, "cam-a"), on_command=print, birth=sample_birth(key),
                    on_delivery_fault=lambda seq, why: faults.append((seq, why)),
                    reconnect=(0.1, 0.5))
    with back_office("localhost", tls_broker.port, tls=bo_tls(test_ca)) as bo:
        seqs = [link.enqueue_event({"type": "warning", "n": n}) for n in range(3)]
        link.start()
        try:
            wait(lambda: len(faults) == 3)
            time.sleep(1.0)  # a spinning retry would add faults here
            stats = link.stats()
        finally:
            link.stop()
        assert sorted(seq for seq, _ in faults) == seqs
        assert all(why.startswith("0x87") for _, why in faults)
        assert (stats.faults, stats.delivered, stats.outbox_depth) == (3, 0, 3)
        assert [m.seq for m in box.pending()] == seqs
        assert not [m for m in bo.messages if m.topic.startswith("bodycam/v1/cam-b/")]


def test_a_device_cannot_read_another_devices_commands(
    tls_broker: Broker, test_ca: Path
) -> None:
    """cam-a subscribing to cam-b's command topic receives nothing the back office sends."""
    got: list[str] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="spy", protocol=mqtt.MQTTv5)
    spy.tls_set(ca_certs=str(test_ca / "ca.crt"), certfile=str(test_ca / "cam-a.crt"),
                keyfile=str(test_ca / "cam-a.key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    spy.on_message = lambda _c, _u, m: got.append(m.topic)
    spy.connect("localhost", tls_broker.port)
    spy.loop_start()
    try:
        spy.subscribe("bodycam/v1/#", qos=1)[1]
        with back_office("localhost", tls_broker.port, tls=bo_tls(test_ca)) as bo:
            time.sleep(0.3)
            bo.publish("bodycam/v1/cam-b/cmd/stop", b"{}")
            bo.publish("bodycam/v1/cam-a/cmd/stop", b"{}")
            wait(lambda: len(got) >= 1)
            time.sleep(0.3)
    finally:
        spy.disconnect()
        spy.loop_stop()
    assert got == ["bodycam/v1/cam-a/cmd/stop"]


def test_plaintext_client_without_certificate_is_refused(tls_broker: Broker) -> None:
    """The listener does not talk MQTT to a client that brings no certificate."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set(cert_reqs=ssl.CERT_NONE, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.tls_insecure_set(True)
    with pytest.raises((ssl.SSLError, OSError)):
        client.connect("localhost", tls_broker.port)
        client.loop_read()
        client.loop_read()
        if not client.is_connected():
            raise OSError("not connected")


def test_rejected_rows_are_delivered_once_the_acl_allows_them(
    tls_broker: Broker, test_ca: Path, tmp_path: Path
) -> None:
    """After a fault the link pauses, retries from the oldest row, and delivers when allowed."""
    key = device_key()
    box = Outbox(tmp_path / "o.db")
    faults: list[int] = []
    link = MqttLink(device_id="cam-b", outbox=box, url=f"mqtts://localhost:{tls_broker.port}",
                    tls=tls_for(test_ca, "cam-a"), on_command=print, birth=sample_birth(key),
                    on_delivery_fault=lambda seq, _why: faults.append(seq),
                    reconnect=(0.1, 0.5), fault_retry=(0.5, 1.0))
    with back_office("localhost", tls_broker.port, tls=bo_tls(test_ca)) as bo:
        seqs = [link.enqueue_event({"type": "warning", "n": n}) for n in range(3)]
        link.start()
        try:
            wait(lambda: len(faults) >= 3)
            acl = tls_broker.workdir / "bodycam.acl"
            acl.write_text(acl.read_text() + "\nuser cam-a\ntopic write bodycam/v1/cam-b/#\n")
            assert tls_broker.proc is not None
            tls_broker.proc.send_signal(signal.SIGHUP)  # mosquitto reloads its ACL
            bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 3)
            wait(lambda: box.depth() == 0)
        finally:
            link.stop()
        assert dedupe_seqs(bo.messages, "/event") == seqs
        assert len(faults) < 30  # paused between retries, not spinning
