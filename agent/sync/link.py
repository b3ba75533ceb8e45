"""The device's MQTT v5 link: status, birth, telemetry, the durable outbox feed, and commands.

Threading model. One thread, ``mqtt-link``, owns the paho client and is the only thread that
ever calls into paho; it runs its own ``select()`` over the broker socket and a wake-up pipe
(paho's "external loop" API). paho therefore never needs its internal locks, and callbacks
(``on_command``, ``on_delivery_fault``) run on this thread. Every other public method may be
called from any thread: it updates fields guarded by one lock (all of them in
:mod:`agent.sync.link_shared`, with the wake-up pipe) or writes the Outbox, which has its own
lock, then writes one byte to the wake-up pipe.

A new paho client is built for every connection attempt. Whatever paho held in memory for
the previous connection is thrown away; undelivered messages are re-read from the Outbox,
which is the single source of truth. ``clean_start=False`` with a session expiry keeps the
broker-side session (command subscription and commands queued while we were away).

Delivery (see :mod:`agent.sync.feeder`). Outbox rows are handed to paho only while connected,
in seq order, at most ``max_inflight`` at a time. A row is deleted only when its PUBACK
carries a success code (< 0x80; 0x10 "no matching subscribers" is one). A failure code
(0x87 ACL, 0x97 quota, …) is a delivery fault: counted, reported (``on_delivery_fault``), the
row kept, feeding paused with backoff, so a misconfigured ACL cannot make the device spin.
Commands are handled by :mod:`agent.sync.inbox`; their acks wait in :mod:`agent.sync.acks`.

What the broker granted (CONNACK properties, :mod:`agent.sync.session`) is logged once per
connection, at warning level for anything cut below what we asked, and obeyed: the in-flight
window stays within its Receive Maximum, paho adopts its Server Keep Alive, QoS and retain
follow its Maximum QoS and Retain Available, and a row bigger than its Maximum Packet Size is
held in the outbox and reported instead of being sent (the broker would drop the connection,
and the link would loop). ``stats().broker`` carries the grant to status and telemetry.

Payloads are built by :mod:`agent.sync.link_payloads` (any thread, no state), the paho
mechanics by :mod:`agent.sync.paho_loop` (a new client, a select round; link thread only).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

import agent.sync.paho_loop as mqtt_loop
from agent.sync.acks import AckQueue
from agent.sync.command_messages import DEFAULT_CONFIG_ALLOWLIST, Command, ConfigKey
from agent.sync.feeder import HELD, OutboxFeeder
from agent.sync.inbox import CommandInbox
from agent.sync.link_payloads import (
    birth_payload,
    checked_birth,
    checkpoint_body,
    event_body,
    row_payload,
    segment_body,
    state_payload,
    status_payload,
    telemetry_payload,
    unsendable,
    will_payload,
)
from agent.sync.link_shared import LinkShared, LinkStats
from agent.sync.outbox import Outbox, OutboxMessage
from agent.sync.session import (
    BrokerGrant,
    SessionRequest,
    client_inflight_limit,
    inflight_window,
    read_grant,
    shortfalls,
)
from agent.sync.topics import Topics
from agent.sync.transport import Backoff, TlsSettings, parse_broker_url
from hw.errors import ConfigError, SyncError

__all__ = ["LinkStats", "MqttLink", "TlsSettings"]

_log = logging.getLogger(__name__)

_CONNACK_TIMEOUT_S: Final = 10.0
_SHUTDOWN_PUBACK_S: Final = 2.0


class MqttLink:
    """Keeps one device connected to the fleet broker and drains its Outbox."""

    def __init__(
        self,
        *,
        device_id: str,
        outbox: Outbox,
        url: str,
        tls: TlsSettings | None,
        on_command: Callable[[Command], None],
        birth: Mapping[str, Any],
        allow_plaintext: bool = False,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        max_inflight: int = 20,
        session_expiry_s: int = 86400,
        reconnect: tuple[float, float] = (1.0, 60.0),
        fault_retry: tuple[float, float] = (5.0, 300.0),
        on_delivery_fault: Callable[[int, str], None] | None = None,
        command_max_age_s: float = 300.0,
        command_max_skew_s: float = 30.0,
        config_allowlist: Mapping[str, ConfigKey] = DEFAULT_CONFIG_ALLOWLIST,
    ) -> None:
        self._topics = Topics(device_id)
        self._broker = parse_broker_url(url, tls=tls, allow_plaintext=allow_plaintext)
        if not 5 <= keepalive <= 3600:
            raise ConfigError(f"{keepalive}: must be 5..3600 s", key="sync.keepalive")
        if not 1 <= max_inflight <= 1000:
            raise ConfigError(f"{max_inflight}: must be 1..1000", key="sync.max_inflight")
        if not 0 <= session_expiry_s <= 0xFFFFFFFF:
            raise ConfigError(f"{session_expiry_s}: out of range", key="sync.session_expiry_s")
        self._device_id = device_id
        self._outbox = outbox
        self._tls = tls
        # The device id by default: brokers that take the identity from the client id
        # (ejabberd's mod_mqtt without a username) compare it with the certificate CN.
        self._client_id = client_id or device_id
        if password is not None and username is None:
            raise ConfigError("a password needs a username", key="mqtt.password_file")
        self._username = username
        self._password = password  # never logged, never in stats
        self._keepalive = keepalive
        self._max_inflight = max_inflight
        self._session_expiry_s = session_expiry_s
        self._request = SessionRequest(session_expiry_s, keepalive, max_inflight)
        self._backoff = Backoff(*reconnect)
        self._birth = checked_birth(birth)

        self._shared = LinkShared()  # touched by callers' threads and the link thread

        self._acks = AckQueue()  # has its own lock
        self._inbox = CommandInbox(topics=self._topics, outbox=outbox, acks=self._acks,
                                   wake=self._shared.wake, on_command=on_command,
                                   max_age_s=command_max_age_s, max_skew_s=command_max_skew_s,
                                   config_allowlist=config_allowlist)

        # Link-thread only.
        self._client: mqtt.Client | None = None
        self._feeder = OutboxFeeder(outbox, max_inflight=max_inflight,
                                    on_fault=on_delivery_fault, fault_retry_s=fault_retry)
        self._ack_mids: dict[int, int] = {}  # paho mid -> ack serial
        self._held: set[int] = set()  # outbox seqs already reported as unsendable here
        self._connack_deadline = 0.0

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the link thread (returns immediately; connection happens in the background)."""
        if self._thread is not None:
            raise SyncError("MQTT link already started")
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish ``offline`` ourselves, disconnect cleanly (no Last Will) and join the thread.

        Pending command acks are sent first. Called from a callback on the link thread itself,
        it only requests the stop (a thread cannot join itself).
        """
        self._stop.set()
        self._shared.wake()
        if self._thread is threading.current_thread():
            return
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("MQTT link thread did not stop within %.1f s", timeout)
                return
        self._shared.close_pipe()

    # --- producers (any thread) ---------------------------------------------------------------
    def enqueue_segment(self, manifest_envelope: Mapping[str, Any]) -> int:
        """Queue a signed manifest envelope (``{"manifest", "signature"}``) durably; returns seq.

        The envelope's keys go to the top level of the payload beside the delivery fields, so
        the back office verifies exactly the object the device wrote beside the segment.
        """
        body = segment_body(manifest_envelope, self._device_id)
        return self._enqueue(self._topics.segment, "segment", body)

    def enqueue_checkpoint(self, note: str, proof: Mapping[str, Any] | None,
                           rotations: Sequence[str] = ()) -> int:
        """Queue a signed checkpoint note, its consistency proof and the log's key rotations."""
        return self._enqueue(self._topics.checkpoint, "checkpoint",
                             checkpoint_body(note, proof, rotations))

    def enqueue_event(self, event: Mapping[str, Any]) -> int:
        """Queue an event (bookmark, fault, warning); returns its seq.

        Like the other ``enqueue_*`` methods: durable when it returns, callable from any
        thread, and raises SyncError if the outbox cannot be written (the caller decides
        whether that is a recorder fault).
        """
        return self._enqueue(self._topics.event, "event", event_body(event))

    def publish_telemetry(self, telemetry: Mapping[str, Any]) -> None:
        """Send telemetry at QoS 0; while offline only the newest report is kept."""
        self._shared.put_telemetry(
            telemetry_payload(telemetry, self._device_id, self._outbox.depth()))

    def publish_state(self, state: Mapping[str, Any]) -> None:
        """Publish the retained state snapshot (QoS 1); only the latest is ever sent."""
        self._shared.put_state(state_payload(state, self._device_id))

    def stats(self) -> LinkStats:
        """Current counters (thread-safe snapshot)."""
        delivered, faults = self._feeder.counters()
        return self._shared.stats(self._outbox.depth, delivered, faults)

    def _enqueue(self, topic: str, kind: str, body: dict[str, Any]) -> int:
        payload = row_payload(body, device_id=self._device_id, epoch=self._outbox.epoch)
        seq = self._outbox.enqueue(topic, payload, qos=1, kind=kind)
        self._feeder.notify()
        self._shared.wake()
        return seq

    # --- link thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._connect_and_serve()
            except Exception:  # the link must outlive any single bad connection
                _log.exception("MQTT link: unexpected error; reconnecting")
            self._drop_connection()
            if self._stop.is_set():
                break
            delay = self._backoff.next_delay()
            _log.info("MQTT link: reconnecting in %.1f s", delay)
            self._stop.wait(delay)

    def _connect_and_serve(self) -> None:
        session = self._outbox.next_session()
        self._shared.begin_session(session)
        client = self._new_client(session)
        self._client = client
        try:
            mqtt_loop.connect(client, self._broker, keepalive=self._keepalive,
                              session_expiry_s=self._session_expiry_s)
        except (OSError, ssl.SSLError) as exc:
            _log.warning("MQTT link: cannot reach %s:%d: %s", self._broker.host,
                         self._broker.port, exc)
            return
        self._connack_deadline = time.monotonic() + _CONNACK_TIMEOUT_S
        self._serve(client)

    def _new_client(self, session: int) -> mqtt.Client:
        client = mqtt_loop.new_client(
            client_id=self._client_id, max_inflight=self._max_inflight,
            tls=self._tls if self._broker.tls else None,
            username=self._username, password=self._password,
            will=(self._topics.status, will_payload(self._device_id, session)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _serve(self, client: mqtt.Client) -> None:
        while not self._stop.is_set():
            self._pump(client)
            if not mqtt_loop.select_round(client, self._shared.wake_fd, self._select_timeout):
                return
            self._feeder.flush(force=False)
            if not self._shared.is_connected() and time.monotonic() > self._connack_deadline:
                _log.warning("MQTT link: no CONNACK within %.0f s", _CONNACK_TIMEOUT_S)
                return
        self._shutdown(client)

    def _select_timeout(self) -> float:
        timeout = 1.0
        deadline = self._feeder.deadline()
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        return timeout

    # --- feeding ------------------------------------------------------------------------------
    def _pump(self, client: mqtt.Client) -> None:
        if not self._shared.is_connected():
            return
        telemetry, state, grant = self._shared.take_unsent()
        qos, retain = (grant.qos(1), grant.retain_available) if grant else (1, True)
        for serial, topic, body in self._acks.take_unsent():
            info = client.publish(topic, body, qos=qos)
            self._ack_mids[info.mid] = serial
        if state is not None:
            client.publish(self._topics.state, state, qos=qos, retain=retain)
        if telemetry is not None:
            client.publish(self._topics.telemetry, telemetry, qos=0)
        self._feeder.feed(lambda row: self._publish_row(client, row, grant))

    def _publish_row(self, client: mqtt.Client, row: OutboxMessage,
                     grant: BrokerGrant | None) -> int | None:
        problem = unsendable(row, grant) if grant is not None else None
        if problem is not None:
            if row.seq not in self._held:
                self._held.add(row.seq)
                self._feeder.hold(row.seq, problem)
            return HELD
        return mqtt_loop.publish_row(client, row)

    # --- paho callbacks (link thread) ---------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags,
                    reason: ReasonCode, props: Properties | None) -> None:
        if reason.is_failure:
            _log.error("MQTT link: broker refused connection: %s", reason)
            return
        self._backoff.reset()
        grant = self._adopt(client, _flags.session_present, props)
        session = self._shared.connected(grant)
        self._acks.resend_all()
        self._feeder.reset()
        self._held.clear()
        qos, retain = grant.qos(1), grant.retain_available
        client.publish(self._topics.status, status_payload(self._device_id, session, online=True),
                       qos=qos, retain=retain)
        client.publish(self._topics.birth, birth_payload(self._birth, self._device_id, session),
                       qos=qos, retain=retain)
        client.subscribe(self._topics.commands,
                         options=SubscribeOptions(qos=1, retainHandling=2))
        _log.info("MQTT link: connected to %s:%d (session %d)", self._broker.host,
                  self._broker.port, session)

    def _adopt(self, client: mqtt.Client, session_present: bool,
               props: Properties | None) -> BrokerGrant:
        """Read the CONNACK grant, log it (once per connect), and fit the windows to it."""
        values = props.json() if props is not None else {}  # type: ignore[no-untyped-call]
        grant = read_grant(values, request=self._request, session_present=session_present)
        _log.info("MQTT link: broker granted %s", ", ".join(
            f"{k}={v}" for k, v in grant.as_dict().items()))
        for problem in shortfalls(self._request, grant):
            _log.warning("MQTT link: broker %s", problem)
        window = inflight_window(self._max_inflight, grant)
        self._feeder.set_window(window)
        # paho's setter refuses once connected, for fear of a switch between 0 (unlimited) and
        # a limit while messages are in flight; ours is > 0 before and after, and nothing has
        # been published on this client yet, so setting its field is exactly what it guards.
        client._max_inflight_messages = client_inflight_limit(
            window, mqtt_loop.PAHO_EXTRA_INFLIGHT, grant)
        return grant

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int,
                      reasons: list[ReasonCode], _props: Properties | None) -> None:
        ok = bool(reasons) and not any(r.is_failure for r in reasons)
        if not ok:
            _log.error("MQTT link: command subscription refused: %s", reasons)
        self._shared.subscribed(ok)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any,
                       _flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       _props: Properties | None) -> None:
        _log.info("MQTT link: disconnected (%s)", reason)
        self._shared.lost()

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode,
                    _props: Properties | None) -> None:
        serial = self._ack_mids.pop(mid, None)
        if serial is not None:
            if not reason.is_failure:
                self._acks.confirm(serial)
            return
        self._feeder.settle(mid, reason)

    def _on_message(self, _client: mqtt.Client, _userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        self._inbox.receive(message.topic, bytes(message.payload))

    # --- teardown -----------------------------------------------------------------------------
    def _shutdown(self, client: mqtt.Client) -> None:
        """Clean stop: publish ``offline`` (retained), wait briefly for its PUBACK, disconnect."""
        if not self._shared.is_connected():
            return
        self._pump(client)  # acks the controller sent just before stopping
        session = self._shared.session()
        mqtt_loop.publish_and_wait(
            client, self._topics.status, status_payload(self._device_id, session, online=False),
            wait_s=_SHUTDOWN_PUBACK_S)
        self._feeder.flush()
        mqtt_loop.disconnect(client)

    def _drop_connection(self) -> None:
        self._shared.lost()
        self._feeder.reset()
        self._ack_mids.clear()
        client, self._client = self._client, None
        if client is not None:
            mqtt_loop.close_socket(client)

