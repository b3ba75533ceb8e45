"""The recorder's status: one JSON snapshot (``ctl status``) and one terminal line.

Both are built from the same snapshot so what a lab script reads and what an officer's
technician sees on the console cannot disagree.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.app import Agent

__all__ = ["status_line", "status_snapshot"]


def status_snapshot(a: Agent) -> dict[str, Any]:
    """Everything a bench, a script or the fleet needs to know right now (controller thread)."""
    rec = a.recorder
    cam, mic = a.hw.camera, a.hw.microphone
    snap: dict[str, Any] = {
        "device_id": a.cfg.device.id,
        "officer_id": a.commands.officer_id,
        "profile": a.cfg.device.profile,
        "hardware": a.hw.kind,
        "state": rec.state,
        "fault": rec.fault_reason,
        "recording_id": rec.recording_id,
        "stop_reason": a.commands.stop_reason,
        "preroll_s": round(rec.preroll.span_s, 3),
        "preroll_bytes": rec.preroll.nbytes,
        "segments_sealed": len(rec.sealed),
        "frames_delivered": cam.frames_delivered if cam else 0,
        "frames_dropped": getattr(cam, "frames_dropped", 0) if cam else 0,
        "frames_gap": rec.frames_gap,
        "audio_overflows": mic.overflows if mic else 0,
        "queue_depth": a.controller.queue_depth(),
        "queue_max": a.controller.max_queue,
        "camera_stalls": a.frame_watchdog.stalls,
        "matter": a.commands.matter_for_manifest(),
        "log_size": a.store.log.size,
        "data_dir": str(a.data_dir),
    }
    snap.update(a.time.status())
    if a.power_watch is not None:
        snap.update(a.power_watch.telemetry())
    snap.update(a.storage_watch.telemetry())
    if a.commands.sync is not None:
        snap.update(a.commands.sync.status())
    if a.offloader is not None:
        snap.update(a.offloader.status().fields())
    if a.witness_pool is not None:
        from agent.witnessing import witness_status

        snap["witnesses"] = witness_status(a.witness_pool)
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
