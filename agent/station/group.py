"""Group activation: when a unit starts recording, the station starts its team-mates nearby.

Devices never command each other (DESIGN §4: no device may write ``cmd/``); the station does it,
as the back-office identity of ``[mqtt]``, through the same authorised, audited command path a
dispatcher uses. Each ``cmd/start`` names ``issuer = "station:group-activation"`` and a command
id that names the unit that caused it (``grp.<unit>.<recording id prefix>.<nonce>``); the
device records both in its evidence log's ``command`` entry (origin ``via = mqtt``), and the
station records each activation in its index as events on both devices, so either side shows
which unit's start caused which recording.

Teams are the agency's decision, configured at the station (``[[group.teams]]``); a device's
self-declared ``unit`` is not trusted to decide whom it may start.

The rule (:func:`pick`) is pure: on a ``recording_started`` event from device D, start every
device of D's team(s) that has a fresh fix (reported age plus time since the report
≤ ``max_fix_age_s``) within ``radius_m`` of D's own fresh fix (haversine on the e7 coordinates),
that is not recording and that the station has not commanded within ``cooldown_s``. Never D;
never a stop. A start the station caused does not cascade: an event from a device the station
commanded within ``cooldown_s`` activates nobody; nor does a start queued more than
``max_fix_age_s`` ago (delivered late from the outbox of a unit that was out of coverage).

Subscriptions: telemetry and state of every device (each process keeps its own view), and the
fleet's events through the shared subscription of ``[mqtt] share_group``, so one station process
acts on each start. Cooldowns are per process.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.evidence.ids import is_device_id
from agent.sync.command_messages import iso_utc
from agent.sync.topics import PREFIX

from .station_config import GroupConfig, MqttConfig

__all__ = ["ISSUER", "Fix", "GroupActivation", "Unit", "command_id", "group_context",
           "haversine_m", "pick"]

log = logging.getLogger("bodycam.station.group")

ISSUER = "station:group-activation"
EARTH_RADIUS_M = 6_371_008.8
MAX_MESSAGE_BYTES = 64 * 1024


def haversine_m(lat1_e7: int, lon1_e7: int, lat2_e7: int, lon2_e7: int) -> float:
    """Great-circle distance in metres between two points in 1e-7 degrees."""
    p1, p2 = math.radians(lat1_e7 / 1e7), math.radians(lat2_e7 / 1e7)
    dp, dl = p2 - p1, math.radians((lon2_e7 - lon1_e7) / 1e7)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Fix:
    """A position as last reported: e7 coordinates, the fix's age when reported, and when (the
    station's monotonic clock) the report arrived."""

    lat_e7: int
    lon_e7: int
    age_s: float
    received: float

    def age_at(self, now: float) -> float:
        """How old the fix is at ``now``."""
        return self.age_s + max(0.0, now - self.received)


@dataclass(slots=True)
class Unit:
    """What the station knows of one device."""

    fix: Fix | None = None
    recording: bool = False
    commanded_at: float | None = None  # when the station last sent it a group start


def pick(origin: str, units: Mapping[str, Unit], teams: Mapping[str, Iterable[str]],
         now: float, *, radius_m: float, max_fix_age_s: float, cooldown_s: float) -> list[str]:
    """The devices to start because ``origin`` started recording (see the module docstring)."""
    me = units.get(origin)
    if me is None or me.fix is None or me.fix.age_at(now) > max_fix_age_s:
        return []
    if me.commanded_at is not None and now - me.commanded_at < cooldown_s:
        return []  # its start was ours: no cascade
    mates = sorted({d for members in teams.values() if origin in set(members) for d in members})
    out: list[str] = []
    for dev in mates:
        u = units.get(dev)
        if dev == origin or u is None or u.recording or u.fix is None:
            continue
        if u.commanded_at is not None and now - u.commanded_at < cooldown_s:
            continue
        if u.fix.age_at(now) > max_fix_age_s:
            continue
        if haversine_m(me.fix.lat_e7, me.fix.lon_e7, u.fix.lat_e7, u.fix.lon_e7) <= radius_m:
            out.append(dev)
    return out


def command_id(origin: str, recording_id: str) -> str:
    """A command id naming the unit whose start caused it (the device logs it as the origin);
    within the 64 characters of [A-Za-z0-9._:-] a command id may have."""
    rid = "".join(c for c in recording_id if c.isalnum())[:12] or "none"
    return f"grp.{origin[:40]}.{rid}.{secrets.token_hex(3)}"


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


Recorder = Callable[[str, str, str, str], None]  # (utc, device_id, kind, detail)
Sender = Callable[[str, bytes], None]  # (topic, payload)


@dataclass
class GroupActivation:
    """The station's view of the fleet and the rule applied to it. Thread-safe: MQTT callbacks
    feed it from paho's thread; the clock is injectable for tests."""

    cfg: GroupConfig
    send: Sender
    record: Recorder
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    units: dict[str, Unit] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def teams(self) -> dict[str, list[str]]:
        """Team name → its devices, from the configuration."""
        return {t.name: list(t.devices) for t in self.cfg.teams}

    def message(self, topic: str, payload: bytes) -> list[str]:
        """Take in one device message; the devices commanded because of it (for tests)."""
        parts = topic.split("/")
        if len(parts) != 4 or "/".join(parts[:2]) != PREFIX or not is_device_id(parts[2]):
            return []
        if len(payload) > MAX_MESSAGE_BYTES:
            return []
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return []
        if not isinstance(doc, dict):
            return []
        device, kind = parts[2], parts[3]
        if kind == "telemetry":
            self._telemetry(device, doc)
        elif kind == "state":
            with self._lock:
                self.units.setdefault(device, Unit()).recording = doc.get("state") == "recording"
        elif kind == "event":  # {device_id, seq, event: {type, …}} (schemas/event.json)
            ev = doc.get("event")
            if isinstance(ev, dict) and ev.get("type") == "recording_started":
                rid = ev.get("recording_id")
                if not self._recent(doc.get("queued_at")):
                    log.info("group activation: %s's start queued at %.40r is too old to act on",
                             device, doc.get("queued_at"))
                    return []
                return self.started(device, rid if isinstance(rid, str) else "")
        return []

    def _recent(self, queued_at: Any) -> bool:
        """Whether an event was queued within ``max_fix_age_s``: a start delivered late from a
        device's outbox (it was out of coverage) is history, not a reason to start anyone now."""
        if not isinstance(queued_at, str) or len(queued_at) > 40:
            return False
        try:
            moment = datetime.fromisoformat(queued_at)
        except ValueError:
            return False
        if moment.utcoffset() is None:
            return False
        return abs((self.wall() - moment).total_seconds()) <= self.cfg.max_fix_age_s

    def _telemetry(self, device: str, doc: dict[str, Any]) -> None:
        lat, lon, age = _int(doc.get("gps_lat_e7")), _int(doc.get("gps_lon_e7")), _num(
            doc.get("gps_age_s"))
        with self._lock:
            unit = self.units.setdefault(device, Unit())
            if isinstance(doc.get("recording"), bool):
                unit.recording = doc["recording"]
            if (lat is not None and lon is not None and abs(lat) <= 900_000_000
                    and abs(lon) <= 1_800_000_000 and doc.get("gps_fix") is not False):
                unit.fix = Fix(lat, lon, max(0.0, age or 0.0), self.clock())

    def started(self, origin: str, recording_id: str) -> list[str]:
        """``origin`` started recording ``recording_id``: start its team-mates nearby."""
        with self._lock:
            unit = self.units.setdefault(origin, Unit())
            unit.recording = True
            now = self.clock()
            targets = pick(origin, self.units, self.teams, now, radius_m=self.cfg.radius_m,
                           max_fix_age_s=self.cfg.max_fix_age_s, cooldown_s=self.cfg.cooldown_s)
            for dev in targets:
                self.units[dev].commanded_at = now
        for dev in targets:
            cid = command_id(origin, recording_id)
            utc = iso_utc(datetime.now(UTC))
            body = {"id": cid, "issued_at": utc, "issuer": ISSUER, "args": {}}
            self.send(f"{PREFIX}/{dev}/cmd/start",
                      json.dumps(body, separators=(",", ":")).encode())
            cause = f"{origin} started recording {recording_id or '?'}"
            log.info("group activation: start %s (command %s) because %s", dev, cid, cause)
            self.record(utc, dev, "group-activation",
                        f"cmd/start {cid} issuer {ISSUER}: {cause}")
            self.record(utc, origin, "group-activation-caused",
                        f"recording {recording_id or '?'} started {dev} (command {cid})")
        return targets


def subscriptions(share_group: str) -> list[str]:
    """Every process sees every position and state; the events are shared (one acts)."""
    return [f"{PREFIX}/+/telemetry", f"{PREFIX}/+/state",
            f"$share/{share_group}/{PREFIX}/+/event"]


def group_context(svc: Any) -> Callable[[Any], Any]:
    """An aiohttp cleanup context running group activation for the app's lifetime, with the
    ``[mqtt]`` broker and back-office identity."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from agent.sync.transport import TlsSettings, parse_broker_url

    from .service import utc_now

    async def ctx(_app: Any) -> Any:
        cfg: MqttConfig = svc.cfg.mqtt
        tls = (TlsSettings(Path(cfg.cafile), Path(cfg.certfile) if cfg.certfile else None,
                           Path(cfg.keyfile) if cfg.keyfile else None) if cfg.cafile else None)
        broker = parse_broker_url(cfg.url, tls=tls, allow_plaintext=cfg.allow_plaintext)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                             client_id=f"{cfg.client_id or svc.station_id + '-monitor'}-group")
        if tls is not None and broker.tls:
            client.tls_set(ca_certs=str(tls.cafile),
                           certfile=str(tls.certfile) if tls.certfile else None,
                           keyfile=str(tls.keyfile) if tls.keyfile else None)

        def send(topic: str, payload: bytes) -> None:
            info = client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.error("group activation: %s not sent (%s)", topic, mqtt.error_string(info.rc))

        # Index writes leave paho's network thread (a slow database must not stall the
        # broker connection), in order, on one writer thread.
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-activation")

        def write(utc: str, device: str, kind: str, detail: str) -> None:
            try:
                svc.index.event(utc or utc_now(), device, kind, detail)
            except Exception:  # the command went out; the log line keeps the record
                log.exception("group activation: %s of %s not recorded in the index", kind,
                              device)

        def record(utc: str, device: str, kind: str, detail: str) -> None:
            writer.submit(write, utc, device, kind, detail)

        group = GroupActivation(svc.cfg.group, send, record)

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if getattr(reason, "is_failure", False):
                log.error("group activation: broker refused the connection: %s", reason)
                return
            c.subscribe([(t, 1) for t in subscriptions(cfg.share_group)])

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                group.message(msg.topic, bytes(msg.payload))
            except Exception:  # one bad message must not stop group activation
                log.exception("group activation: %s failed", msg.topic)

        client.on_connect = on_connect
        client.on_subscribe = lambda *_: log.info("group activation: subscribed")
        client.on_message = on_message
        client.reconnect_delay_set(1, 30)
        client.connect_async(broker.host, broker.port, keepalive=30)
        client.loop_start()
        log.info("group activation: %d team(s), radius %g m", len(svc.cfg.group.teams),
                 svc.cfg.group.radius_m)
        yield
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        await asyncio.to_thread(writer.shutdown)  # what was commanded is recorded

    return ctx
