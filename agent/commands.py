"""What each command and gesture does, and how the recorder reacts to the world.

Every way of driving the recorder -- the button's gestures, ``bodycam ctl``, MQTT ``cmd/*`` --
ends in one handler here, run on the controller thread. Starting is gated by the same
admission checks whatever asked for it (battery critical, storage cannot hold a segment), so
a remote start can never do what the button could not.

What the recorder does about the world on its own (battery, storage, stalls) is in
:mod:`agent.supervisor` (its stops are logged there as ``low_battery_shutdown`` /
``storage_full`` events).

Every command that changes evidence or the recording (``AUDITED``: start, stop, matter, mark,
officer, config_set, ack) is appended to the evidence log as a ``command`` event naming its
origin -- the button gesture, the control socket's peer uid, or the MQTT command id and the
issuer it claims -- and whether it ``succeeded`` or was ``refused`` (with the reason), so a court
can see who stopped a recording, and who tried to. Only commands that reach a handler are
logged: MQTT messages that are malformed, stale or replayed are refused earlier by
:mod:`agent.sync.inbox` and never touch the log, which keeps it bounded against a flood.

Not thread-safe: handlers run on the controller thread; :meth:`respond` (control socket
threads) only submits requests.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agent.controller import Controller, Handler, Request
from agent.errors import (
    BodycamError,
    CommandRejected,
    MatterError,
    ReceiptRejected,
    RecorderError,
    RecordingRefused,
    VerificationError,
)
from agent.evidence.receipt import parse_receipt
from agent.sim_stimuli import apply_stimulus
from agent.status import status_snapshot
from agent.sync.commands import DEFAULT_CONFIG_ALLOWLIST, MAX_ACK_RECEIPTS
from agent.triggers import Activation, decide
from hw.still import StillCapture

if TYPE_CHECKING:
    from agent.app import Agent

ALLOWED_REMOTE_KEYS = frozenset(DEFAULT_CONFIG_ALLOWLIST)
AUDITED = frozenset({"start", "stop", "matter", "mark", "officer", "config_set", "ack",
                     "covert"})

__all__ = ["AUDITED", "CommandSet"]

_REFUSALS = (CommandRejected, RecorderError, ValueError, KeyError, TypeError)
_MAX_TEXT = 200
_MAX_ITEMS = 64

log = logging.getLogger(__name__)


class CommandSet:
    """Handlers for one agent."""

    def __init__(self, agent: Agent) -> None:
        self.a = agent
        self.officer_id = agent.cfg.device.officer_id
        self.matter: dict[str, Any] | None = (
            agent.matters.lookup(agent.cfg.matters.default) if agent.cfg.matters.default else None)
        self.stop_reason: str | None = None
        self._refusals = 0
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sync: Any = None  # the MQTT link, when enabled

    # --- wiring -----------------------------------------------------------------------------
    def register(self, c: Controller) -> None:
        """Install handlers and gestures on the controller."""
        for name in ("start", "stop", "press", "hold", "bookmark", "status", "matter", "mark",
                     "ack", "checkpoint", "sim", "shutdown", "officer", "config_set",
                     "covert"):
            handler = getattr(self, f"cmd_{name}")
            c.handle(name, self._audited(name, handler) if name in AUDITED else handler)
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
        if cmd in ("press", "hold") and self.a.hw.kind == "sim" and not args.get("virtual"):
            return self._sim_button(cmd)  # through the simulated pin: logged as the button
        req = self.a.controller.submit(Request(cmd, args, origin="ctl",
                                               origin_detail=dict(peer or {})))
        if not req.wait(30):
            return {"ok": False, "error": f"{cmd}: no answer from the controller within 30 s"}
        if req.error is not None:
            return {"ok": False, "error": req.error}
        return {"ok": True, "result": req.result or {}}

    def _sim_button(self, cmd: str) -> dict[str, Any]:
        """Drive the simulated button's pin, exercising the real gpiozero edge path."""
        controls = self.a.hw.controls
        hold = self.a.cfg.recording.stop_hold_s + 0.3 if cmd == "hold" else 0.08
        controls.sim_press()
        time.sleep(hold)
        controls.sim_release()
        time.sleep(0.1)
        snap = self.a.controller.call("status")
        return {"ok": True, "result": snap}

    # --- evidence log of commands -------------------------------------------------------------
    def _audited(self, name: str, handler: Handler) -> Handler:
        """``handler`` with its outcome appended to the evidence log (see module docstring)."""
        def run(req: Request) -> dict[str, Any] | None:
            return self._act(name, _args_for_log(name, req.args), req.origin_record,
                             lambda: handler(req))
        return run

    def _act(self, name: str, args: Mapping[str, Any], origin: Mapping[str, Any],
             action: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Run ``action``; log the command as succeeded (with its effect) or refused."""
        try:
            result = action()
        except _REFUSALS as exc:
            self.log_command(name, args, origin, "refused", reason=str(exc) or type(exc).__name__)
            raise
        self.log_command(name, args, origin, "succeeded", effect=result)
        return result

    def log_command(self, name: str, args: Mapping[str, Any], origin: Mapping[str, Any],
                    outcome: str, *, reason: str | None = None,
                    effect: Mapping[str, Any] | None = None) -> None:
        """Append a ``command`` event; a log that cannot be written is reported, not raised
        (the command already took effect; the storage fault is the supervisor's to handle)."""
        fields: dict[str, Any] = {"command": name, "args": _loggable(dict(args)),
                                  "origin": _loggable(dict(origin)), "outcome": outcome,
                                  "reason": _loggable(reason)}
        if effect:
            fields["effect"] = _loggable(dict(effect))
        try:
            self.a.store.log_event("command", **fields)
        except (BodycamError, OSError):
            log.exception("command %s (%s) could not be logged", name, outcome)

    # --- gestures ---------------------------------------------------------------------------
    def _gesture(self, name: str, origin: Mapping[str, Any] | None = None) -> None:
        """Standby: click starts, hold picks the next matter. Recording: double press
        bookmarks, triple press picks the next matter, hold stops."""
        state = self.a.recorder.state
        where = dict(origin or {"via": "button"}, gesture=name)
        via = str(where["via"])
        try:
            if name in ("click", "press") and state in ("standby", "stopping"):
                self._act("start", {}, where, lambda: self._start_result(via))
            elif name == "double" and state == "recording":
                self.a.recorder.bookmark("button")
                self.a.feedback.bookmark()
            elif name == "hold" and state == "recording" and self.a.cfg.device.profile != "fixed":
                self._act("stop", {}, where, lambda: self._stop_result(via))
            elif (name == "hold" and state == "standby") or (name == "triple" and state == "recording"):
                self._cycle_matter(where)
            elif name == "double_hold":
                on = not self.a.feedback.covert
                self._act("covert", {"on": on}, where, lambda: self._covert_result(on))
        except RecordingRefused as exc:
            log.warning("%s", exc)

    def _cycle_matter(self, origin: Mapping[str, Any]) -> None:
        quick = self.a.quick
        if quick is None:
            return
        step = quick.next_after(self.matter["code"] if self.matter else None)
        if step is None:
            return
        self._act("matter", {"code": step.code}, origin,
                  lambda: self._matter_result(step.code, str(origin["via"])))
        self.a.feedback.matter_selected(step.position)

    # --- recording --------------------------------------------------------------------------
    def admission(self) -> str | None:
        """Why a recording may not start now, or None."""
        pw = self.a.power_watch
        if pw is not None:
            adm = pw.policy.can_start()
            if not adm:
                return adm.reason
        sw = self.a.storage_watch
        sw.poll(time.monotonic(), force=True)
        adm = sw.policy.can_start()
        if not adm:
            return adm.reason
        if self.a.recorder.state == "fault":
            return f"recorder fault: {self.a.recorder.fault_reason}"
        return None

    def start_recording(self, origin: str, *, flags: list[str] | None = None) -> str:
        if self.a.cfg.device.profile == "stills":
            return self._still(origin)
        why = self.admission()
        if why is not None:
            self._refusals += 1
            self.a.feedback.refused()
            self.event("recording_refused", {"reason": why, "origin": origin})
            raise RecordingRefused(f"recording refused: {why}")
        self.stop_reason = None
        return self.a.recorder.start(reason=origin, flags=flags)

    def _still(self, origin: str) -> str:
        """Stills profile: a press captures one sealed, encrypted picture."""
        cam = self.a.hw.camera
        if not isinstance(cam, StillCapture):
            raise RecordingRefused("this camera cannot take stills")
        why = self.admission()
        if why is not None:
            self.a.feedback.refused()
            self.event("recording_refused", {"reason": why, "origin": origin})
            raise RecordingRefused(f"still refused: {why}")
        rid = uuid.uuid4().hex
        manifest = self.a.port.seal_still(cam.capture_still(), recording_id=rid,
                                          flags=[], bookmarks=[])
        self.a.feedback.bookmark()
        self.event("still", {"recording_id": rid, "device_seq": manifest["device_seq"],
                              "origin": origin})
        return rid

    def stop_recording(self, reason: str) -> None:
        self.stop_reason = reason
        self.a.recorder.stop(reason=reason)

    def _start_result(self, origin: str, *, flags: list[str] | None = None) -> dict[str, Any]:
        rid = self.start_recording(origin, flags=flags)
        return {"recording_id": rid, "state": self.a.recorder.state}

    def _stop_result(self, reason: str) -> dict[str, Any]:
        rid = self.a.recorder.recording_id if self.a.recorder.state == "recording" else None
        self.stop_recording(reason)
        return {"recording_id": rid, "state": self.a.recorder.state}

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
        if not self.a.recorder.bookmark(label):
            raise CommandRejected("not recording: nothing to bookmark")
        self.a.feedback.bookmark()
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
        if not self.a.recorder.bookmark(f"checklist:{item}", item=item, extra=extra):
            raise CommandRejected("not recording: nothing to mark")
        self.a.feedback.bookmark()
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
            entry = self.a.matters.lookup(code)
        except MatterError as exc:
            raise CommandRejected(str(exc)) from None
        code = entry["code"]
        previous = self.matter["code"] if self.matter else None
        self.matter = entry
        if self.a.recorder.state == "recording":
            self.a.recorder.bookmark(f"matter:{code}", item=None, extra={"previous": previous})
            self.a.store.log_event("matter_change", recording_id=self.a.recorder.recording_id,
                                   previous=previous, matter=code, origin=origin)
        self.event("matter", {"code": code, "previous": previous, "origin": origin})
        return self.matter_for_manifest() or {}

    def matter_for_manifest(self) -> dict[str, Any] | None:
        """The matter as the manifest records it."""
        if self.matter is None:
            return None
        return {k: v for k, v in self.matter.items() if k != "checklist_codes"}

    def cmd_officer(self, req: Request) -> dict[str, Any]:
        """Assign the officer carrying the unit (shift handover)."""
        previous = self.officer_id
        return {"officer_id": self.set_officer(str(req.args.get("id", ""))[:64]),
                "previous": previous}

    def set_officer(self, officer: str) -> str:
        """Officer id for manifests and the picture overlay."""
        self.officer_id = officer
        cam = self.a.hw.camera
        if cam is not None and hasattr(cam, "set_officer"):
            cam.set_officer(officer)
        return officer

    def cmd_config_set(self, req: Request) -> dict[str, Any]:
        """Change an allow-listed setting (validated, applied live, persisted)."""
        from agent.overrides import apply_live

        key = req.args.get("key")
        if not isinstance(key, str) or key not in ALLOWED_REMOTE_KEYS:
            raise CommandRejected(f"{key!r} cannot be set remotely; allowed: "
                                  f"{', '.join(sorted(ALLOWED_REMOTE_KEYS))}")
        section, _, name = key.partition(".")
        previous = getattr(getattr(self.a.cfg, section), name)
        return {**apply_live(self.a, key, req.args.get("value")), "previous": previous}

    def cmd_ack(self, req: Request) -> dict[str, Any]:
        """Station receipts (``{"receipts": [envelope, …]}``): each one that verifies is logged
        as ``acknowledged`` and makes its segment evictable; the answer says, per receipt,
        whether it was accepted (with its log index) or refused and why."""
        if "device_seq" in req.args:
            raise CommandRejected("acknowledging by device_seq is not accepted: a station's "
                                  "signed receipt is required")
        docs = req.args.get("receipts")
        if not isinstance(docs, list) or not 1 <= len(docs) <= MAX_ACK_RECEIPTS:
            raise CommandRejected(f"ack needs receipts: a list of 1-{MAX_ACK_RECEIPTS} signed "
                                  "receipt envelopes")
        accepted: list[dict[str, Any]] = []
        refused: list[dict[str, Any]] = []
        for i, doc in enumerate(docs):
            try:
                receipt = parse_receipt(doc)
            except VerificationError as exc:
                refused.append({"index": i, "reason": str(exc)})
                continue
            try:
                index = self.a.store.accept_receipt(receipt, origin=req.origin_record)
            except ReceiptRejected as exc:
                refused.append({"index": i, "device_seq": receipt.device_seq, "reason": str(exc)})
                continue
            accepted.append({"index": i, "device_seq": receipt.device_seq, "ack_index": index})
        if not accepted:
            raise CommandRejected("no receipt accepted: " + "; ".join(
                f"[{r['index']}] {r['reason']}" for r in refused)[:1000])
        return {"accepted": accepted, "refused": refused}

    def cmd_checkpoint(self, req: Request) -> dict[str, Any]:
        """The latest signed checkpoint (and, with sync, publish it with a consistency proof)."""
        out: dict[str, Any] = {"checkpoint": self.a.store.log.checkpoint().decode(),
                               "size": self.a.store.log.size}
        if self.sync is not None:
            out["published"] = self.sync.publish_checkpoint()
        return out

    def cmd_covert(self, req: Request) -> dict[str, Any]:
        """Covert mode on or off (``{"on": true}``): LEDs dark, buzzer silent, one discreet
        vibration per event (:mod:`agent.feedback`)."""
        on = req.args.get("on")
        if not isinstance(on, bool):
            raise CommandRejected("covert needs on: true or false")
        return self._covert_result(on)

    def _covert_result(self, on: bool) -> dict[str, Any]:
        previous = self.a.feedback.set_covert(on)
        self.event("covert", {"on": on, "previous": previous})
        return {"covert": on, "previous": previous}

    def cmd_status(self, req: Request) -> dict[str, Any]:
        """A JSON snapshot of the recorder."""
        return status_snapshot(self.a)

    def cmd_sim(self, req: Request) -> dict[str, Any]:
        """Stimulate a simulated device (``sim camera stall``, ``sim battery set 5``...)."""
        if self.a.hw.kind != "sim":
            raise CommandRejected("sim stimuli exist only with --hw sim")
        return apply_stimulus(self.a.hw, req.args)

    def cmd_shutdown(self, req: Request) -> dict[str, Any]:
        """Seal what is open and log the shutdown (agent exit)."""
        rec = self.a.recorder
        if rec.state in ("recording", "stopping"):
            self.stop_reason = "shutdown"
            rec.stop(reason="shutdown")
            rec.tick(10**18)  # do not wait for the audio tail: the devices are stopping
            rec.drain()  # the last seal is logged before the shutdown event
        self.a.store.log_event("shutdown", reason=str(req.args.get("reason", "requested")))
        return {}

    # --- activation triggers (agent.triggers) --------------------------------------------------
    def trigger(self, act: Activation) -> None:
        """A trigger fired: start as a press would (same admission, same log), or bookmark;
        never stop. The started segment is flagged ``trigger:<name>``."""
        where = {"via": "trigger", "name": act.name, "pin": act.pin}
        what = decide(act.action, self.a.recorder.state)
        if what == "start_matter":
            try:
                self._act("matter", {"code": act.matter}, where,
                          lambda: self._matter_result(act.matter, "trigger"))
            except CommandRejected as exc:  # an unknown code must not cost the recording
                log.warning("trigger %s: %s", act.name, exc)
        try:
            if what in ("start", "start_matter"):
                self._act("start", {}, where, lambda: self._start_result(
                    "trigger", flags=[f"trigger:{act.name}"]))
            elif what == "bookmark" and self.a.recorder.bookmark(
                    f"trigger:{act.name}", mono_us=int(act.at * 1_000_000),
                    extra={"trigger": act.name, "pin": act.pin}):
                self.a.feedback.bookmark()
        except (RecorderError, CommandRejected) as exc:
            log.warning("trigger %s: %s", act.name, exc)
        self.event("trigger", {"name": act.name, "pin": act.pin, "action": act.action,
                               "did": what})

    # --- world → recorder -------------------------------------------------------------------
    def recorder_event(self, kind: str, data: dict[str, Any]) -> None:
        """Recorder → feedback, log and sync."""
        a = self.a
        if kind == "recording_started":
            a.feedback.started(time.monotonic())
            a.feedback.show("recording")
        elif kind == "recording_stopped":
            a.feedback.stopped()
            a.feedback.show("standby")
            a.meter.pause()
        elif kind == "fault":
            a.feedback.show("fault")
            a.store.log_event("fault", reason=str(data.get("reason")))
        self.event(kind, {k: v for k, v in data.items() if k != "manifest"})

    def segment_sealed(self, signed: Any) -> None:
        """A segment was sealed: hand its manifest and the checkpoint to sync."""
        if self.sync is not None:
            self.sync.segment_sealed(signed)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))
        del self.events[:-200]
        log.info("event %s %s", kind, data)
        if self.sync is not None:
            self.sync.event(kind, data)


def _args_for_log(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """What a command asked, as the log keeps it: receipts are summarised (each accepted one is
    quoted whole in its own ``acknowledged`` entry)."""
    if name == "ack":
        docs = args.get("receipts")
        return {"receipts": len(docs) if isinstance(docs, list) else None}
    return dict(args)


def _loggable(value: Any, depth: int = 0) -> Any:
    """``value`` made canonical-JSON-safe and bounded: floats become their decimal text,
    strings are cut at 200 characters, lists and objects at 64 items, nesting at 4 levels."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if depth >= 4:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())[:_MAX_ITEMS]
        return {str(k)[:_MAX_TEXT]: _loggable(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [_loggable(v, depth + 1) for v in value[:_MAX_ITEMS]]
    return repr(value)[:_MAX_TEXT]
