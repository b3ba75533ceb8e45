"""The console's back-office MQTT connection: watch the fleet, send commands.

It subscribes to every unit's ``status``, ``birth``, ``telemetry``, ``state``, ``event`` and
``alarm`` topics and to command acknowledgements, with the back-office certificate the broker
ACL lets write ``cmd/`` (config/mosquitto/). No shared subscription: every console process
needs the whole fleet in memory.

Threading: paho's network thread (``loop_start``) runs the callbacks; each message is handed
to the event loop with ``call_soon_threadsafe`` and nothing else is touched there.
:meth:`Feed.publish` may be called from any thread (paho's publish is thread-safe) and
blocks until the broker's PUBACK, so call it from a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.sync.topics import PREFIX
from agent.sync.transport import TlsSettings, parse_broker_url
from hw.errors import SyncError

from ..station_config import ConsoleConfig, MqttConfig

__all__ = ["Feed"]

log = logging.getLogger("bodycam.station.console")

SUBSCRIPTIONS = (f"{PREFIX}/+/+", f"{PREFIX}/+/cmd/+/ack")
Sink = Callable[[str, bytes], None]


class Feed:
    """One MQTT v5 client for one console process: ``[console] broker`` and its identity, or
    the station's ``[mqtt]`` broker and back-office identity (the monitor's)."""

    def __init__(self, cfg: ConsoleConfig | MqttConfig, loop: asyncio.AbstractEventLoop,
                 sink: Sink) -> None:
        url = cfg.broker if isinstance(cfg, ConsoleConfig) else cfg.url
        tls = (TlsSettings(Path(cfg.cafile), Path(cfg.certfile) if cfg.certfile else None,
                           Path(cfg.keyfile) if cfg.keyfile else None) if cfg.cafile else None)
        self.address = parse_broker_url(url, tls=tls, allow_plaintext=cfg.allow_plaintext)
        self._tls = tls
        self._loop, self._sink = loop, sink
        self.connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                   client_id=f"console-{uuid.uuid4().hex[:12]}",
                                   protocol=mqtt.MQTTv5)
        if self.address.tls and tls is not None:
            self._client.tls_set(ca_certs=str(tls.cafile),
                                 certfile=str(tls.certfile) if tls.certfile else None,
                                 keyfile=str(tls.keyfile) if tls.keyfile else None,
                                 tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish = self._on_publish
        self._pubacks: dict[int, Any] = {}
        self._puback_cond = threading.Condition()
        self._client.reconnect_delay_set(1, 30)

    def start(self) -> None:
        """Connect in the background; reconnects on its own."""
        self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK; SyncError if it is not a
        success (an ACL denial shows as a reason code, not as a silent drop)."""
        if not self.connected.is_set():
            raise SyncError("the console is not connected to the broker")
        with self._puback_cond:
            info = self._client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise SyncError(f"publish failed: {mqtt.error_string(info.rc)}")
            if not self._puback_cond.wait_for(lambda: info.mid in self._pubacks, timeout):
                raise SyncError(f"the broker did not acknowledge the command within "
                                f"{timeout:g} s")
            reason = self._pubacks.pop(info.mid)
        if getattr(reason, "is_failure", False):
            raise SyncError(f"the broker refused the command: {reason}")

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any = None) -> None:
        with self._puback_cond:
            self._pubacks[mid] = reason
            if len(self._pubacks) > 1000:  # acks nobody waits for any more
                self._pubacks.pop(next(iter(self._pubacks)))
            self._puback_cond.notify_all()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any,
                    _p: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            log.error("console: broker refused the connection: %s", reason)
            return
        for topic in SUBSCRIPTIONS:
            client.subscribe(topic, qos=1)
        self.connected.set()
        log.info("console: connected to %s:%d", self.address.host, self.address.port)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self.connected.clear()
        log.warning("console: disconnected from the broker (%s)", reason)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._sink, msg.topic, bytes(msg.payload))
