"""paho's "external loop", driven by hand: building a client, one select() round, a clean stop.

:mod:`agent.sync.link` runs paho without paho's own network thread (see its threading model):
the link thread builds a client per connection attempt, selects over the broker socket and a
wake-up pipe, and calls ``loop_read``/``loop_write``/``loop_misc`` itself. The mechanics of that
(TLS and credentials on a new client, the select round with its SSL-buffer subtlety, waiting for
one PUBACK on the way out, closing a socket paho left open) are here, apart from the link's
policy (what to publish, when to reconnect, what the broker granted), so each reads on its own.

Every function here is called on the link thread only, with the client that thread owns: none
takes a lock, and none may be called from another thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import ssl
import time
from collections.abc import Callable
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.sync.outbox import OutboxMessage
from agent.sync.transport import BrokerAddress, TlsSettings

__all__ = [
    "CONNECT_TIMEOUT_S",
    "PAHO_EXTRA_INFLIGHT",
    "close_socket",
    "connect",
    "disconnect",
    "drain",
    "new_client",
    "publish_and_wait",
    "publish_row",
    "select_round",
]

_log = logging.getLogger("agent.sync.link")  # the link's log: these are its steps

CONNECT_TIMEOUT_S: Final = 5.0
PAHO_EXTRA_INFLIGHT: Final = 32  # room for status/birth/state/acks beside the outbox window


def new_client(*, client_id: str, max_inflight: int, tls: TlsSettings | None,
               username: str | None, password: str | None,
               will: tuple[str, bytes]) -> mqtt.Client:
    """A fresh MQTT v5 client that never reconnects or queues by itself (the link does both,
    from the outbox); ``tls`` None for a plaintext broker; ``will`` the topic and payload the
    broker publishes (QoS 1, retained) if the connection is lost. No callbacks yet."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, reconnect_on_failure=False)
    client.connect_timeout = CONNECT_TIMEOUT_S  # TCP + TLS handshake, blocking
    client.max_inflight_messages_set(max_inflight + PAHO_EXTRA_INFLIGHT)
    client.max_queued_messages_set(0)
    if tls is not None:
        cert, key = tls.certfile, tls.keyfile
        client.tls_set(ca_certs=str(tls.cafile),
                       certfile=str(cert) if cert is not None else None,
                       keyfile=str(key) if key is not None else None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if username is not None:
        client.username_pw_set(username, password)
    client.will_set(will[0], will[1], qos=1, retain=True)
    return client


def connect(client: mqtt.Client, broker: BrokerAddress, *, keepalive: int,
            session_expiry_s: int) -> None:
    """Open the connection and send CONNECT asking to resume the broker-side session
    (``clean_start=False`` with a session expiry). Raises OSError / ssl.SSLError if the
    broker cannot be reached; the CONNACK arrives later through a select round."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho lacks hints
    props.SessionExpiryInterval = session_expiry_s
    client.connect(broker.host, broker.port, keepalive, clean_start=False, properties=props)


def select_round(client: mqtt.Client, wake_r: int, timeout: Callable[[], float]) -> bool:
    """One select() round over the broker socket and the wake-up pipe; False once lost.

    ``timeout`` is asked only when select() may block: bytes already decrypted inside the SSL
    object are invisible to select(), so with some pending the round does not wait.
    """
    sock = client.socket()
    if sock is None:
        return False
    fd = sock.fileno()
    ssl_pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
    wait = 0.0 if ssl_pending else timeout()
    try:
        readable, writable, _ = select.select(
            [fd, wake_r], [fd] if client.want_write() else [], [], wait
        )
    except (OSError, ValueError):  # socket closed under us by paho
        return False
    if wake_r in readable:
        drain(wake_r)
    ok = MQTTErrorCode.MQTT_ERR_SUCCESS
    if (fd in readable or ssl_pending) and client.loop_read() != ok:
        return False
    if fd in writable and client.loop_write() != ok:
        return False
    return client.loop_misc() == ok


def publish_row(client: mqtt.Client, row: OutboxMessage) -> int | None:
    """Hand one outbox row to paho; its message id, or None if paho refused it (logged)."""
    info = client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
    if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        _log.warning("MQTT link: client refused seq %d: %s", row.seq, mqtt.error_string(info.rc))
        return None
    return info.mid


def publish_and_wait(client: mqtt.Client, topic: str, payload: bytes, *,
                     wait_s: float) -> None:
    """Publish a retained QoS 1 message and pump the socket until its PUBACK or ``wait_s``
    (the last word before a clean disconnect; nothing else is served meanwhile)."""
    info = client.publish(topic, payload, qos=1, retain=True)
    deadline = time.monotonic() + wait_s
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


def disconnect(client: mqtt.Client) -> None:
    """Send DISCONNECT (so the broker does not publish the Will) and flush it out."""
    client.disconnect()
    if client.socket() is not None:
        client.loop_write()


def close_socket(client: mqtt.Client) -> None:
    """Close whatever socket paho still holds for a connection being thrown away."""
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def drain(fd: int) -> None:
    """Empty the non-blocking wake-up pipe (any number of wake-ups is one)."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
