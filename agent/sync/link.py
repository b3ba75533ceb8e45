"""The device's MQTT v5 link: status, birth, telemetry, the durable outbox feed, and commands.

Threading model. One thread, ``mqtt-link``, owns the paho client and is the only thread that
ever calls into paho; it runs its own ``select()`` over the broker socket and a wake-up pipe
(paho's "external loop" API). paho therefore never needs its internal locks, and callbacks
(``on_command``, ``on_delivery_fault``) run on this thread. Every other public method may be
called from any thread: it updates fields guarded by ``self._lock`` (or writes the Outbox,
which has its own lock), then writes one byte to the wake-up pipe.

A new paho client is built for every connection attempt. Whatever paho held in memory for
the previous connection is thrown away; undelivered messages are re-read from the Outbox,
which is the single source of truth. ``clean_start=False`` with a session expiry keeps the
broker-side session (command subscription and commands queued while we were away).

Delivery (see :mod:`agent.sync.feeder`). Outbox rows are handed to paho only while connected,
in seq order, at most ``max_inflight`` at a time. A row is deleted only when its PUBACK
carries a success reason code (< 0x80; 0x10 "no matching subscribers" is a success). A failure code (0x87 "not
authorized" from an ACL, 0x97 quota, …) is a delivery fault: counted, reported through
``on_delivery_fault``, the row kept, and feeding paused with exponential backoff before the
oldest pending row is tried again, so a misconfigured ACL cannot make the device spin.
Commands are handled by :mod:`agent.sync.inbox`; their acks wait in :mod:`agent.sync.acks`.

What the broker granted (CONNACK properties, :mod:`agent.sync.session`) is logged once per
connection, at warning level for anything cut below what we asked, and obeyed: the in-flight
window stays within its Receive Maximum, paho adopts its Server Keep Alive, QoS and retain
follow its Maximum QoS and Retain Available, and a row bigger than its Maximum Packet Size is
held in the outbox and reported instead of being sent (the broker would drop the connection,
and the link would loop). ``stats().broker`` carries the grant to status and telemetry.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.sync.acks import AckQueue
from agent.sync.command_messages import (
    DEFAULT_CONFIG_ALLOWLIST,
    Command,
    ConfigKey,
    iso_utc,
)
from agent.sync.feeder import HELD, OutboxFeeder
from agent.sync.inbox import CommandInbox
from agent.sync.outbox import Outbox, OutboxMessage
from agent.sync.session import (
    BrokerGrant,
    SessionRequest,
    client_inflight_limit,
    fits,
    inflight_window,
    publish_packet_size,
    read_grant,
    shortfalls,
)
from agent.sync.topics import Topics, encode_json
from agent.sync.transport import Backoff, TlsSettings, parse_broker_url
from hw.errors import ConfigError, SyncError

__all__ = ["LinkStats", "MqttLink", "TlsSettings"]

_log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S: Final = 5.0
_CONNACK_TIMEOUT_S: Final = 10.0
_SHUTDOWN_PUBACK_S: Final = 2.0
_DELIVERY_FIELDS: Final = frozenset({"device_id", "seq", "outbox_epoch", "queued_at"})
_BIRTH_REQUIRED: Final = ("software", "public_key")
_PAHO_EXTRA_INFLIGHT: Final = 32  # room for status/birth/state/acks beside the outbox window


@dataclass(frozen=True, slots=True)
class LinkStats:
    """A snapshot for telemetry and health checks."""

    outbox_depth: int
    connected: bool
    last_connect: datetime | None
    delivered: int
    faults: int
    session: int
    commands_ready: bool
    broker: BrokerGrant | None = None  # what the current (or last) connection was granted


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
        missing = [key for key in _BIRTH_REQUIRED if not isinstance(birth.get(key), str)]
        if missing:
            raise ConfigError(f"birth message lacks {missing}", key="sync.birth")
        self._birth = dict(birth)

        # Guarded by _lock (touched by callers' threads and the link thread).
        self._lock = threading.Lock()
        self._telemetry: bytes | None = None
        self._state: bytes | None = None
        self._state_dirty = False
        self._connected = False
        self._subscribed = False
        self._last_connect: datetime | None = None
        self._session = 0
        self._grant: BrokerGrant | None = None

        self._acks = AckQueue()  # has its own lock
        self._inbox = CommandInbox(topics=self._topics, outbox=outbox, acks=self._acks,
                                   wake=self._wake, on_command=on_command,
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
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pipe_closed = False  # guarded by _lock
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
        self._wake()
        if self._thread is threading.current_thread():
            return
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("MQTT link thread did not stop within %.1f s", timeout)
                return
        with self._lock:
            if self._pipe_closed:
                return
            self._pipe_closed = True
        os.close(self._wake_r)
        os.close(self._wake_w)

    # --- producers (any thread) ---------------------------------------------------------------
    def enqueue_segment(self, manifest_envelope: Mapping[str, Any]) -> int:
        """Queue a signed manifest envelope (``{"manifest", "signature"}``) durably; returns seq.

        The envelope's keys go to the top level of the payload beside the delivery fields, so
        the back office verifies exactly the object the device wrote beside the segment.
        """
        manifest = manifest_envelope.get("manifest")
        if not isinstance(manifest, Mapping) or not isinstance(
            manifest_envelope.get("signature"), Mapping
        ):
            raise SyncError("segment envelope needs 'manifest' and 'signature' objects")
        if manifest.get("device_id") != self._device_id:
            raise SyncError(
                f"manifest of device {manifest.get('device_id')!r} cannot be sent as "
                f"{self._device_id!r}"
            )
        reserved = set(manifest_envelope) & _DELIVERY_FIELDS
        if reserved:
            raise SyncError(f"segment envelope uses reserved key(s) {sorted(reserved)}")
        return self._enqueue(self._topics.segment, "segment", dict(manifest_envelope))

    def enqueue_checkpoint(self, note: str, proof: Mapping[str, Any] | None) -> int:
        """Queue a signed checkpoint note and its consistency proof; returns its seq."""
        body = {"note": note, "proof": dict(proof) if proof is not None else None}
        return self._enqueue(self._topics.checkpoint, "checkpoint", body)

    def enqueue_event(self, event: Mapping[str, Any]) -> int:
        """Queue an event (bookmark, fault, warning); returns its seq.

        Like the other ``enqueue_*`` methods: durable when it returns, callable from any
        thread, and raises SyncError if the outbox cannot be written (the caller decides
        whether that is a recorder fault).
        """
        if not isinstance(event.get("type"), str):
            raise SyncError("event needs a string 'type'")
        return self._enqueue(self._topics.event, "event", {"event": dict(event)})

    def publish_telemetry(self, telemetry: Mapping[str, Any]) -> None:
        """Send telemetry at QoS 0; while offline only the newest report is kept."""
        doc = {**telemetry, "device_id": self._device_id, "at": _now_iso(),
               "outbox_depth": self._outbox.depth()}
        with self._lock:
            self._telemetry = encode_json(doc)
        self._wake()

    def publish_state(self, state: Mapping[str, Any]) -> None:
        """Publish the retained state snapshot (QoS 1); only the latest is ever sent."""
        doc = {**state, "device_id": self._device_id, "at": _now_iso()}
        with self._lock:
            self._state = encode_json(doc)
            self._state_dirty = True
        self._wake()

    def stats(self) -> LinkStats:
        """Current counters (thread-safe snapshot)."""
        delivered, faults = self._feeder.counters()
        with self._lock:
            return LinkStats(
                outbox_depth=self._outbox.depth(),
                connected=self._connected,
                last_connect=self._last_connect,
                delivered=delivered,
                faults=faults,
                session=self._session,
                commands_ready=self._subscribed,
                broker=self._grant,
            )

    def _enqueue(self, topic: str, kind: str, body: dict[str, Any]) -> int:
        epoch = self._outbox.epoch
        device_id = self._device_id

        def payload(seq: int) -> bytes:
            return encode_json({**body, "device_id": device_id, "seq": seq,
                                "outbox_epoch": epoch, "queued_at": _now_iso()})

        seq = self._outbox.enqueue(topic, payload, qos=1, kind=kind)
        self._feeder.notify()
        self._wake()
        return seq

    def _wake(self) -> None:
        # A full pipe means the link thread is already awake.
        with self._lock, contextlib.suppress(BlockingIOError):
            if not self._pipe_closed:
                os.write(self._wake_w, b"\0")

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
        with self._lock:
            self._session = session
        client = self._new_client(session)
        self._client = client
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho lacks hints
        props.SessionExpiryInterval = self._session_expiry_s
        try:
            client.connect(self._broker.host, self._broker.port, self._keepalive,
                           clean_start=False, properties=props)
        except (OSError, ssl.SSLError) as exc:
            _log.warning("MQTT link: cannot reach %s:%d: %s", self._broker.host,
                         self._broker.port, exc)
            return
        self._connack_deadline = time.monotonic() + _CONNACK_TIMEOUT_S
        self._serve(client)

    def _new_client(self, session: int) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self._client_id,
                             protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        client.connect_timeout = _CONNECT_TIMEOUT_S  # TCP + TLS handshake, blocking
        client.max_inflight_messages_set(self._max_inflight + _PAHO_EXTRA_INFLIGHT)
        client.max_queued_messages_set(0)
        if self._tls is not None and self._broker.tls:
            cert, key = self._tls.certfile, self._tls.keyfile
            client.tls_set(ca_certs=str(self._tls.cafile),
                           certfile=str(cert) if cert is not None else None,
                           keyfile=str(key) if key is not None else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        will = {"state": "offline", "session": session, "device_id": self._device_id,
                "cause": "connection_lost", "at": None}
        client.will_set(self._topics.status, encode_json(will), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _serve(self, client: mqtt.Client) -> None:
        while not self._stop.is_set():
            self._pump(client)
            if not self._step(client):
                return
            self._feeder.flush(force=False)
            if not self._is_connected() and time.monotonic() > self._connack_deadline:
                _log.warning("MQTT link: no CONNACK within %.0f s", _CONNACK_TIMEOUT_S)
                return
        self._shutdown(client)

    def _step(self, client: mqtt.Client) -> bool:
        """One select() round over the broker socket and the wake-up pipe; False once lost."""
        sock = client.socket()
        if sock is None:
            return False
        fd = sock.fileno()
        # Bytes already decrypted inside the SSL object are invisible to select().
        ssl_pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        timeout = 0.0 if ssl_pending else self._select_timeout()
        try:
            readable, writable, _ = select.select(
                [fd, self._wake_r], [fd] if client.want_write() else [], [], timeout
            )
        except (OSError, ValueError):  # socket closed under us by paho
            return False
        if self._wake_r in readable:
            _drain(self._wake_r)
        ok = MQTTErrorCode.MQTT_ERR_SUCCESS
        if (fd in readable or ssl_pending) and client.loop_read() != ok:
            return False
        if fd in writable and client.loop_write() != ok:
            return False
        return client.loop_misc() == ok

    def _select_timeout(self) -> float:
        timeout = 1.0
        deadline = self._feeder.deadline()
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        return timeout

    def _is_connected(self) -> bool:
        with self._lock:
            return self._connected

    # --- feeding ------------------------------------------------------------------------------
    def _pump(self, client: mqtt.Client) -> None:
        if not self._is_connected():
            return
        with self._lock:
            telemetry, self._telemetry = self._telemetry, None
            state = self._state if self._state_dirty else None
            self._state_dirty = False
            grant = self._grant
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
        problem = None
        if grant is not None and grant.maximum_qos < row.qos:
            problem = f"broker's Maximum QoS is {grant.maximum_qos}, the row needs {row.qos}"
        elif grant is not None and not fits(grant, row.topic, len(row.payload), row.qos):
            size = publish_packet_size(row.topic, len(row.payload), row.qos)
            problem = (f"{size}-byte packet exceeds the broker's Maximum Packet Size "
                       f"{grant.maximum_packet_size}; kept in the outbox")
        if problem is not None:
            if row.seq not in self._held:
                self._held.add(row.seq)
                self._feeder.hold(row.seq, problem)
            return HELD
        return _publish_row(client, row)

    # --- paho callbacks (link thread) ---------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags,
                    reason: ReasonCode, props: Properties | None) -> None:
        if reason.is_failure:
            _log.error("MQTT link: broker refused connection: %s", reason)
            return
        self._backoff.reset()
        grant = self._adopt(client, _flags.session_present, props)
        with self._lock:
            self._connected = True
            self._last_connect = datetime.now(UTC)
            session = self._session
            self._state_dirty = self._state is not None
            self._grant = grant
        self._acks.resend_all()
        self._feeder.reset()
        self._held.clear()
        qos, retain = grant.qos(1), grant.retain_available
        online = {"state": "online", "session": session, "device_id": self._device_id,
                  "at": _now_iso()}
        client.publish(self._topics.status, encode_json(online), qos=qos, retain=retain)
        birth = {**self._birth, "device_id": self._device_id, "session": session,
                 "at": _now_iso()}
        client.publish(self._topics.birth, encode_json(birth), qos=qos, retain=retain)
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
            window, _PAHO_EXTRA_INFLIGHT, grant)
        return grant

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int,
                      reasons: list[ReasonCode], _props: Properties | None) -> None:
        ok = bool(reasons) and not any(r.is_failure for r in reasons)
        if not ok:
            _log.error("MQTT link: command subscription refused: %s", reasons)
        with self._lock:
            self._subscribed = ok

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any,
                       _flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       _props: Properties | None) -> None:
        _log.info("MQTT link: disconnected (%s)", reason)
        with self._lock:
            self._connected = False
            self._subscribed = False

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
        if not self._is_connected():
            return
        self._pump(client)  # acks the controller sent just before stopping
        with self._lock:
            session = self._session
        offline = {"state": "offline", "session": session, "device_id": self._device_id,
                   "cause": "shutdown", "at": _now_iso()}
        info = client.publish(self._topics.status, encode_json(offline), qos=1, retain=True)
        deadline = time.monotonic() + _SHUTDOWN_PUBACK_S
        while not info.is_published() and time.monotonic() < deadline:
            sock = client.socket()
            if sock is None:
                break
            readable, writable, _ = select.select(
                [sock], [sock] if client.want_write() else [], [], 0.1)
            if sock in writable:
                client.loop_write()
            if readable and client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        self._feeder.flush()
        client.disconnect()
        if client.socket() is not None:
            client.loop_write()

    def _drop_connection(self) -> None:
        with self._lock:
            self._connected = False
            self._subscribed = False
        self._feeder.reset()
        self._ack_mids.clear()
        client, self._client = self._client, None
        if client is not None:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


def _publish_row(client: mqtt.Client, row: OutboxMessage) -> int | None:
    info = client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        _log.warning("MQTT link: client refused seq %d: %s", row.seq, mqtt.error_string(info.rc))
        return None
    return info.mid


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _now_iso() -> str:
    return iso_utc(datetime.now(UTC))
