"""The recorder's status: one JSON snapshot (``ctl status``) and one terminal line.

Both are built from the same snapshot so what a lab script reads and what an officer's
technician sees on the console cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.ports import Capture, RecorderView

__all__ = ["CommandState", "StatusSources", "status_line", "status_snapshot"]


class CommandState(Protocol):
    """What the command set knows that status reports: who carries the unit, why the last
    recording stopped, the active matter."""

    @property
    def officer_id(self) -> str: ...

    @property
    def stop_reason(self) -> str | None: ...

    def matter_for_manifest(self) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class StatusSources:
    """Where each part of the snapshot comes from. ``sections`` are the optional parts
    (clock, battery, storage, fleet link, offload, witnesses), merged in order."""

    device_id: str
    profile: str
    hardware: str
    data_dir: Path
    recorder: RecorderView
    commands: CommandState
    capture: Capture
    queue_depth: Callable[[], int]
    queue_max: Callable[[], int]
    camera_stalls: Callable[[], int]
    log_size: Callable[[], int]
    sections: Sequence[Callable[[], Mapping[str, Any]]] = field(default_factory=tuple)


def status_snapshot(src: StatusSources) -> dict[str, Any]:
    """Everything a bench, a script or the fleet needs to know right now (controller thread)."""
    rec = src.recorder
    cam, mic = src.capture.camera, src.capture.microphone
    snap: dict[str, Any] = {
        "device_id": src.device_id,
        "officer_id": src.commands.officer_id,
        "profile": src.profile,
        "hardware": src.hardware,
        "state": rec.state,
        "fault": rec.fault_reason,
        "recording_id": rec.recording_id,
        "stop_reason": src.commands.stop_reason,
        "preroll_s": round(rec.preroll.span_s, 3),
        "preroll_bytes": rec.preroll.nbytes,
        "segments_sealed": len(rec.sealed),
        # file work (writes, fsyncs, seals) decided but not yet done by the segment worker: a
        # stop's last seal is done once this is 0 in standby
        "file_backlog": rec.backlog,
        "frames_delivered": cam.frames_delivered if cam else 0,
        "frames_dropped": cam.frames_dropped if cam else 0,
        "frames_gap": rec.frames_gap,
        "audio_overflows": mic.overflows if mic else 0,
        "queue_depth": src.queue_depth(),
        "queue_max": src.queue_max(),
        "camera_stalls": src.camera_stalls(),
        "matter": src.commands.matter_for_manifest(),
        "log_size": src.log_size(),
        "data_dir": str(src.data_dir),
    }
    for section in src.sections:
        snap.update(section())
    return snap


def _hm(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "--"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def status_line(s: dict[str, Any], *, started: float | None = None) -> str:
    """``● REC 00:01:23 | pre 30s | GPS 3D 1s | BAT 87% 3h10m | DISK 12h00m | MQTT up``."""
    state = s.get("state", "?")
    mark = {"recording": "● REC", "standby": "○ BUF", "stopping": "◐ STOP", "fault": "✖ FAULT"}
    head = mark.get(state, state)
    if state == "recording" and started is not None:
        el = int(time.monotonic() - started)
        head += f" {el // 3600:02d}:{el % 3600 // 60:02d}:{el % 60:02d}"
    gps = f"GPS {s.get('gps_mode', 0)}D" if s.get("gps_mode", 0) >= 2 else "GPS --"
    if "gps_age_s" in s and s.get("gps_mode", 0) >= 2:
        gps += f" {s['gps_age_s']}s"
    bat = f"BAT {s['battery_pct']}%" if "battery_pct" in s else "BAT --"
    bat += f" {_hm(s.get('battery_recording_s'))}"
    disk = f"DISK {_hm(s.get('storage_recording_s'))}"
    link = f"MQTT {'up' if s.get('mqtt_connected') else 'down'}" if "mqtt_connected" in s else ""
    parts = [head, f"pre {s.get('preroll_s', 0):.0f}s", gps, bat, disk, f"CLK {s.get('clock_source')}"]
    if link:
        parts.append(link)
    if s.get("fault"):
        parts.append(f"fault: {s['fault']}")
    return " | ".join(parts)
