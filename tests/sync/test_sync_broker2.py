"""The device link against a second MQTT v5 implementation: ejabberd's mod_mqtt.

Opt-in (``-m broker2``; ``scripts/test-broker2.sh``): needs Debian's ``ejabberd`` package. It
shows that nothing in the link is mosquitto-specific: certificate identity with the client id
= device id, commands and acks, the Last Will, manifests exactly once (after the back office's
seq dedupe) and in order across a broker SIGKILL, and that the session expiry ejabberd cuts
(86,400 s asked, 300 s granted) is reported.
"""

from __future__ import annotations

import json
import logging
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker2_harness import Ejabberd, ejabberd_available
from mqtt_harness import (
    BackOffice,
    dedupe_seqs,
    device_key,
    free_port,
    is_ack,
    sample_birth,
    sample_envelope,
)
from paho.mqtt.enums import CallbackAPIVersion

from agent.sync.command_messages import Command, iso_utc
from agent.sync.link import MqttLink, TlsSettings
from agent.sync.outbox import Outbox

pytestmark = [pytest.mark.broker2, pytest.mark.timeout(120)]
HARNESS = Path(__file__).with_name("link_harness.py")


@pytest.fixture
def ejabberd(tmp_path: Path, test_ca: Path) -> Iterator[Ejabberd]:
    if not ejabberd_available():
        pytest.skip("ejabberd not installed (apt-get install ejabberd)")
    broker = Ejabberd(tmp_path / "ejabberd", free_port()).configure(test_ca)
    broker.start()
    yield broker
    broker.kill()


def office(broker: Ejabberd, ca: Path) -> BackOffice:
    """mod_mqtt takes the identity from the client id: it must equal the certificate CN."""
    return BackOffice(broker.host, broker.port, client_id="backoffice",
                      tls=(ca / "ca.crt", ca / "backoffice.crt", ca / "backoffice.key"))


def make_link(broker: Ejabberd, ca: Path, box: Outbox,
              on_command: Callable[[Command], None] = print) -> MqttLink:
    return MqttLink(device_id="cam-a", outbox=box, url=f"mqtts://localhost:{broker.port}",
                    tls=TlsSettings(ca / "ca.crt", ca / "cam-a.crt", ca / "cam-a.key"),
                    on_command=on_command, birth=sample_birth(KEY), reconnect=(0.1, 0.5))


def wait(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


KEY = device_key()


def test_identity_commands_acks_and_the_granted_session_expiry(
        ejabberd: Ejabberd, test_ca: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Certificate auth as cam-a, a command round trip, and the 300 s expiry reported."""
    caplog.set_level(logging.INFO, logger="agent.sync")
    link = make_link(ejabberd, test_ca, Outbox(tmp_path / "o.db"),
                     on_command=lambda cmd: cmd.succeed({"size": 1}))
    bo = office(ejabberd, test_ca).connect()
    try:
        bo.wait_subscribed()
        link.start()
        wait(lambda: link.stats().commands_ready)
        doc = {"id": "cp-1", "issued_at": iso_utc(datetime.now(UTC))}
        bo.publish("bodycam/v1/cam-a/cmd/checkpoint", json.dumps(doc))
        bo.wait_for(lambda ms: [m.json()["status"] for m in ms if is_ack(m.topic)]
                    == ["accepted", "succeeded"])
        grant = link.stats().broker
    finally:
        link.stop()
        bo.close()
    assert grant is not None
    assert (grant.session_expiry_s, grant.shared_subscriptions) == (300, False)
    assert any("session expiry cut from 86400 s to 300 s" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    assert connack_reason(ejabberd, test_ca, client_id="bodycam-cam-a") == "Not authorized"
    assert connack_reason(ejabberd, test_ca, client_id="cam-a") == "Success"


def connack_reason(broker: Ejabberd, ca: Path, *, client_id: str) -> str:
    """Connect once with cam-a's certificate and the given client id; the CONNACK's verdict."""
    got: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(ca / "ca.crt"), certfile=str(ca / "cam-a.crt"),
                   keyfile=str(ca / "cam-a.key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.on_connect = lambda _c, _u, _f, reason, _p: got.append(str(reason))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        wait(lambda: bool(got), timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_manifests_exactly_once_in_order_across_a_broker_sigkill(
        ejabberd: Ejabberd, test_ca: Path, tmp_path: Path) -> None:
    """Manifests queued while the broker is dead arrive once each, in order, after its restart.

    Two ejabberd properties shape this test (both measured here, see config/mosquitto/README):
    sessions and subscriptions live in RAM, so after a restart the back office must subscribe
    again before the device delivers (a PUBACK 0x10 "no matching subscribers" counts as
    delivered); and messages ejabberd has acknowledged but not yet forwarded die with it. So
    the broker is killed with nothing in flight, and the device link restarts (as a unit
    rebooting behind the broker would) only once the back office is subscribed again.
    """
    box = Outbox(tmp_path / "o.db")
    bo = office(ejabberd, test_ca).connect()
    try:
        bo.wait_subscribed()
        sent = [make_link_enqueue(box, n) for n in range(10)]
        link = make_link(ejabberd, test_ca, box)
        link.start()
        bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/segment")) == 10)
        wait(lambda: box.depth() == 0)
        ejabberd.kill()
        wait(lambda: not link.stats().connected)
        sent += [make_link_enqueue(box, n) for n in range(10, 40)]  # while the broker is dead
        wait(lambda: link.stats().session >= 3)  # the link kept retrying and kept the rows
        assert box.depth() == 30
        link.stop()
        ejabberd.start()
        bo.wait_subscribed(timeout=30)
        link = make_link(ejabberd, test_ca, box)
        link.start()
        bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/segment")) == 40, timeout=30)
        wait(lambda: box.depth() == 0)
        link.stop()
    finally:
        bo.close()
    assert dedupe_seqs(bo.messages, "/segment") == sent
    device_seqs = [m.json()["manifest"]["device_seq"] for m in bo.messages
                   if m.topic.endswith("/segment")]
    assert device_seqs == list(range(40))  # in order, and not even a duplicate to dedupe


def make_link_enqueue(box: Outbox, n: int) -> int:
    """Queue manifest ``n`` the way the link does, without a running link."""
    from agent.sync.topics import Topics, encode_json

    envelope = sample_envelope(KEY, "cam-a", n)
    return box.enqueue(Topics("cam-a").segment,
                       lambda seq: encode_json({**envelope, "device_id": "cam-a", "seq": seq,
                                                "outbox_epoch": box.epoch,
                                                "queued_at": iso_utc(datetime.now(UTC))}),
                       qos=1, kind="segment")


def test_last_will_when_the_device_process_is_killed(ejabberd: Ejabberd, test_ca: Path,
                                                     tmp_path: Path) -> None:
    """SIGKILL of a connected device: ejabberd publishes its retained offline Will."""
    bo = office(ejabberd, test_ca).connect()
    proc = subprocess.Popen(
        [sys.executable, str(HARNESS), str(tmp_path / "o.db"),
         f"mqtts://localhost:{ejabberd.port}", "cam-a", "0", str(test_ca / "ca.crt"),
         str(test_ca / "cam-a.crt"), str(test_ca / "cam-a.key")],
        stdout=subprocess.PIPE, text=True)
    try:
        bo.wait_subscribed()
        assert proc.stdout is not None
        for line in proc.stdout:
            if "connected=True" in line:
                break
        bo.wait_for(lambda ms: any(m.topic.endswith("/status") and m.json()["state"] == "online"
                                   for m in ms))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        bo.wait_for(lambda ms: any(m.topic.endswith("/status") and m.json()["state"] == "offline"
                                   for m in ms))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        bo.close()
    states = [m.json() for m in bo.on("/status")]
    assert [s["state"] for s in states] == ["online", "offline"]
    assert states[1]["cause"] == "connection_lost"
    assert states[1]["session"] == states[0]["session"]
