"""The narrow views the recorder's parts have of one another, wired by :mod:`agent.app`.

The command set, the supervisor, the status snapshot, live configuration, eviction and fleet
sync each receive only what they use, typed here, instead of the whole agent: what the
recorder exposes, the officer-facing indicators, the event sink, the evidence store's
operations, the battery and storage watches, the capture devices. So each can be built in a
test from a few fakes (``tests/recording/test_supervisor_rules.py``), and no part imports
the composition root back.

Protocols describe objects the parts call; :class:`Capture`, :class:`HardwareFacts` and
:class:`Bench` are small concrete parts built by the composition root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.evidence.log import EvidenceLog
from agent.evidence.manifest import SignedManifest
from agent.evidence.receipt import Receipt
from agent.power.battery_policy import Admission, BatteryVerdict
from agent.recording.controller import Request
from agent.storage.eviction import EvictionPlan, SealedSegment
from agent.storage.space_policy import StorageVerdict
from hw.audio import AudioSink, Microphone
from hw.camera import Camera, FrameSink, VideoFormat

__all__ = [
    "BatteryWatch", "Bench", "Capture", "EventSink", "EvidenceOps", "FleetLink",
    "HardwareFacts", "Indicators", "Meter", "PreRollView", "RecorderView", "RequestQueue",
    "SpaceWatch",
]


class PreRollView(Sized, Protocol):
    """The pre-roll as others see it: its span and size, resizable live."""

    @property
    def span_s(self) -> float: ...

    @property
    def nbytes(self) -> int: ...

    def resize(self, seconds: float) -> None: ...


class RecorderView(Protocol):
    """What the recorder exposes to commands, supervision and status (controller thread)."""

    @property
    def state(self) -> str: ...

    @property
    def fault_reason(self) -> str | None: ...

    @property
    def recording_id(self) -> str | None: ...

    @property
    def preroll(self) -> PreRollView: ...

    @property
    def sealed(self) -> Sized: ...

    @property
    def frames_gap(self) -> int: ...

    @property
    def backlog(self) -> int: ...

    def start(self, *, reason: str = ..., flags: list[str] | None = ...) -> str: ...

    def stop(self, *, reason: str = ...) -> None: ...

    def bookmark(self, label: str, *, item: str | None = ..., mono_us: int | None = ...,
                 extra: dict[str, Any] | None = ...) -> bool: ...

    def fault(self, reason: str) -> None: ...

    def clear_fault(self) -> None: ...

    def set_segment_s(self, seconds: float) -> None: ...

    def tick(self, now_mono_us: int) -> None: ...

    def drain(self) -> None: ...


class RequestQueue(Protocol):
    """The controller as a place to hand requests to (from any thread)."""

    def submit(self, request: Request) -> Request: ...

    def call(self, name: str, timeout: float = ..., **args: Any) -> dict[str, Any]: ...


class Meter(Protocol):
    """The bitrate meter: paused between recordings so standby does not dilute its rate."""

    def pause(self) -> None: ...


class Indicators(Protocol):
    """LEDs, buzzer and vibration as the officer perceives the recorder (:mod:`agent.recording.feedback`)."""

    @property
    def covert(self) -> bool: ...

    def show(self, state: str, *, warning: bool | None = ...) -> None: ...

    def started(self, now: float) -> None: ...

    def stopped(self) -> None: ...

    def bookmark(self) -> None: ...

    def refused(self) -> None: ...

    def warning(self) -> None: ...

    def matter_selected(self, position: int) -> None: ...

    def set_covert(self, on: bool) -> bool: ...

    def set_reminder(self, seconds: float) -> None: ...

    def tick(self, now: float) -> None: ...


class EventSink(Protocol):
    """Where the recorder's events go (kept for status, sent to the fleet)."""

    def event(self, kind: str, data: dict[str, Any]) -> None: ...


class EvidenceOps(Protocol):
    """The evidence store's operations the running recorder uses beyond sealing."""

    @property
    def log(self) -> EvidenceLog: ...

    def log_event(self, kind: str, **fields: Any) -> Any: ...

    def recover(self) -> list[SignedManifest]: ...

    def accept_receipt(self, receipt: Receipt, *, origin: Mapping[str, Any]) -> int: ...

    def acknowledged(self, device_seq: int) -> bool: ...

    def leaf_index(self, device_seq: int) -> int | None: ...

    def evict(self, segment_path: Path) -> int: ...

    def key_rotations(self) -> list[bytes]: ...


class BatteryWatch(Protocol):
    """The battery as the recorder's policies see it (:class:`agent.upkeep.watches.PowerWatch`)."""

    def poll(self, now: float, load: str) -> BatteryVerdict | None: ...

    def can_start(self) -> Admission: ...

    def set_warn_s(self, seconds: float) -> None: ...

    def telemetry(self) -> dict[str, Any]: ...


class SpaceWatch(Protocol):
    """The evidence disk as the recorder's policies see it (:class:`agent.upkeep.watches.StorageWatch`)."""

    def poll(self, now: float, *, force: bool = ...) -> StorageVerdict | None: ...

    def can_start(self, now: float) -> Admission: ...

    def set_warn_s(self, seconds: float) -> None: ...

    def clear_fault(self) -> None: ...

    def plan_eviction(self, segments: Sequence[SealedSegment], *, now_wall: float,
                      min_age_s: float) -> EvictionPlan | None: ...

    def telemetry(self) -> dict[str, Any]: ...


class FleetLink(Protocol):
    """The device's side of fleet sync as the command set and supervisor use it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def event(self, kind: str, data: dict[str, Any]) -> None: ...

    def segment_sealed(self, signed: SignedManifest) -> None: ...

    def publish_checkpoint(self) -> dict[str, Any]: ...

    def tick(self, now: float, snapshot: dict[str, Any]) -> None: ...

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class HardwareFacts:
    """What the hardware set is, for status and the fleet's birth message."""

    kind: str
    video: VideoFormat | None
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Capture:
    """The capture devices with the sinks they deliver to: what the watchdogs count and
    restart. ``audio_chunks_in`` is the controller's count of audio received."""

    camera: Camera | None
    microphone: Microphone | None
    on_frame: FrameSink
    on_audio: AudioSink
    audio_chunks_in: Callable[[], int]

    def progress(self) -> int:
        """The capture's heartbeat: camera frames, or audio chunks when there is no camera."""
        return self.camera.frames_delivered if self.camera is not None else self.audio_chunks_in()

    def restart_camera(self) -> None:
        """Recover a stalled camera through its own restart (raises if it cannot)."""
        if self.camera is not None:
            self.camera.restart(self.on_frame)

    def restart_microphone(self) -> None:
        """Stop and start the audio stream again (raises if it cannot)."""
        if self.microphone is not None:
            self.microphone.stop()
            self.microphone.start(self.on_audio)


class Bench:
    """The simulator's extras for commands: its button pin and device stimuli. Present only
    on simulated hardware; a real device is built without one, so ``ctl sim`` is refused and
    a ``ctl press`` is a virtual press rather than an edge on a pin."""

    def __init__(self, *, press: Callable[[], None], release: Callable[[], None],
                 stimulate: Callable[[dict[str, Any]], dict[str, Any]],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._press, self._release, self._stimulate = press, release, stimulate
        self._sleep = sleep

    def press_pin(self, hold_s: float) -> None:
        """Drive the simulated button's pin for ``hold_s`` (the real gpiozero edge path),
        then leave the controller a moment to judge the gesture."""
        self._press()
        self._sleep(hold_s)
        self._release()
        self._sleep(0.1)

    def stimulate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Apply a ``sim`` stimulus (``camera stall``, ``battery set 5``...)."""
        return self._stimulate(args)
