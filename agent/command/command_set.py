"""What each command and gesture does, and how the recorder reacts to the world.

Every way of driving the recorder -- the button's gestures, ``bodycam ctl``, MQTT ``cmd/*`` --
ends in one handler here, run on the controller thread. Starting and stopping go through
:class:`~agent.recording.control.RecordingControl`, whose admission is the same whatever asked
(battery critical, storage cannot hold a segment), so a remote start can never do what the
button could not.

What the recorder does about the world on its own (battery, storage, stalls) is in
:mod:`agent.upkeep.reactions` (its stops are logged there as ``low_battery_shutdown`` /
``storage_full`` events).

Every command that changes evidence or the recording (``AUDITED``: start, stop, matter, mark,
officer, config_set, ack, covert) is appended to the evidence log as a ``command`` event naming
its origin and whether it ``succeeded`` or was ``refused`` (:mod:`agent.command.audit`), so a
court can see who stopped a recording, and who tried to. Only commands that reach a handler are
logged: MQTT messages that are malformed, stale or replayed are refused earlier by
:mod:`agent.sync.inbox` and never touch the log, which keeps it bounded against a flood.

Each part is reached through a narrow port (:class:`CommandPorts`), never the whole agent.
Not thread-safe: handlers run on the controller thread; :meth:`respond` (control socket
threads) only submits requests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.command.audit import CommandAudit
from agent.command.overrides import LiveConfig
from agent.command.receipts import accept_receipts
from agent.matters.catalogue import MatterCatalogue
from agent.matters.quick import QuickList
from agent.ports import Bench, EvidenceOps, FleetLink, Indicators, RecorderView, RequestQueue
from agent.recording.control import RecordingControl
from agent.recording.controller import Controller, Request
from agent.sync.command_messages import DEFAULT_CONFIG_ALLOWLIST
from agent.triggers import Activation, decide
from hw.camera import Camera
from hw.errors import CommandRejected, MatterError, RecorderError, RecordingRefused

ALLOWED_REMOTE_KEYS = frozenset(DEFAULT_CONFIG_ALLOWLIST)
AUDITED = frozenset({"start", "stop", "matter", "mark", "officer", "config_set", "ack",
                     "covert"})

__all__ = ["AUDITED", "CommandPorts", "CommandSet"]

_MAX_TEXT = 200

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandPorts:
    """What the command handlers act on; ``bench`` only on simulated hardware."""

    recorder: RecorderView
    recording: RecordingControl
    indicators: Indicators
    store: EvidenceOps
    requests: RequestQueue
    settings: LiveConfig
    matters: MatterCatalogue
    quick: QuickList | None
    camera: Camera | None
    status: Callable[[], dict[str, Any]]
    bench: Bench | None = None


class CommandSet:
    """Handlers for one recorder."""

    def __init__(self, ports: CommandPorts) -> None:
        self.p = ports
        self.audit = CommandAudit(ports.store)
        cfg = ports.settings.cfg
        self.officer_id = cfg.device.officer_id
        self.matter: dict[str, Any] | None = (
            ports.matters.lookup(cfg.matters.default) if cfg.matters.default else None)
        self.rec = ports.recording

    @property
    def stop_reason(self) -> str | None:
        """Why the last recording stopped (None while one runs)."""
        return self.rec.stop_reason

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """The latest events (for benches and tests)."""
        return self.rec.events

    @property
    def sync(self) -> FleetLink | None:
        """The fleet link, when MQTT is enabled."""
        return self.rec.sync

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Report an event (kept, logged, sent to the fleet)."""
        self.rec.event(kind, data)

    # --- wiring -----------------------------------------------------------------------------
    def register(self, c: Controller) -> None:
        """Install handlers and gestures on the controller."""
        for name in ("start", "stop", "press", "hold", "bookmark", "status", "matter", "mark",
                     "ack", "checkpoint", "sim", "shutdown", "officer", "config_set",
                     "covert"):
            handler = getattr(self, f"cmd_{name}")
            c.handle(name, self.audit.wrap(name, handler) if name in AUDITED else handler)
        c.on_gesture("click", lambda: self._gesture("click"))
        c.on_gesture("double", lambda: self._gesture("double"))
        c.on_gesture("hold", lambda: self._gesture("hold"))
        c.on_gesture("triple", lambda: self._gesture("triple"))
        c.on_gesture("double_hold", lambda: self._gesture("double_hold"))

    def started(self) -> None:
        """The pipeline runs: connect to the fleet if configured."""
        if self.sync is not None:
            self.sync.start()

    def close(self) -> None:
        """Release what the command set owns (after the controller stopped)."""
        if self.sync is not None:
            self.sync.stop()

    def respond(self, cmd: str, args: dict[str, Any],
                peer: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Control-socket entry point (runs on a socket thread); ``peer`` is the caller's
        ``uid``/``pid`` from the socket's credentials, recorded as the command's origin."""
        if cmd in ("press", "hold") and self.p.bench is not None and not args.get("virtual"):
            return self._sim_button(cmd, self.p.bench)  # the simulated pin: logged as the button
        req = self.p.requests.submit(Request(cmd, args, origin="ctl",
                                             origin_detail=dict(peer or {})))
        if not req.wait(30):
            return {"ok": False, "error": f"{cmd}: no answer from the controller within 30 s"}
        if req.error is not None:
            return {"ok": False, "error": req.error}
        return {"ok": True, "result": req.result or {}}

    def _sim_button(self, cmd: str, bench: Bench) -> dict[str, Any]:
        """Drive the simulated button's pin, exercising the real gpiozero edge path."""
        bench.press_pin(self.p.settings.cfg.recording.stop_hold_s + 0.3 if cmd == "hold" else 0.08)
        snap = self.p.requests.call("status")
        return {"ok": True, "result": snap}

    # --- gestures ---------------------------------------------------------------------------
    def _gesture(self, name: str, origin: Mapping[str, Any] | None = None) -> None:
        """Standby: click starts, hold picks the next matter. Recording: double press
        bookmarks, triple press picks the next matter, hold stops."""
        state = self.p.recorder.state
        where = dict(origin or {"via": "button"}, gesture=name)
        via = str(where["via"])
        try:
            if name in ("click", "press") and state in ("standby", "stopping"):
                self.audit.act("start", {}, where, lambda: self._start_result(via))
            elif name == "double" and state == "recording":
                self.p.recorder.bookmark("button")
                self.p.indicators.bookmark()
            elif name == "hold" and state == "recording" and self.p.settings.cfg.device.profile != "fixed":
                self.audit.act("stop", {}, where, lambda: self._stop_result(via))
            elif (name == "hold" and state == "standby") or (name == "triple" and state == "recording"):
                self._cycle_matter(where)
            elif name == "double_hold":
                on = not self.p.indicators.covert
                self.audit.act("covert", {"on": on}, where, lambda: self._covert_result(on))
        except RecordingRefused as exc:
            log.warning("%s", exc)

    def _cycle_matter(self, origin: Mapping[str, Any]) -> None:
        quick = self.p.quick
        if quick is None:
            return
        step = quick.next_after(self.matter["code"] if self.matter else None)
        if step is None:
            return
        self.audit.act("matter", {"code": step.code}, origin,
                       lambda: self._matter_result(step.code, str(origin["via"])))
        self.p.indicators.matter_selected(step.position)

    # --- recording --------------------------------------------------------------------------
    def _start_result(self, origin: str, *, flags: list[str] | None = None) -> dict[str, Any]:
        rid = self.rec.start_recording(origin, flags=flags)
        return {"recording_id": rid, "state": self.p.recorder.state}

    def _stop_result(self, reason: str) -> dict[str, Any]:
        rid = self.p.recorder.recording_id if self.p.recorder.state == "recording" else None
        self.rec.stop_recording(reason)
        return {"recording_id": rid, "state": self.p.recorder.state}

    def cmd_start(self, req: Request) -> dict[str, Any]:
        """Start recording (remote or ctl)."""
        return self._start_result(req.origin)

    def cmd_stop(self, req: Request) -> dict[str, Any]:
        """Stop recording."""
        return self._stop_result(str(req.args.get("reason", req.origin))[:_MAX_TEXT])

    def cmd_press(self, req: Request) -> dict[str, Any]:
        """A virtual short press (same meaning as the button's)."""
        self._gesture("press", req.origin_record)
        return self.cmd_status(req)

    def cmd_hold(self, req: Request) -> dict[str, Any]:
        """A virtual hold."""
        self._gesture("hold", req.origin_record)
        return self.cmd_status(req)

    def cmd_bookmark(self, req: Request) -> dict[str, Any]:
        """Bookmark the current moment (optionally a checklist item)."""
        label = str(req.args.get("label", "bookmark"))[:128]
        item = req.args.get("item") or req.args.get("checklist_item")
        if item:  # a bookmark that ticks a checklist item is a checklist mark with a note
            return self._mark(str(item), note=label)
        if not self.p.recorder.bookmark(label):
            raise CommandRejected("not recording: nothing to bookmark")
        self.p.indicators.bookmark()
        return {"bookmarked": label}

    def cmd_mark(self, req: Request) -> dict[str, Any]:
        """Mark a checklist item of the active matter."""
        item = req.args.get("item")
        if not isinstance(item, str) or not item:
            raise CommandRejected("mark needs an item code")
        return self._mark(item)

    def _mark(self, item: str, *, note: str | None = None) -> dict[str, Any]:
        if self.matter is not None and item not in self.matter.get("checklist_codes", [item]):
            raise CommandRejected(f"{item!r} is not on the checklist of {self.matter['code']}")
        extra = {"note": note} if note and note != item else None
        if not self.p.recorder.bookmark(f"checklist:{item}", item=item, extra=extra):
            raise CommandRejected("not recording: nothing to mark")
        self.p.indicators.bookmark()
        return {"marked": item}

    def cmd_matter(self, req: Request) -> dict[str, Any]:
        """Assign the enforcement matter of the current/next recording."""
        code = req.args.get("code")
        if not isinstance(code, str) or not code:
            raise CommandRejected("matter needs a code")
        return self._matter_result(code, req.origin)

    def _matter_result(self, code: str, origin: str) -> dict[str, Any]:
        previous = self.matter["code"] if self.matter else None
        return {"matter": self._set_matter(code, origin=origin), "previous": previous}

    def _set_matter(self, code: str, *, origin: str) -> dict[str, Any]:
        try:
            entry = self.p.matters.lookup(code)
        except MatterError as exc:
            raise CommandRejected(str(exc)) from None
        code = entry["code"]
        previous = self.matter["code"] if self.matter else None
        self.matter = entry
        if self.p.recorder.state == "recording":
            self.p.recorder.bookmark(f"matter:{code}", item=None, extra={"previous": previous})
            self.p.store.log_event("matter_change", recording_id=self.p.recorder.recording_id,
                                   previous=previous, matter=code, origin=origin)
        self.event("matter", {"code": code, "previous": previous, "origin": origin})
        return self.matter_for_manifest() or {}

    def matter_for_manifest(self) -> dict[str, Any] | None:
        """The matter as the manifest records it."""
        if self.matter is None:
            return None
        return {k: v for k, v in self.matter.items() if k != "checklist_codes"}

    def check_matter(self, code: str) -> None:
        """Refuse a matter code the catalogue does not know (before a default is changed)."""
        if code:
            try:
                self.p.matters.lookup(code)
            except MatterError as exc:
                raise CommandRejected(str(exc)) from None

    def default_matter(self, code: str) -> None:
        """A new default matter (live configuration): it becomes the active matter only when
        none is chosen; an explicit choice stays."""
        if code and self.matter is None:
            self.matter = self.p.matters.lookup(code)

    def cmd_officer(self, req: Request) -> dict[str, Any]:
        """Assign the officer carrying the unit (shift handover)."""
        previous = self.officer_id
        return {"officer_id": self.set_officer(str(req.args.get("id", ""))[:64]),
                "previous": previous}

    def set_officer(self, officer: str) -> str:
        """Officer id for manifests and the picture overlay."""
        self.officer_id = officer
        if self.p.camera is not None:
            self.p.camera.set_officer(officer)
        return officer

    def cmd_config_set(self, req: Request) -> dict[str, Any]:
        """Change an allow-listed setting (validated, applied live, persisted)."""
        key = req.args.get("key")
        if not isinstance(key, str) or key not in ALLOWED_REMOTE_KEYS:
            raise CommandRejected(f"{key!r} cannot be set remotely; allowed: "
                                  f"{', '.join(sorted(ALLOWED_REMOTE_KEYS))}")
        previous = self.p.settings.value(key)
        return {**self.p.settings.set(key, req.args.get("value")), "previous": previous}

    def cmd_ack(self, req: Request) -> dict[str, Any]:
        """Station receipts (``{"receipts": [envelope, …]}``): each one that verifies is logged
        as ``acknowledged`` and makes its segment evictable; the answer says, per receipt,
        whether it was accepted (with its log index) or refused and why."""
        return accept_receipts(self.p.store, req.args, req.origin_record)

    def cmd_checkpoint(self, req: Request) -> dict[str, Any]:
        """The latest signed checkpoint (and, with sync, publish it with a consistency proof)."""
        out: dict[str, Any] = {"checkpoint": self.p.store.log.checkpoint().decode(),
                               "size": self.p.store.log.size}
        if self.sync is not None:
            out["published"] = self.sync.publish_checkpoint()
        return out

    def cmd_covert(self, req: Request) -> dict[str, Any]:
        """Covert mode on or off (``{"on": true}``): LEDs dark, buzzer silent, one discreet
        vibration per event (:mod:`agent.recording.feedback`)."""
        on = req.args.get("on")
        if not isinstance(on, bool):
            raise CommandRejected("covert needs on: true or false")
        return self._covert_result(on)

    def _covert_result(self, on: bool) -> dict[str, Any]:
        previous = self.p.indicators.set_covert(on)
        self.event("covert", {"on": on, "previous": previous})
        return {"covert": on, "previous": previous}

    def cmd_status(self, req: Request) -> dict[str, Any]:
        """A JSON snapshot of the recorder."""
        return self.p.status()

    def cmd_sim(self, req: Request) -> dict[str, Any]:
        """Stimulate a simulated device (``sim camera stall``, ``sim battery set 5``...)."""
        if self.p.bench is None:
            raise CommandRejected("sim stimuli exist only with --hw sim")
        return self.p.bench.stimulate(dict(req.args))

    def cmd_shutdown(self, req: Request) -> dict[str, Any]:
        """Seal what is open and log the shutdown (agent exit)."""
        rec = self.p.recorder
        if rec.state in ("recording", "stopping"):
            self.rec.stop_recording("shutdown")
            rec.tick(10**18)  # do not wait for the audio tail: the devices are stopping
            rec.drain()  # the last seal is logged before the shutdown event
        self.p.store.log_event("shutdown", reason=str(req.args.get("reason", "requested")))
        return {}

    # --- activation triggers (agent.triggers) --------------------------------------------------
    def trigger(self, act: Activation) -> None:
        """A trigger fired: start as a press would (same admission, same log), or bookmark;
        never stop. The started segment is flagged ``trigger:<name>``."""
        where = {"via": "trigger", "name": act.name, "pin": act.pin}
        what = decide(act.action, self.p.recorder.state)
        if what == "start_matter":
            try:
                self.audit.act("matter", {"code": act.matter}, where,
                               lambda: self._matter_result(act.matter, "trigger"))
            except CommandRejected as exc:  # an unknown code must not cost the recording
                log.warning("trigger %s: %s", act.name, exc)
        try:
            if what in ("start", "start_matter"):
                self.audit.act("start", {}, where, lambda: self._start_result(
                    "trigger", flags=[f"trigger:{act.name}"]))
            elif what == "bookmark" and self.p.recorder.bookmark(
                    f"trigger:{act.name}", mono_us=int(act.at * 1_000_000),
                    extra={"trigger": act.name, "pin": act.pin}):
                self.p.indicators.bookmark()
        except (RecorderError, CommandRejected) as exc:
            log.warning("trigger %s: %s", act.name, exc)
        self.event("trigger", {"name": act.name, "pin": act.pin, "action": act.action,
                               "did": what})
