"""The station's MQTT checkpoint monitor: every checkpoint a device publishes is checked against
the station's held checkpoint of that device; a bad signature, a fork or a rollback is an alarm.

Devices publish ``bodycam/v1/<id>/checkpoint`` = ``{note, proof{old_size, new_size, hashes}}``
(agent/sync/schemas/checkpoint.json), the proof running from the previous checkpoint the device
published. Station processes subscribe with one MQTT v5 **shared subscription**
(``$share/<group>/bodycam/v1/+/checkpoint``), so the broker hands each message to one of them.
Every process checks against the same held checkpoint — the index row the witness endpoint and
the finalise path use (agent/station/witness_endpoint.py) — and advances it only by that row's
compare-and-set, so what one process accepted the others build on.

The rule (:func:`judge`), for a checkpoint signed by the device's **enrolled** key:

* nothing held yet → hold it;
* same size as held: same root → nothing to do (a redelivery); another root → **fork**;
* larger, with a proof from exactly the held size → hold it if the proof verifies, else
  **fork** (a signed tree that cannot be shown to extend the held one);
* larger, with a proof from a size *above* the held one → another process is probably still
  advancing to that size: wait for it (bounded), then judge again; if it never comes — or
  there is no proof from the held size at all — record a ``checkpoint-gap`` event and keep the
  held checkpoint (the witness endpoint and the next upload prove from it, so the state
  catches up);
* smaller than held → ``checkpoint-behind`` event: messages split between processes may arrive
  late, and without a proof a smaller tree is not shown to be a rollback. A rolled-back log is
  alarmed as a fork once it is signed at or past the held size.

A checkpoint whose signature verifies with none of the device's keys (or that names another
origin) is an alarm ``checkpoint-signature`` -- after the key rotations the message carries
(``rotations``: a device that rotated sends its log's entries) are taken by the endpoint's
rule, so a rotation the uploader has not presented yet is not alarmed as a forgery; an
unregistered device's checkpoint is an event. A rotation in the message that the rule refuses
as a fork or a forgery (``retired-old-key``, ``forged-endorsement``) is the same alarm as on
the endpoint. A checkpoint signed only by a key a rotation retired, over more entries than its
span (:mod:`.keyspans`), is an alarm ``checkpoint-retired-key`` and is not held.
Alarms are recorded once (:func:`~agent.station.witness_endpoint.raise_fork`: one per contradicted held
checkpoint, across processes) and published **retained** at ``bodycam/v1/<id>/alarm``
(agent/sync/schemas/alarm.json): an alarm is a standing condition a back office that connects
later must still see, until a person clears the retained message.

Threading: paho's network thread only queues messages (manual acknowledgement). One worker
thread owns the checks and the index calls and acknowledges each message after it was judged,
so a crash redelivers, never loses, a checkpoint. ``publish`` may be called from any thread
(paho's publish is thread-safe).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.evidence.checkpoint import SignedCheckpoint, parse_signed_checkpoint
from agent.evidence.ids import is_device_id
from agent.evidence.log import origin_for
from agent.evidence.merkle import verify_consistency
from agent.sync.topics import PREFIX
from agent.sync.transport import TlsSettings, parse_broker_url
from hw.errors import BodycamError

from .devicekeys import MAX_ROTATION_ENTRY_BYTES, check_rotation
from .index import CheckpointRow
from .keyspans import checkpoint_signer
from .proofkeep import keep_consistency
from .refusal import Refused
from .rotation_endpoint import take_rotation
from .service import StationService, utc_now
from .station_config import MqttConfig
from .witness_endpoint import raise_fork

__all__ = ["CheckpointMonitor", "Verdict", "alarm_topic", "judge", "monitor_context",
           "parse_message", "subscription"]

log = logging.getLogger("bodycam.station.monitor")

MAX_MESSAGE_BYTES = 64 * 1024
MAX_PROOF_HASHES = 64
MAX_MESSAGE_ROTATIONS = 32  # the device sends its newest 32 (agent/sync/schemas/checkpoint.json)


def subscription(group: str) -> str:
    """The shared subscription every station process of ``group`` makes."""
    return f"$share/{group}/{PREFIX}/+/checkpoint"


def alarm_topic(device_id: str) -> str:
    """Where an alarm about a device is published (retained)."""
    return f"{PREFIX}/{device_id}/alarm"


@dataclass(frozen=True, slots=True)
class Proof:
    """A message's consistency proof (unsigned: only ever checked, never trusted)."""

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one signed checkpoint: ``hold`` (advance to it), ``same``, ``fork``,
    ``behind`` (smaller than held), ``wait`` (a proof from a size above the held one: another
    process may be about to hold it) or ``gap`` (larger, but no proof from the held size)."""

    action: str
    detail: str = ""


def judge(held: CheckpointRow | None, signed: SignedCheckpoint, proof: Proof | None) -> Verdict:
    """The monitor's rule for a checkpoint already known to be signed by the enrolled key."""
    size, root = signed.checkpoint.size, signed.checkpoint.root
    if held is None:
        return Verdict("hold")
    held_root = base64.b64decode(held.root)
    if size == held.size:
        return Verdict("same") if root == held_root else Verdict(
            "fork", f"a signed checkpoint of size {size} with another root than the one held")
    if size < held.size:
        return Verdict("behind", f"signed checkpoint of size {size}; the station holds "
                       f"{held.size}")
    if proof is None or proof.new_size != size or proof.old_size < held.size:
        return Verdict("gap", f"no proof from the held size {held.size} to {size}")
    if proof.old_size > held.size:
        return Verdict("wait", f"the proof starts at {proof.old_size}; the station holds "
                       f"{held.size}")
    if verify_consistency(held.size, size, held_root, root, list(proof.hashes)):
        return Verdict("hold")
    return Verdict("fork", f"the signed checkpoint of size {size} is not consistent with the "
                   f"one of size {held.size} the station holds")


def parse_message(payload: bytes) -> tuple[bytes, Proof | None]:
    """The note and the proof of a checkpoint message; ValueError if malformed."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError("message too large")
    doc = json.loads(payload)
    if not isinstance(doc, dict) or not isinstance(doc.get("note"), str):
        raise ValueError("no note")
    raw = doc.get("proof")
    if raw is None:
        return doc["note"].encode(), None
    if not isinstance(raw, dict):
        raise ValueError("proof is not an object")
    old, new, hashes = raw.get("old_size"), raw.get("new_size"), raw.get("hashes")
    if (not isinstance(old, int) or not isinstance(new, int) or isinstance(old, bool)
            or isinstance(new, bool) or not 0 <= old <= new or not isinstance(hashes, list)
            or len(hashes) > MAX_PROOF_HASHES or not all(isinstance(h, str) for h in hashes)):
        raise ValueError("proof is not {old_size <= new_size, hashes[]}")
    try:
        decoded = tuple(base64.b64decode(h, validate=True) for h in hashes)
    except binascii.Error:
        raise ValueError("a proof hash is not base64") from None
    if any(len(h) != 32 for h in decoded):
        raise ValueError("a proof hash is not 32 bytes")
    return doc["note"].encode(), Proof(old, new, decoded)


def message_rotations(payload: bytes) -> list[bytes]:
    """The key_rotation entries (exact bytes) a checkpoint message carries; none if malformed
    (the rule that judges them, not this, decides what they are worth)."""
    try:
        doc = json.loads(payload)
        raw = doc.get("rotations") if isinstance(doc, dict) else None
        if not isinstance(raw, list) or len(raw) > MAX_MESSAGE_ROTATIONS:
            return []
        return [base64.b64decode(r, validate=True) for r in raw
                if isinstance(r, str) and len(r) <= 2 * MAX_ROTATION_ENTRY_BYTES]
    except (ValueError, binascii.Error):
        return []


AlarmPublisher = Callable[[dict[str, Any]], None]


class CheckpointMonitor:
    """One station process's share of the fleet's checkpoints (see the module docstring)."""

    def __init__(self, svc: StationService, cfg: MqttConfig, *, client_id: str,
                 gap_wait_s: float = 2.0) -> None:
        self._svc = svc
        self._cfg = cfg
        self._gap_wait = gap_wait_s
        self._queue: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.subscribed = threading.Event()
        tls = (TlsSettings(Path(cfg.cafile), Path(cfg.certfile) if cfg.certfile else None,
                           Path(cfg.keyfile) if cfg.keyfile else None) if cfg.cafile else None)
        self._broker = parse_broker_url(cfg.url, tls=tls, allow_plaintext=cfg.allow_plaintext)
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv5, manual_ack=True)
        if tls is not None and self._broker.tls:
            self._client.tls_set(ca_certs=str(tls.cafile),
                                 certfile=str(tls.certfile) if tls.certfile else None,
                                 keyfile=str(tls.keyfile) if tls.keyfile else None)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self.subscribed.set()
        self._client.on_disconnect = lambda *_: self.subscribed.clear()
        self._client.on_message = lambda _c, _u, msg: self._queue.put(msg)
        self._client.reconnect_delay_set(1, 30)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Connect (a persistent session: checkpoints published while down are kept) and
        start the worker; the network loop reconnects by itself."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho lacks hints
        props.SessionExpiryInterval = 7 * 86_400
        self._worker = threading.Thread(target=self._run, name="checkpoint-monitor",
                                        daemon=True)
        self._worker.start()
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=30,
                                   clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and let the worker finish the message in hand."""
        self._client.disconnect()
        self._client.loop_stop()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(10)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.error("checkpoint monitor: broker refused the connection: %s", reason)
            return
        client.subscribe(subscription(self._cfg.share_group), qos=1)

    def publish(self, alarm: dict[str, Any]) -> None:
        """Publish an alarm, retained, QoS 1 (also the witness endpoint's alarm listener)."""
        body = json.dumps(alarm, sort_keys=True, separators=(",", ":")).encode()
        info = self._client.publish(alarm_topic(alarm["device_id"]), body, qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.error("alarm for %s not published now (%s); it is in the index",
                      alarm["device_id"], mqtt.error_string(info.rc))

    # -- the worker -------------------------------------------------------------------------
    def _run(self) -> None:
        while (msg := self._queue.get()) is not None:
            try:
                self.check(msg.topic, bytes(msg.payload))
            except Exception:  # one bad message (or a database hiccup) must not stop the monitor
                log.exception("checkpoint monitor: checking %s failed", msg.topic)
            if msg.qos > 0:
                self._client.ack(msg.mid, msg.qos)

    def check(self, topic: str, payload: bytes) -> str:
        """Judge one checkpoint message and act on it; what was done (for tests and logs)."""
        parts = topic.split("/")
        device_id = parts[2] if len(parts) == 4 else ""
        if not is_device_id(device_id):
            return "ignored"
        index = self._svc.index
        device = index.device(device_id)
        if device is None:
            index.event(utc_now(), device_id, "checkpoint-unregistered",
                        "monitor: a checkpoint from a device not enrolled here")
            return "unregistered"
        try:
            note, proof = parse_message(payload)
            signed = parse_signed_checkpoint(note)
            if signed.checkpoint.origin != origin_for(device_id):
                raise BodycamError(f"origin {signed.checkpoint.origin[:80]!r} is not this "
                                   "device's log")
            try:
                checkpoint_signer(signed, device)
            except Refused:
                raise
            except BodycamError:  # a key the device rotated to? only its endorsement can say
                if not self._take_rotations(device_id, payload):
                    raise
                device = index.device(device_id) or device
                checkpoint_signer(signed, device)
        except Refused as exc:  # a retired key signed past its span (.keyspans)
            self._retired_key(device_id, signed.text, exc)
            return exc.code
        except (ValueError, BodycamError) as exc:
            digest = hashlib.sha256(payload).hexdigest()
            raise_fork(self._svc, device_id, index.checkpoint(device_id),
                       kind="checkpoint-signature", once=(-1, digest), listeners=[self.publish],
                       detail=f"monitor: a checkpoint published for {device_id} does not verify "
                       f"with its keys: {str(exc)[:300]}")
            return "checkpoint-signature"
        action = self._apply(device_id, signed, proof, note)
        log.debug("checkpoint of %s size %d: %s", device_id, signed.checkpoint.size, action)
        return action

    def _take_rotations(self, device_id: str, payload: bytes) -> bool:
        """Take the key rotations a checkpoint message carries (``rotations``: the device's
        log entries, each checked by the endpoint's rule -- an endorsement by a key the device
        already has -- and logged in the custody log the same way); True if one was added."""
        added = False
        for data in message_rotations(payload):
            device = self._svc.index.device(device_id)
            if device is None:
                return added
            try:
                successor = check_rotation(data, device.keys)
                added = take_rotation(self._svc, device_id, successor, via="mqtt") or added
            except Refused as exc:
                if not exc.alarm:
                    log.warning("checkpoint of %s carries a rotation refused: %s %s",
                                device_id, exc.code, exc.message)
                    continue
                # A fork or a forged endorsement is the same evidence over MQTT as over HTTP:
                # the same alarm (once per entry; the message repeats the log's rotations).
                raise_fork(self._svc, device_id, self._svc.index.checkpoint(device_id),
                           kind=exc.code, once=(-1, hashlib.sha256(data).hexdigest()),
                           listeners=[self.publish],
                           detail=f"monitor: a checkpoint message carries a key rotation "
                           f"refused: {exc.message}")
        return added

    def _retired_key(self, device_id: str, note: bytes, exc: Refused) -> None:
        """Alarm a checkpoint signed by a retired key past its span, once per note
        (``checkpoint-retired-key``)."""
        raise_fork(self._svc, device_id, self._svc.index.checkpoint(device_id), kind=exc.code,
                   once=(-1, hashlib.sha256(note).hexdigest()), listeners=[self.publish],
                   detail=f"monitor: {exc.message}")

    def _apply(self, device_id: str, signed: SignedCheckpoint, proof: Proof | None,
               note: bytes) -> str:
        index = self._svc.index
        size = signed.checkpoint.size
        deadline = time.monotonic() + self._gap_wait
        while True:
            held = index.checkpoint(device_id)
            verdict = judge(held, signed, proof)
            if verdict.action == "hold":
                new = CheckpointRow(size, base64.b64encode(signed.checkpoint.root).decode(),
                                    note.decode())
                if index.advance_checkpoint(device_id, held, new, utc_now()):
                    if proof is not None:  # verified by judge() from the held size
                        keep_consistency(index, device_id, held, signed, proof.hashes)
                    return "hold"
                continue  # another process advanced it meanwhile: judge against the new state
            if verdict.action == "wait" and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            break
        if verdict.action == "fork":
            raise_fork(self._svc, device_id, held, kind="log-fork", listeners=[self.publish],
                       detail=f"monitor: {verdict.detail}", checkpoint_size=size)
        elif verdict.action != "same":
            kind = "checkpoint-behind" if verdict.action == "behind" else "checkpoint-gap"
            index.event(utc_now(), device_id, kind, f"monitor: {verdict.detail}")
        return verdict.action


def monitor_context(svc: StationService, listeners: list[AlarmPublisher]) -> Callable[[Any], Any]:
    """An aiohttp cleanup context running the monitor for the app's lifetime; its ``publish``
    joins ``listeners`` (the witness endpoint's alarms go out over MQTT too)."""

    async def ctx(_app: Any) -> Any:
        cfg = svc.cfg.mqtt
        monitor = CheckpointMonitor(svc, cfg, client_id=cfg.client_id or
                                    f"{svc.station_id}-monitor")
        listeners.append(monitor.publish)
        monitor.start()
        log.info("checkpoint monitor: %s as %s", subscription(cfg.share_group), cfg.url)
        yield
        listeners.remove(monitor.publish)
        await asyncio.to_thread(monitor.stop)

    return ctx
