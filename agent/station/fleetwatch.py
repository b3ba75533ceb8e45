"""``bodycam fleet watch``: a live table of every device on the broker, or a JSON event stream.

The watcher is a back-office tool: it subscribes to ``bodycam/v1/+/#`` with the back-office
certificate, keeps one row per device and verifies each checkpoint's signature against the
public key the device announced in its ``birth`` message (a checkpoint that does not verify,
or arrives before any birth, is shown as ✗).

Threading: single-threaded. paho's network loop runs in the calling thread (``client.loop``),
so the callbacks that update :class:`FleetView` and the redraws never run concurrently.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.log import origin_for
from agent.sync.command_messages import iso_utc
from agent.sync.topics import PREFIX
from agent.sync.transport import TlsSettings, parse_broker_url
from hw.errors import BodycamError, ConfigError

__all__ = ["DeviceRow", "FleetView", "fleet_main", "render_table"]

_CLEAR = "\x1b[H\x1b[2J"
_Handler = Callable[["DeviceRow", dict[str, Any], float], dict[str, Any] | None]
_REDRAW_S = 0.5


@dataclass
class DeviceRow:
    """What the back office knows about one device, from its retained and live messages."""

    device_id: str
    online: bool | None = None
    session: int = 0
    since: float | None = None  # wall-clock seconds of the last online/offline change
    public_key: bytes | None = None
    software: str | None = None
    telemetry: dict[str, Any] = field(default_factory=dict)
    telemetry_at: float | None = None
    checkpoint_size: int | None = None
    checkpoint_ok: bool | None = None
    checkpoint_error: str | None = None
    last_seq: int | None = None
    alarm: str | None = None  # a station's standing evidence alarm (bodycam/v1/<id>/alarm)


class FleetView:
    """Folds MQTT messages into :class:`DeviceRow` s and describes each change as an event."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceRow] = {}

    def apply(self, topic: str, payload: bytes, *, now: float) -> dict[str, Any] | None:
        """Update from one message; returns the JSON event to stream, or None to ignore it."""
        parts = topic.split("/")
        if len(parts) < 4 or "/".join(parts[:2]) != PREFIX:
            return None
        device_id, kind = parts[2], "/".join(parts[3:])
        if kind == "alarm" and not payload:  # a person cleared the retained alarm
            if device_id in self.devices:
                self.devices[device_id].alarm = None
            return {"event": "alarm-cleared", "device_id": device_id}
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return {"event": "malformed", "device_id": device_id, "topic": kind}
        if not isinstance(doc, dict):
            return {"event": "malformed", "device_id": device_id, "topic": kind}
        row = self.devices.setdefault(device_id, DeviceRow(device_id))
        handler = _HANDLERS.get(kind)
        if handler is None:
            if kind.startswith("cmd/") and kind.endswith("/ack"):
                return {"event": "ack", "device_id": device_id, "command": parts[4],
                        "id": doc.get("id"), "status": doc.get("status"),
                        "reason": doc.get("reason")}
            return None
        return handler(row, doc, now)


def _status(row: DeviceRow, doc: dict[str, Any], now: float) -> dict[str, Any] | None:
    session = doc.get("session")
    if not isinstance(session, int) or session < row.session:
        return None  # an older session's Last Will arriving after a newer online
    online = doc.get("state") == "online"
    if online != row.online or session != row.session:
        row.since = _parse_at(doc.get("at")) or now
    row.online, row.session = online, session
    return {"event": "status", "device_id": row.device_id, "state": doc.get("state"),
            "session": session, "cause": doc.get("cause")}


def _birth(row: DeviceRow, doc: dict[str, Any], _now: float) -> dict[str, Any]:
    row.software = str(doc.get("software", ""))[:40] or None
    try:
        key = base64.b64decode(str(doc.get("public_key", "")), validate=True)
    except binascii.Error:
        key = b""
    row.public_key = key if len(key) == 32 else None
    return {"event": "birth", "device_id": row.device_id, "software": row.software,
            "public_key_ok": row.public_key is not None}


def _telemetry(row: DeviceRow, doc: dict[str, Any], now: float) -> dict[str, Any]:
    row.telemetry = doc
    row.telemetry_at = now
    return {"event": "telemetry", "device_id": row.device_id,
            **{k: v for k, v in doc.items() if k != "device_id"}}


def _checkpoint(row: DeviceRow, doc: dict[str, Any], _now: float) -> dict[str, Any]:
    row.last_seq = doc.get("seq") if isinstance(doc.get("seq"), int) else row.last_seq
    ok, error, size = _verify_checkpoint(row, doc.get("note"))
    row.checkpoint_ok, row.checkpoint_error, row.checkpoint_size = ok, error, size
    return {"event": "checkpoint", "device_id": row.device_id, "seq": doc.get("seq"),
            "size": size, "verified": ok, "error": error}


def _alarm(row: DeviceRow, doc: dict[str, Any], _now: float) -> dict[str, Any]:
    """A collection station found a fork, a rollback or a bad signature in this device's log."""
    row.alarm = str(doc.get("kind", "alarm"))[:40]
    return {"event": "alarm", "device_id": row.device_id, "kind": row.alarm,
            "station_id": doc.get("station_id"), "detail": str(doc.get("detail", ""))[:300]}


def _outbox_message(kind: str) -> _Handler:
    def handle(row: DeviceRow, doc: dict[str, Any], _now: float) -> dict[str, Any]:
        seq = doc.get("seq")
        row.last_seq = seq if isinstance(seq, int) else row.last_seq
        event: dict[str, Any] = {"event": kind, "device_id": row.device_id, "seq": seq}
        if kind == "segment" and isinstance(doc.get("manifest"), dict):
            event["device_seq"] = doc["manifest"].get("device_seq")
        if kind == "event" and isinstance(doc.get("event"), dict):
            event["type"] = doc["event"].get("type")
        return event

    return handle


def _state(row: DeviceRow, doc: dict[str, Any], _now: float) -> dict[str, Any]:
    return {"event": "state", "device_id": row.device_id,
            **{k: v for k, v in doc.items() if k != "device_id"}}


_HANDLERS: dict[str, _Handler] = {
    "status": _status,
    "birth": _birth,
    "telemetry": _telemetry,
    "state": _state,
    "checkpoint": _checkpoint,
    "alarm": _alarm,
    "segment": _outbox_message("segment"),
    "event": _outbox_message("event"),
}


def _verify_checkpoint(row: DeviceRow, note: Any) -> tuple[bool, str | None, int | None]:
    if not isinstance(note, str):
        return False, "no checkpoint note", None
    try:
        signed = parse_signed_checkpoint(note.encode())
    except BodycamError as exc:
        return False, str(exc), None
    size = signed.checkpoint.size
    if row.public_key is None:
        return False, "no device public key (birth) seen yet", size
    if signed.checkpoint.origin != origin_for(row.device_id):
        return False, f"origin {signed.checkpoint.origin!r} is not this device's log", size
    try:
        signed.verify([row.public_key])
    except BodycamError as exc:
        return False, str(exc), size
    return True, None, size


def _parse_at(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


# --- rendering ------------------------------------------------------------------------------
_COLUMNS = ("DEVICE", "STATUS", "FOR", "REC", "BATT", "LEFT", "STORE", "GPS", "OUTBOX",
            "OFFLOAD", "CKPT")


def render_table(view: FleetView, *, now: float) -> str:
    """The fleet as a fixed-width text table (one line per device, sorted by id)."""
    rows = [_COLUMNS]
    for device_id in sorted(view.devices):
        row = view.devices[device_id]
        t = row.telemetry
        rows.append((
            f"{device_id} ALARM:{row.alarm}" if row.alarm else device_id,
            "online" if row.online else "offline" if row.online is False else "?",
            _duration(now - row.since) if row.since else "-",
            _recording(t),
            f"{t['battery_pct']}%" if isinstance(t.get("battery_pct"), int) else "-",
            _duration(t["battery_runtime_s"]) if isinstance(t.get("battery_runtime_s"), int)
            else "-",
            _duration(t["storage_recording_s"]) if isinstance(t.get("storage_recording_s"), int)
            else "-",
            _gps(t, now - row.telemetry_at if row.telemetry_at else 0.0),
            str(t["outbox_depth"]) if isinstance(t.get("outbox_depth"), int) else "-",
            _offload(t),
            _checkpoint_cell(row),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows) + "\n"


def _recording(t: dict[str, Any]) -> str:
    if isinstance(t.get("recording"), bool):
        return "● REC" if t["recording"] else "idle"
    return str(t.get("recorder_state", "-"))[:10]


def _gps(t: dict[str, Any], telemetry_age: float) -> str:
    if t.get("gps_fix") is False:
        return "no fix"
    if isinstance(t.get("gps_age_s"), int):
        return _duration(t["gps_age_s"] + telemetry_age)
    return "-"


def _offload(t: dict[str, Any]) -> str:
    """Segments not yet receipted by a station and the oldest's wait (``2/5m``); ``!`` when
    the uploader cannot make progress (unreachable, station full, refused)."""
    backlog = t.get("offload_backlog")
    if not isinstance(backlog, int):
        return "-"
    mark = "!" if t.get("offload_state") in ("unreachable", "station-full", "refused") else ""
    oldest = t.get("offload_oldest_s")
    age = f"/{_duration(oldest)}" if backlog and isinstance(oldest, int) else ""
    return f"{mark}{backlog}{age}"


def _checkpoint_cell(row: DeviceRow) -> str:
    if row.checkpoint_ok is None:
        return "-"
    mark = "✓" if row.checkpoint_ok else "✗"
    return f"{mark} #{row.checkpoint_size}" if row.checkpoint_size is not None else mark


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


# --- command line ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bodycam fleet", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    watch = sub.add_parser("watch", help="live table of every device (or --json events)")
    watch.add_argument("--broker", default="mqtts://localhost:8883",
                       help="mqtts://host[:port] (default %(default)s)")
    watch.add_argument("--cafile", type=Path, help="CA that signed the broker certificate")
    watch.add_argument("--cert", type=Path, help="back-office client certificate")
    watch.add_argument("--key", type=Path, help="back-office client key")
    watch.add_argument("--allow-plaintext", action="store_true",
                       help="accept an mqtt:// broker (lab use only)")
    watch.add_argument("--json", action="store_true", help="one JSON object per line per event")
    watch.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                       help="exit after this long (default: until interrupted)")
    return parser


def fleet_main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Entry point of ``bodycam fleet``; returns the process exit status."""
    args = _parser().parse_args(argv)
    stream = out or sys.stdout
    tls = None
    if args.cafile or args.cert or args.key:
        if not (args.cafile and args.cert and args.key):
            print("bodycam fleet: --cafile, --cert and --key go together", file=sys.stderr)
            return 2
        tls = TlsSettings(args.cafile, args.cert, args.key)
    try:
        broker = parse_broker_url(args.broker, tls=tls, allow_plaintext=args.allow_plaintext)
    except ConfigError as exc:
        print(f"bodycam fleet: {exc}", file=sys.stderr)
        return 2
    watcher = _Watcher(stream, json_mode=args.json, tty=stream.isatty())
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         client_id=f"fleet-watch-{uuid.uuid4().hex[:12]}")
    if tls is not None and broker.tls:
        client.tls_set(ca_certs=str(tls.cafile), certfile=str(tls.certfile),
                       keyfile=str(tls.keyfile))
    client.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/+/#", qos=1)
    client.on_message = lambda _c, _u, msg: watcher.message(msg.topic, bytes(msg.payload))
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        print(f"bodycam fleet: cannot connect to {args.broker}: {exc}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + args.duration if args.duration is not None else None
    try:
        while deadline is None or time.monotonic() < deadline:
            client.loop(timeout=0.25)
            watcher.tick()
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
    return 0


class _Watcher:
    """Routes messages to the view and the output (JSON lines or the redrawn table)."""

    def __init__(self, out: TextIO, *, json_mode: bool, tty: bool) -> None:
        self.view = FleetView()
        self._out = out
        self._json = json_mode
        self._tty = tty
        self._dirty = True
        self._drawn = 0.0

    def message(self, topic: str, payload: bytes) -> None:
        event = self.view.apply(topic, payload, now=time.time())
        if event is None:
            return
        if self._json:
            event = {"at": iso_utc(datetime.now(UTC)), **event}
            self._out.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
            self._out.flush()
        self._dirty = True

    def tick(self) -> None:
        if self._json:
            return
        now = time.monotonic()
        # On a terminal redraw in place (durations tick); otherwise print only on change.
        if (self._dirty or self._tty) and now - self._drawn >= _REDRAW_S:
            prefix = _CLEAR if self._tty else ""
            self._out.write(prefix + render_table(self.view, now=time.time()))
            if not self._tty:
                self._out.write("\n")
            self._out.flush()
            self._dirty = False
            self._drawn = now
