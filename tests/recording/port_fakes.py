"""Fakes of the recorder's ports (:mod:`agent.ports`): enough to build a :class:`CommandSet` or
a :class:`Supervisor` in a test with no thread, no camera and no disk, and to see what they did.

Each fake records what it was asked in a list of calls, and is steered by plain attributes
(``recorder.state``, ``battery.admission``, ``storage.verdicts``...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.command.command_set import CommandPorts, CommandSet
from agent.command.overrides import LiveConfig
from agent.config import parse_config
from agent.matters.catalogue import MatterCatalogue
from agent.ports import Capture
from agent.power.battery_policy import Admission, BatteryVerdict
from agent.recording.control import RecordingControl
from agent.recording.controller import Handler, Request
from agent.storage.eviction import EvictionPlan, SealedSegment
from agent.storage.space_policy import StorageVerdict
from agent.upkeep.reactions import Supervised, Supervisor
from agent.upkeep.watches import FrameWatchdog


class FakePreRoll:
    def __init__(self, packets: int = 30) -> None:
        self.packets = packets
        self.span_s, self.nbytes = 1.0, 1000

    def __len__(self) -> int:
        return self.packets

    def resize(self, seconds: float) -> None:
        self.span_s = seconds


class FakeRecorder:
    """The recorder's state machine reduced to its states and what it was told."""

    def __init__(self, state: str = "standby") -> None:
        self.state = state
        self.fault_reason: str | None = None
        self.recording_id: str | None = "r1" if state == "recording" else None
        self.preroll = FakePreRoll()
        self.sealed: list[Any] = []
        self.frames_gap = 0
        self.calls: list[tuple[str, Any]] = []
        self.flags: list[str] = []

    def start(self, *, reason: str = "button", flags: list[str] | None = None) -> str:
        self.calls.append(("start", reason))
        self.flags = list(flags or [])
        self.state, self.recording_id = "recording", "r1"
        return "r1"

    def stop(self, *, reason: str = "button") -> None:
        self.calls.append(("stop", reason))
        self.state = "stopping"

    def bookmark(self, label: str, *, item: str | None = None, mono_us: int | None = None,
                 extra: dict[str, Any] | None = None) -> bool:
        self.calls.append(("bookmark", label))
        return self.state == "recording"

    def fault(self, reason: str) -> None:
        self.calls.append(("fault", reason))
        self.state, self.fault_reason = "fault", reason

    def clear_fault(self) -> None:
        self.calls.append(("clear_fault", None))
        if self.state == "fault":
            self.state, self.fault_reason = "standby", None

    def set_segment_s(self, seconds: float) -> None:
        self.calls.append(("segment_s", seconds))

    def tick(self, now_mono_us: int) -> None:
        pass

    def drain(self) -> None:
        self.calls.append(("drain", None))


class FakeIndicators:
    def __init__(self) -> None:
        self.covert = False
        self.calls: list[str] = []

    def show(self, state: str, *, warning: bool | None = None) -> None:
        self.calls.append(f"show:{state}" + (":warning" if warning else ""))

    def started(self, now: float) -> None:
        self.calls.append("started")

    def stopped(self) -> None:
        self.calls.append("stopped")

    def bookmark(self) -> None:
        self.calls.append("bookmark")

    def refused(self) -> None:
        self.calls.append("refused")

    def warning(self) -> None:
        self.calls.append("warning")

    def matter_selected(self, position: int) -> None:
        self.calls.append(f"matter:{position}")

    def set_covert(self, on: bool) -> bool:
        previous, self.covert = self.covert, on
        return previous

    def set_reminder(self, seconds: float) -> None:
        self.calls.append(f"reminder:{seconds}")

    def tick(self, now: float) -> None:
        pass


class FakeStore:
    """The evidence store's operations; ``log_event`` keeps what would be logged."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, dict[str, Any]]] = []
        self.recovered: list[Any] = []
        self.evicted: list[Path] = []

    @property
    def log(self) -> Any:
        raise AssertionError("the evidence log itself is not faked")

    def log_event(self, kind: str, **fields: Any) -> None:
        self.logged.append((kind, fields))

    def recover(self) -> list[Any]:
        return self.recovered

    def accept_receipt(self, receipt: Any, *, origin: Any) -> int:
        return 0

    def acknowledged(self, device_seq: int) -> bool:
        return False

    def leaf_index(self, device_seq: int) -> int | None:
        return None

    def evict(self, segment_path: Path) -> int:
        self.evicted.append(segment_path)
        return 1

    def key_rotations(self) -> list[bytes]:
        return []

    def kinds(self) -> list[str]:
        return [k for k, _ in self.logged]

    def commands(self) -> list[tuple[str, str]]:
        """(command, outcome) of every logged ``command`` event."""
        return [(f["command"], f["outcome"]) for k, f in self.logged if k == "command"]


class FakeBattery:
    def __init__(self) -> None:
        self.admission = Admission(True)
        self.verdicts: list[BatteryVerdict | None] = []
        self.loads: list[str] = []

    def poll(self, now: float, load: str) -> BatteryVerdict | None:
        self.loads.append(load)
        return self.verdicts.pop(0) if self.verdicts else None

    def can_start(self) -> Admission:
        return self.admission

    def set_warn_s(self, seconds: float) -> None:
        pass

    def telemetry(self) -> dict[str, Any]:
        return {}


class FakeStorage:
    def __init__(self) -> None:
        self.admission = Admission(True)
        self.verdicts: list[StorageVerdict | None] = []
        self.measured_at: list[float] = []
        self.fault: str | None = None

    def poll(self, now: float, *, force: bool = False) -> StorageVerdict | None:
        return self.verdicts.pop(0) if self.verdicts else None

    def can_start(self, now: float) -> Admission:
        self.measured_at.append(now)
        return self.admission

    def set_warn_s(self, seconds: float) -> None:
        pass

    def clear_fault(self) -> None:
        self.fault = None

    def plan_eviction(self, segments: Sequence[SealedSegment], *, now_wall: float,
                      min_age_s: float) -> EvictionPlan | None:
        return None

    def telemetry(self) -> dict[str, Any]:
        return {}


class FakeController:
    """Runs a submitted request at once on the calling thread, as the controller would on its
    own; keeps the handlers and gestures the command set registers."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.gestures: dict[str, Callable[[], None]] = {}

    def handle(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    def on_gesture(self, name: str, action: Callable[[], None]) -> None:
        self.gestures[name] = action

    def submit(self, request: Request) -> Request:
        try:
            request.succeed(self.handlers[request.name](request))
        except Exception as exc:
            request.fail(str(exc) or type(exc).__name__)
        return request

    def call(self, name: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        req = self.submit(Request(name, args))
        return req.result or {}


class FakeMeter:
    def __init__(self) -> None:
        self.paused = 0

    def pause(self) -> None:
        self.paused += 1


class FakeCamera:
    """Counts frames by hand; restarts on request (or fails to)."""

    def __init__(self) -> None:
        self.frames_delivered = 0
        self.frames_dropped = 0
        self.restarts = 0
        self.restart_error: Exception | None = None
        self.officer = ""

    def restart(self, sink: Any) -> None:
        if self.restart_error is not None:
            raise self.restart_error
        self.restarts += 1

    def set_officer(self, officer_id: str) -> None:
        self.officer = officer_id


class FakeMicrophone:
    """An audio stream that can be stopped and started (or fail to start)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.start_error: Exception | None = None
        self.overflows = 0

    def stop(self) -> None:
        self.calls.append("stop")

    def start(self, sink: Any) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.calls.append("start")


@dataclass
class Rig:
    """Recording control, a command set and a supervisor wired to fakes, as :mod:`agent.app`
    wires the real parts."""

    recorder: FakeRecorder = field(default_factory=FakeRecorder)
    indicators: FakeIndicators = field(default_factory=FakeIndicators)
    store: FakeStore = field(default_factory=FakeStore)
    battery: FakeBattery = field(default_factory=FakeBattery)
    storage: FakeStorage = field(default_factory=FakeStorage)
    controller: FakeController = field(default_factory=FakeController)
    meter: FakeMeter = field(default_factory=FakeMeter)
    camera: FakeCamera = field(default_factory=FakeCamera)
    microphone: FakeMicrophone | None = None
    audio_chunks: int = 0
    evictions: list[int] = field(default_factory=list)
    profile: str = "body"
    stall_after_s: float = 5.0
    data_dir: Path = Path("/nonexistent")

    def __post_init__(self) -> None:
        cfg = parse_config({"device": {"profile": self.profile}})
        self.settings = LiveConfig(cfg, self.data_dir)
        self.recording = RecordingControl(
            recorder=self.recorder, indicators=self.indicators, store=self.store,
            storage=self.storage, battery=self.battery, meter=self.meter,
            camera=self.camera, seal_still=lambda *a, **k: {},  # type: ignore[arg-type]
            profile=self.profile)
        self.commands = CommandSet(CommandPorts(
            recorder=self.recorder, recording=self.recording, indicators=self.indicators,
            store=self.store, requests=self.controller,
            settings=self.settings, matters=MatterCatalogue.load(None),
            quick=None, camera=self.camera,  # type: ignore[arg-type]
            status=lambda: {"state": self.recorder.state}))
        self.commands.register(self.controller)  # type: ignore[arg-type]
        self.frame_watchdog = FrameWatchdog(stall_after_s=self.stall_after_s)
        capture = Capture(self.camera, self.microphone,  # type: ignore[arg-type]
                          lambda f: None, lambda c: None, lambda: self.audio_chunks)
        self.supervisor = Supervisor(Supervised(
            recorder=self.recorder, control=self.recording, indicators=self.indicators,
            store=self.store, capture=capture, frame_watchdog=self.frame_watchdog,
            battery=self.battery, storage=self.storage,
            evict=lambda: self.evictions.append(1) or 0, open_append=_no_disk,
            data_dir=Path("/nonexistent"), status=lambda: {}, profile=self.profile,
            stall_after_s=self.stall_after_s))

    def events(self) -> list[str]:
        return [k for k, _ in self.commands.events]


def _no_disk(path: Path) -> Any:
    raise OSError(5, "no disk in this test")
