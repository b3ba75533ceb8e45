"""Starting and stopping recordings, whoever asks, and reporting what the recorder does.

Every start -- a press, ``bodycam ctl``, MQTT, a trigger, the fixed camera's continuous
recording, the supervisor -- passes the same admission (battery not critical, storage can hold
a segment, recorder not in fault), so a remote start can never do what the button could not;
a refusal is shown to the officer and reported. Every stop records its reason (``stop_reason``
in the status). The recorder's own events become feedback and evidence-log entries here, and
every event goes to the fleet link when there is one.

Used by :mod:`agent.command.command_set` (the handlers) and :mod:`agent.upkeep.reactions` (the
reactions to the world); reaches the parts only through :mod:`agent.ports`. Not thread-safe:
controller thread.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from agent.evidence.manifest import SignedManifest
from agent.ports import (
    BatteryWatch,
    EvidenceOps,
    FleetLink,
    Indicators,
    Meter,
    RecorderView,
    SpaceWatch,
)
from hw.camera import Camera
from hw.errors import RecordingRefused
from hw.still import StillCapture

__all__ = ["RecordingControl"]

log = logging.getLogger(__name__)

_EVENTS_KEPT = 200


class RecordingControl:
    """Admission, start and stop, and the event sink of one recorder.

    ``profile`` is the device profile (``stills`` takes a picture instead of recording);
    ``seal_still`` seals one still picture as a recording (the store port's).
    """

    def __init__(self, *, recorder: RecorderView, indicators: Indicators, store: EvidenceOps,
                 storage: SpaceWatch, battery: BatteryWatch | None, meter: Meter,
                 camera: Camera | None, seal_still: Callable[..., dict[str, Any]],
                 profile: str) -> None:
        self._recorder = recorder
        self._indicators = indicators
        self._store = store
        self._storage = storage
        self._battery = battery
        self._meter = meter
        self._camera = camera
        self._seal_still = seal_still
        self._profile = profile
        self.stop_reason: str | None = None
        self.refusals = 0
        self.events: list[tuple[str, dict[str, Any]]] = []  # the latest, for benches and tests
        self.sync: FleetLink | None = None  # the MQTT link, when enabled

    def admission(self) -> str | None:
        """Why a recording may not start now, or None."""
        if self._battery is not None:
            adm = self._battery.can_start()
            if not adm:
                return adm.reason
        adm = self._storage.can_start(time.monotonic())
        if not adm:
            return adm.reason
        if self._recorder.state == "fault":
            return f"recorder fault: {self._recorder.fault_reason}"
        return None

    def start_recording(self, origin: str, *, flags: list[str] | None = None) -> str:
        """Start (or, with the stills profile, take a picture); raises
        :class:`RecordingRefused` with the admission's reason."""
        if self._profile == "stills":
            return self._still(origin)
        why = self.admission()
        if why is not None:
            self.refusals += 1
            self._indicators.refused()
            self.event("recording_refused", {"reason": why, "origin": origin})
            raise RecordingRefused(f"recording refused: {why}")
        self.stop_reason = None
        return self._recorder.start(reason=origin, flags=flags)

    def _still(self, origin: str) -> str:
        """Stills profile: a press captures one sealed, encrypted picture."""
        cam = self._camera
        if not isinstance(cam, StillCapture):
            raise RecordingRefused("this camera cannot take stills")
        why = self.admission()
        if why is not None:
            self._indicators.refused()
            self.event("recording_refused", {"reason": why, "origin": origin})
            raise RecordingRefused(f"still refused: {why}")
        rid = uuid.uuid4().hex
        manifest = self._seal_still(cam.capture_still(), recording_id=rid, flags=[],
                                    bookmarks=[])
        self._indicators.bookmark()
        self.event("still", {"recording_id": rid, "device_seq": manifest["device_seq"],
                             "origin": origin})
        return rid

    def stop_recording(self, reason: str) -> None:
        """Stop, remembering why (the status reports it)."""
        self.stop_reason = reason
        self._recorder.stop(reason=reason)

    def recorder_event(self, kind: str, data: dict[str, Any]) -> None:
        """Recorder → feedback, log and sync."""
        ind = self._indicators
        if kind == "recording_started":
            ind.started(time.monotonic())
            ind.show("recording")
        elif kind == "recording_stopped":
            ind.stopped()
            ind.show("standby")
            self._meter.pause()
        elif kind == "fault":
            ind.show("fault")
            self._store.log_event("fault", reason=str(data.get("reason")))
        self.event(kind, {k: v for k, v in data.items() if k != "manifest"})

    def segment_sealed(self, signed: SignedManifest) -> None:
        """A segment was sealed: hand its manifest and the checkpoint to sync."""
        if self.sync is not None:
            self.sync.segment_sealed(signed)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Keep the event (the latest 200), log it, send it to the fleet link."""
        self.events.append((kind, data))
        del self.events[:-_EVENTS_KEPT]
        log.info("event %s %s", kind, data)
        if self.sync is not None:
            self.sync.event(kind, data)
