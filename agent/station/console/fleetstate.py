"""The fleet as the console shows it: latest state per unit and bounded history, from MQTT.

:class:`FleetState` folds ``bodycam/v1/<id>/{status,birth,telemetry,state,event,alarm}``
messages into one :class:`Unit` per device. It is pure (the caller passes ``now``), never
raises on a payload, and bounds what one unit can make it hold: today's track and a shift of
battery / storage / bitrate samples, the newest events and alarms. A malformed message is
counted, not kept.

Projected time left: the device's own figures (``battery_recording_s`` /
``battery_runtime_s``, ``storage_recording_s``) when it sends them; otherwise a straight line
through the last half hour of samples. The bitrate series is the device's ``bitrate_bps`` when
sent, else the rate its free storage falls while it records (bytes written, x 8).

Threading: owned by the event loop thread; the MQTT thread hands messages over, never calls
in directly.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from agent.evidence.utc import iso_utc
from agent.sync.topics import PREFIX

__all__ = ["SERIES_POINTS", "TRACK_POINTS", "FleetState", "Unit"]

TRACK_POINTS: Final = 2880     # one fix every 30 s for a day
SERIES_POINTS: Final = 1440    # one telemetry a minute for a day (a shift is 8-12 h)
SHIFT_S: Final = 12 * 3600.0
_EVENTS: Final = 100
_ALARMS: Final = 50
_MAX_PAYLOAD: Final = 64 * 1024
_KINDS: Final = frozenset({"status", "birth", "telemetry", "state", "event", "alarm"})


@dataclass
class Unit:
    """One body camera as the console knows it."""

    device_id: str
    online: bool | None = None
    session: int = -1
    telemetry: dict[str, Any] = field(default_factory=dict)
    telemetry_at: float | None = None
    state: dict[str, Any] = field(default_factory=dict)
    state_at: float | None = None
    model: str | None = None
    track: deque[tuple[float, float, float]] = field(
        default_factory=lambda: deque(maxlen=TRACK_POINTS))
    fix_at: float | None = None
    series: deque[tuple[float, float | None, float | None, float | None]] = field(
        default_factory=lambda: deque(maxlen=SERIES_POINTS))
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_EVENTS))
    alarms: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_ALARMS))

    def row(self, now: float) -> dict[str, Any]:
        """The table and map line of this unit (JSON-ready)."""
        t, s = self.telemetry, self.state
        # Whichever of the two arrived last says whether the unit records.
        recording = s.get("state") == "recording"
        if isinstance(t.get("recording"), bool) and (
                self.state_at is None or (self.telemetry_at or 0) > self.state_at):
            recording = t["recording"]
        pos = self.track[-1] if self.track else None
        matter = s.get("matter")
        return {
            "device_id": self.device_id,
            "online": self.online,
            "officer_id": _text(s.get("officer_id") or t.get("officer_id")),
            "unit": _text(s.get("unit") or t.get("unit")),
            "recording": recording,
            "recorder_state": _text(s.get("state") or t.get("recorder_state")),
            "matter": _text(matter.get("code")) if isinstance(matter, dict) else _text(matter),
            "battery_pct": _num(t.get("battery_pct")),
            "battery_left_s": self._battery_left(recording),
            "storage_free_bytes": _num(t.get("storage_free_bytes")),
            "storage_left_s": self._storage_left(),
            "gps_fix_age_s": (now - self.fix_at) if self.fix_at is not None else None,
            "position": [pos[1], pos[2]] if pos else None,
            "offload": {k: v for k, v in t.items()
                        if k.startswith("offload_") and isinstance(v, int | float | str)},
            "witness": _witness(s.get("witnesses")),
            "alarms": len(self.alarms),
            "last_alarm": self.alarms[-1] if self.alarms else None,
            "seen_s": (now - self.telemetry_at) if self.telemetry_at is not None else None,
        }

    def detail(self, now: float) -> dict[str, Any]:
        """Everything the unit view draws: the row, today's track, the shift's series."""
        day = now - now % 86_400
        return {**self.row(now),
                "track": [[t, la, lo] for t, la, lo in self.track if t >= day],
                "series": [list(p) for p in self.series if p[0] >= now - SHIFT_S],
                "events": list(self.events), "alarm_list": list(self.alarms),
                "state": self.state, "telemetry": self.telemetry}

    def _battery_left(self, recording: bool) -> float | None:
        t = self.telemetry
        for key in (("battery_recording_s", "battery_runtime_s") if recording
                    else ("battery_runtime_s",)):
            own = t.get(key)
            if isinstance(own, int | float) and not isinstance(own, bool):
                return float(own)
        return _extrapolate([(p[0], p[1]) for p in self.series], floor=0.0)

    def _storage_left(self) -> float | None:
        own = self.telemetry.get("storage_recording_s")
        if isinstance(own, int | float):
            return float(own)
        return _extrapolate([(p[0], p[2]) for p in self.series], floor=0.0)


class FleetState:
    """Every unit seen on the broker."""

    def __init__(self) -> None:
        self.units: dict[str, Unit] = {}
        self.malformed = 0
        self.messages = 0

    def apply(self, topic: str, payload: bytes, now: float) -> tuple[str, str] | None:
        """Fold one message in; returns ``(device_id, kind)`` if a unit changed, else None."""
        parts = topic.split("/")
        if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != PREFIX or parts[3] not in _KINDS:
            return None
        self.messages += 1
        device_id, kind = parts[2], parts[3]
        doc = _decode(payload)
        if doc is None or not 1 <= len(device_id) <= 64:
            self.malformed += 1
            return None
        unit = self.units.get(device_id)
        if unit is None:
            unit = self.units[device_id] = Unit(device_id)
        if kind == "status":
            session = doc.get("session")
            if not isinstance(session, int) or session < unit.session:
                return None  # an older session's Last Will after a newer online
            unit.online, unit.session = doc.get("state") == "online", session
        elif kind == "birth":
            unit.model = _text(doc.get("model"))
        elif kind == "telemetry":
            self._telemetry(unit, doc, now)
        elif kind == "state":
            unit.state, unit.state_at = doc, now
        elif kind == "event":
            unit.events.append({"at": _text(doc.get("at")) or _iso(now),
                                "type": _text((doc.get("event") or {}).get("type")
                                              if isinstance(doc.get("event"), dict)
                                              else doc.get("type")),
                                "seq": doc.get("seq") if isinstance(doc.get("seq"), int) else None})
        else:
            unit.alarms.append(_alarm(doc, now))
        return device_id, kind

    @staticmethod
    def _telemetry(unit: Unit, doc: dict[str, Any], now: float) -> None:
        prev_free = unit.series[-1][2] if unit.series else None
        prev_t = unit.series[-1][0] if unit.series else None
        unit.telemetry, unit.telemetry_at = doc, now
        lat, lon = doc.get("gps_lat_e7"), doc.get("gps_lon_e7")
        if isinstance(lat, int) and isinstance(lon, int) and abs(lat) <= 900_000_000 \
                and abs(lon) <= 1_800_000_000 and doc.get("gps_fix") is not False:
            age = doc.get("gps_age_s")
            unit.fix_at = now - (age if isinstance(age, int) and age >= 0 else 0)
            unit.track.append((now, lat / 1e7, lon / 1e7))
        free = _num(doc.get("storage_free_bytes"))
        rate = _num(doc.get("bitrate_bps"))
        if rate is None and free is not None and prev_free is not None and prev_t is not None \
                and now > prev_t and doc.get("recording"):
            rate = max(0.0, (prev_free - free) * 8 / (now - prev_t))
        unit.series.append((now, _num(doc.get("battery_pct")), free, rate))

    def tracks(self, now: float, *, points: int = 300) -> dict[str, list[list[float]]]:
        """Today's track of every unit, thinned to at most ``points`` [lat, lon] each (the
        page extends them from live rows)."""
        day = now - now % 86_400
        out: dict[str, list[list[float]]] = {}
        for device_id, unit in self.units.items():
            pts = [[la, lo] for t, la, lo in unit.track if t >= day]
            if len(pts) > points:
                step = len(pts) / points
                pts = [pts[int(i * step)] for i in range(points - 1)] + [pts[-1]]
            if pts:
                out[device_id] = pts
        return out

    def rows(self, now: float) -> list[dict[str, Any]]:
        """Every unit's row, by device id."""
        return [self.units[k].row(now) for k in sorted(self.units)]


def _decode(payload: bytes) -> dict[str, Any] | None:
    if len(payload) > _MAX_PAYLOAD:
        return None
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=lambda _c: None)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _alarm(doc: dict[str, Any], now: float) -> dict[str, Any]:
    """An alarm as the monitor publishes it; the fields are read leniently (kind/code/type,
    detail/message), shown as text, never interpreted."""
    kind = doc.get("kind") or doc.get("code") or doc.get("type") or "alarm"
    detail = doc.get("detail") or doc.get("message") or ""
    return {"at": _text(doc.get("at") or doc.get("utc")) or _iso(now), "kind": _text(kind),
            "detail": (_text(detail) or "")[:500], "received": now}


def _witness(w: Any) -> str | None:
    """``2/2 ok`` style summary of the unit's witness status (``state.witnesses``)."""
    if not isinstance(w, dict) or not w:
        return None
    ok = sum(1 for v in w.values() if isinstance(v, dict) and not v.get("error"))
    return f"{ok}/{len(w)} ok"


def _extrapolate(points: list[tuple[float, float | None]], *, floor: float) -> float | None:
    """Seconds until a falling quantity reaches ``floor``, by least squares over 30 min."""
    pts = [(t, v) for t, v in points if v is not None]
    if len(pts) < 3:
        return None
    cut = pts[-1][0] - 1800
    pts = [p for p in pts if p[0] >= cut]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt, mv = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    var = sum((p[0] - mt) ** 2 for p in pts)
    if var <= 0:
        return None
    slope = sum((p[0] - mt) * (p[1] - mv) for p in pts) / var
    if slope >= 0:
        return None
    left = (pts[-1][1] - floor) / -slope
    return left if math.isfinite(left) else None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _text(v: Any) -> str | None:
    return str(v)[:200] if isinstance(v, str | int | float) and not isinstance(v, bool) else None


def _iso(t: float) -> str:
    return iso_utc(datetime.fromtimestamp(t, UTC), 3)
