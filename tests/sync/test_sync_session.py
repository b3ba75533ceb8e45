"""The CONNACK grant: defaults, what counts as a cut, and the limits the link derives from it.

Pure rules first (no broker), then one loopback mosquitto configured with
``max_inflight_messages`` / ``max_keepalive`` / ``max_packet_size`` that the link must adopt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mqtt_harness import Broker, back_office, dedupe_seqs, device_key, free_port, sample_birth

from agent.sync.link import MqttLink
from agent.sync.outbox import Outbox
from agent.sync.session import (
    SessionRequest,
    client_inflight_limit,
    fits,
    inflight_window,
    publish_packet_size,
    read_grant,
    shortfalls,
)

ASKED = SessionRequest(session_expiry_s=86400, keepalive_s=30, max_inflight=20)


def test_an_empty_connack_means_the_protocol_defaults_and_no_cuts() -> None:
    """No properties: we got what we asked, Receive Maximum 65535, QoS 2, retain, no limits."""
    grant = read_grant({}, request=ASKED, session_present=False)
    assert (grant.session_expiry_s, grant.keepalive_s) == (86400, 30)
    assert (grant.receive_maximum, grant.maximum_qos, grant.retain_available) == (65535, 2, True)
    assert grant.maximum_packet_size is None and grant.shared_subscriptions
    assert shortfalls(ASKED, grant) == []
    assert inflight_window(20, grant) == 20 and grant.qos(1) == 1


def test_ejabberd_style_session_expiry_cut_is_named_with_its_consequence() -> None:
    """86,400 s asked, 300 s granted: one warning that says commands will be lost."""
    grant = read_grant({"SessionExpiryInterval": 300, "SharedSubscriptionAvailable": 0},
                       request=ASKED, session_present=True)
    (problem,) = shortfalls(ASKED, grant)
    assert "86400 s to 300 s" in problem and "lost" in problem
    assert not grant.shared_subscriptions and grant.session_present
    assert grant.as_dict()["session_expiry_s"] == 300


def test_a_stingy_broker_shrinks_windows_qos_and_retain() -> None:
    """Receive Maximum 7, keep-alive 20, QoS 0, no retain: each is adopted and reported."""
    grant = read_grant({"ReceiveMaximum": 7, "ServerKeepAlive": 20, "MaximumQoS": 0,
                        "RetainAvailable": 0}, request=ASKED, session_present=False)
    assert inflight_window(20, grant) == 7
    assert client_inflight_limit(7, 32, grant) == 7  # status/acks share the broker's window
    assert grant.keepalive_s == 20 and grant.qos(1) == 0 and not grant.retain_available
    words = " | ".join(shortfalls(ASKED, grant))
    for expected in ("keep-alive set to 20 s", "receive maximum 7", "maximum QoS 0",
                     "retained messages unavailable"):
        assert expected in words


def test_malformed_property_values_fall_back_to_defaults() -> None:
    """A broker sending nonsense types cannot make the link crash or choose zero windows."""
    grant = read_grant({"ReceiveMaximum": "many", "MaximumPacketSize": 0, "MaximumQoS": True,
                        "AssignedClientIdentifier": 5}, request=ASKED, session_present=False)
    assert grant.receive_maximum == 65535 and grant.maximum_packet_size is None
    assert grant.maximum_qos == 2 and grant.assigned_client_id is None


def test_publish_packet_size_counts_header_topic_id_properties_and_payload() -> None:
    """A 10-byte payload on topic 'a/b' at QoS 1: 1+1 header, 2+3 topic, 2 id, 1 props, 10."""
    assert publish_packet_size("a/b", 10, 1) == 20
    assert publish_packet_size("a/b", 10, 0) == 18
    assert publish_packet_size("t", 200, 1) == 1 + 2 + 2 + 1 + 2 + 1 + 200  # 2-byte length


@given(st.integers(0, 3_000_000), st.integers(0, 1), st.integers(20, 4_000_000))
def test_fits_is_exactly_the_size_against_the_limit(payload: int, qos: int, limit: int) -> None:
    """A row fits iff its whole packet is at most the broker's Maximum Packet Size."""
    grant = read_grant({"MaximumPacketSize": limit}, request=ASKED, session_present=False)
    size = publish_packet_size("bodycam/v1/cam-a/segment", payload, qos)
    assert fits(grant, "bodycam/v1/cam-a/segment", payload, qos) == (size <= limit)
    assert size > payload


# --- the link adopts what mosquitto grants ------------------------------------------------------
@pytest.fixture
def stingy_broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto granting Receive Maximum 3, keep-alive 12 s and 2,000-byte packets at most."""
    work = tmp_path / "stingy"
    work.mkdir()
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                    "max_inflight_messages 3\nmax_keepalive 12\nmax_packet_size 2000\n"
                    f"log_dest file {work / 'mosquitto.log'}\n")
    broker = Broker(conf, "127.0.0.1", port, work)
    broker.start()
    yield broker
    broker.kill()


@pytest.mark.timeout(60)
def test_the_link_adopts_the_brokers_limits_and_holds_an_oversized_row(
        stingy_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Window 3, keep-alive 12 s; a 5 kB event is held and reported once, the rest delivered."""
    caplog.set_level(logging.INFO, logger="agent.sync")
    box = Outbox(tmp_path / "o.db")
    faults: list[tuple[int, str]] = []
    link = MqttLink(device_id="cam-a", outbox=box, url=f"mqtt://127.0.0.1:{stingy_broker.port}",
                    tls=None, allow_plaintext=True, on_command=print,
                    birth=sample_birth(device_key()), keepalive=30, max_inflight=20,
                    reconnect=(0.1, 0.5), on_delivery_fault=lambda s, w: faults.append((s, w)))
    with back_office("127.0.0.1", stingy_broker.port) as bo:
        bo.wait_subscribed()
        small = [link.enqueue_event({"type": "warning", "n": n}) for n in range(12)]
        big = link.enqueue_event({"type": "warning", "blob": "x" * 5000})
        small.append(link.enqueue_event({"type": "warning", "n": 99}))
        link.start()
        try:
            bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == len(small))
            deadline = time.monotonic() + 10
            while link.stats().outbox_depth != 1:
                assert time.monotonic() < deadline, link.stats()
                time.sleep(0.05)
            stats = link.stats()
            assert link._client is not None and link._client.keepalive == 12
            assert link._client.max_inflight_messages == 3  # paho's cap: Receive Maximum
        finally:
            link.stop()
    assert dedupe_seqs(bo.messages, "/event") == small  # order kept around the held row
    assert [m.seq for m in box.pending()] == [big]  # held, not lost
    assert len(faults) == 1 and faults[0][0] == big and "Maximum Packet Size 2000" in faults[0][1]
    assert stats.connected and stats.broker is not None
    assert (stats.broker.receive_maximum, stats.broker.keepalive_s,
            stats.broker.maximum_packet_size) == (3, 12, 2000)
    assert link._feeder._max_inflight == 3
    granted = [r.getMessage() for r in caplog.records if "broker granted" in r.getMessage()]
    assert len(granted) == 1 and "receive_maximum=3" in granted[0]
    assert any("receive maximum 3 is below max_inflight 20" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.timeout(90)
def test_status_and_telemetry_report_the_grant(stingy_broker: Broker, tmp_path: Path) -> None:
    """A running agent shows the granted limits in `ctl status` and in schema-valid telemetry."""
    from mqtt_harness import assert_valid

    from agent.command.ctl_server import ctl_request
    from agent.testing import running_agent, small_config, wait_for

    cfg = small_config(device={"id": "BC-GRANT-1"},
                       mqtt={"enabled": True, "url": f"mqtt://127.0.0.1:{stingy_broker.port}",
                             "allow_plaintext": True, "telemetry_s": 1})
    data = tmp_path / "data"
    with back_office("127.0.0.1", stingy_broker.port) as bo, running_agent(cfg, data):
        bo.wait_for(lambda ms: any(m.topic.endswith("/telemetry") and "broker" in m.json()
                                   for m in ms))
        wait_for(lambda: "mqtt_broker" in ctl_request(data, "status", {}, timeout=5)["result"])
        status = ctl_request(data, "status", {}, timeout=5)["result"]
    telemetry = [m.json() for m in bo.messages if m.topic.endswith("/telemetry")]
    assert assert_valid(bo.messages) > 0
    broker = next(t["broker"] for t in telemetry if "broker" in t)
    assert (broker["receive_maximum"], broker["keepalive_s"], broker["maximum_packet_size"]) == (
        3, 12, 2000)
    assert status["mqtt_broker"] == broker  # one connection, one grant, both places
