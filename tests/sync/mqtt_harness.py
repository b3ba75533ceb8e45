"""Test helpers: a real mosquitto on loopback, a back-office subscriber, a test CA.

The broker is the Debian ``mosquitto`` binary started with a generated config on a free
port; it can be killed and restarted on the same port with its persistence kept, the way a
real broker restart looks to the device.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[2]
MAKE_CA = REPO / "scripts" / "make-test-ca.sh"
MOSQUITTO_DIR = REPO / "config" / "mosquitto"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Broker:
    """A mosquitto process with a config file; ``kill``/``start`` simulate a broker crash."""

    conf: Path
    host: str
    port: int
    workdir: Path
    netns: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "mosquitto.log"

    def start(self) -> None:
        cmd = ["mosquitto", "-c", str(self.conf)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(self.host, self.port)
        except OSError as exc:
            self.kill()
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"mosquitto did not start:\n{log}") from exc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def plain_broker_conf(workdir: Path, port: int, host: str = "127.0.0.1") -> Path:
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"""user root
listener {port} {host}
allow_anonymous true
max_keepalive 3600
persistence true
persistence_location {workdir}/
autosave_on_changes true
autosave_interval 1
queue_qos0_messages true
log_dest file {workdir}/mosquitto.log
log_type error
log_type warning
log_type notice
"""
    )
    return conf


def tls_broker_conf(workdir: Path, port: int, certs: Path) -> Path:
    """The shipped reference config, with paths and port rewritten for the test."""
    text = (MOSQUITTO_DIR / "bodycam.conf").read_text()
    text = (
        text.replace("/etc/mosquitto/certs", str(certs))
        .replace("/etc/mosquitto/bodycam.acl", str(workdir / "bodycam.acl"))
        .replace("/var/lib/mosquitto/", f"{workdir}/")
        .replace("/var/log/mosquitto/mosquitto.log", f"{workdir}/mosquitto.log")
        .replace("listener 8883", f"listener {port} 127.0.0.1")
        .replace("autosave_interval 60", "autosave_on_changes true\nautosave_interval 1")
    )
    (workdir / "bodycam.acl").write_text((MOSQUITTO_DIR / "bodycam.acl").read_text())
    conf = workdir / "mosquitto.conf"
    conf.write_text("user root\n" + text)
    return conf


def make_ca(outdir: Path, *device_ids: str) -> Path:
    subprocess.run(["bash", str(MAKE_CA), str(outdir), *device_ids], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return outdir


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class BackOffice:
    """A subscriber on ``bodycam/v1/#`` that records everything it sees."""

    host: str
    port: int
    tls: tuple[Path, Path, Path] | None = None
    topic: str = "bodycam/v1/#"
    auth: tuple[str, str] | None = None
    client_id: str = field(default_factory=lambda: f"bo-{os.getpid()}-{time.monotonic_ns()}")
    messages: list[Received] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _client: mqtt.Client | None = None
    _subscribed: threading.Event = field(default_factory=threading.Event)

    def connect(self) -> BackOffice:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5)
        if self.tls:
            ca, cert, key = self.tls
            client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key),
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if self.auth:
            client.username_pw_set(*self.auth)
        client.on_message = self._on_message
        client.on_connect = lambda c, *_: c.subscribe(self.topic, qos=1)
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_disconnect = lambda *_: self._subscribed.clear()
        client.reconnect_delay_set(0.1, 0.5)
        # A persistent session, so nothing published while we reconnect after a broker
        # restart is missed (the test configs autosave after every change).
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        client.connect(self.host, self.port, keepalive=10, clean_start=False, properties=props)
        client.loop_start()
        self._client = client
        return self

    def wait_subscribed(self, timeout: float = 10.0) -> BackOffice:
        """Block until the broker granted the subscription (nothing published after is missed)."""
        if not self._subscribed.wait(timeout):
            raise AssertionError("back-office subscription not granted")
        return self

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> None:
        assert self._client is not None
        self._client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain),
                                          time.monotonic()))
            self._cond.notify_all()

    def on(self, suffix: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic.endswith(suffix)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = [(m.topic, m.payload[:120]) for m in self.messages[-8:]]
                    raise AssertionError(f"timed out; last messages: {tail}")
                self._cond.wait(left)


@contextlib.contextmanager
def back_office(host: str, port: int, **kw: Any) -> Iterator[BackOffice]:
    bo = BackOffice(host, port, **kw).connect()
    try:
        yield bo
    finally:
        bo.close()


def dedupe_seqs(messages: list[Received], suffix: str) -> list[int]:
    """Seqs of outbox messages in arrival order, first occurrence only."""
    seen: set[int] = set()
    order: list[int] = []
    for m in messages:
        if m.topic.endswith(suffix):
            seq = m.json()["seq"]
            if seq not in seen:
                seen.add(seq)
                order.append(seq)
    return order


SCHEMA_DIR = REPO / "agent" / "sync" / "schemas"
_SUFFIX_SCHEMA = {
    "status": "status", "birth": "birth", "telemetry": "telemetry", "state": "state",
    "segment": "segment", "checkpoint": "checkpoint", "event": "event", "ack": "command-ack",
    "alarm": "alarm",
}


def schema_for(topic: str) -> dict[str, Any] | None:
    """The JSON Schema a device-published topic must satisfy (None: not device-published)."""
    parts = topic.split("/")
    if len(parts) >= 5 and parts[3] == "cmd":
        if not (parts[-1] == "ack" and len(parts) == 6):
            return None  # a command from the back office, not the device
        name = "command-ack"
    else:
        name = _SUFFIX_SCHEMA[parts[-1]]
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text())


def assert_valid(messages: list[Received]) -> int:
    """Validate every message against its schema; returns how many were checked."""
    from jsonschema import Draft202012Validator

    checked = 0
    for m in messages:
        schema = schema_for(m.topic)
        if schema is not None:
            Draft202012Validator(schema).validate(m.json())
            checked += 1
    return checked


# --- device-side sample content ----------------------------------------------------------------
def device_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.evidence.keys import DeviceKey

    return DeviceKey(Ed25519PrivateKey.generate())


def sample_birth(key: Any) -> dict[str, Any]:
    return {"software": "bodycam-agent 0.1.0", "model": "test bench",
            "hardware": {"camera": "sim"}, "capabilities": ["video", "gps"],
            "public_key": key.public_b64}


def sample_envelope(key: Any, device_id: str, device_seq: int) -> dict[str, Any]:
    from agent.evidence.manifest import FORMAT, sign_manifest

    signed = sign_manifest({"format": FORMAT, "device_id": device_id, "device_seq": device_seq,
                            "sha256_cipher": "00" * 32}, key)
    return {"manifest": signed.manifest, "signature": signed.signature}


def sample_checkpoint(key: Any, device_id: str, size: int) -> str:
    import hashlib

    from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
    from agent.evidence.log import origin_for

    root = hashlib.sha256(str(size).encode()).digest()
    return sign_checkpoint(Checkpoint(origin_for(device_id), size, root), key).decode()


def is_ack(topic: str) -> bool:
    """``bodycam/v1/<dev>/cmd/<name>/ack`` (not the ``cmd/ack`` command itself)."""
    parts = topic.split("/")
    return len(parts) == 6 and parts[3] == "cmd" and parts[5] == "ack"
