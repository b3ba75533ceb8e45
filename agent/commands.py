"""What each command and gesture does, and how the recorder reacts to the world.

Every way of driving the recorder -- the button's gestures, ``bodycam ctl``, MQTT ``cmd/*`` --
ends in one handler here, run on the controller thread. Starting is gated by the same
admission checks whatever asked for it (battery critical, storage cannot hold a segment), so
a remote start can never do what the button could not.

What the recorder does about the world on its own (battery, storage, stalls) is in
:mod:`agent.supervisor`.

Not thread-safe: handlers run on the controller thread; :meth:`respond` (control socket
threads) only submits requests.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from agent.controller import Controller, Request
from agent.errors import CommandRejected, MatterError, RecordingRefused
from agent.sim_stimuli import apply_stimulus
from agent.status import status_snapshot
from agent.sync.commands import DEFAULT_CONFIG_ALLOWLIST
from hw.still import StillCapture

if TYPE_CHECKING:
    from agent.app import Agent

ALLOWED_REMOTE_KEYS = frozenset(DEFAULT_CONFIG_ALLOWLIST)

__all__ = ["CommandSet"]

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
                     "ack", "checkpoint", "sim", "shutdown", "officer", "config_set"):
            c.handle(name, getattr(self, f"cmd_{name}"))
        c.on_gesture("click", lambda: self._gesture("click"))
        c.on_gesture("double", lambda: self._gesture("double"))
        c.on_gesture("hold", lambda: self._gesture("hold"))
        c.on_gesture("triple", lambda: self._gesture("triple"))

    def started(self) -> None:
        """The pipeline runs: connect to the fleet if configured."""
        if self.sync is not None:
            self.sync.start()

    def close(self) -> None:
        """Release what the command set owns (after the controller stopped)."""
        if self.sync is not None:
            self.sync.stop()

    def respond(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """Control-socket entry point (runs on a socket thread)."""
        if cmd in ("press", "hold") and self.a.hw.kind == "sim" and not args.get("virtual"):
            return self._sim_button(cmd)
        req = self.a.controller.submit(Request(cmd, args, origin="ctl"))
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

    # --- gestures ---------------------------------------------------------------------------
    def _gesture(self, name: str) -> None:
        """Standby: click starts, hold picks the next matter. Recording: double press
        bookmarks, triple press picks the next matter, hold stops."""
        state = self.a.recorder.state
        try:
            if name in ("click", "press") and state in ("standby", "stopping"):
                self.start_recording("button")
            elif name == "double" and state == "recording":
                self.a.recorder.bookmark("button")
                self.a.feedback.bookmark()
            elif name == "hold" and state == "recording" and self.a.cfg.device.profile != "fixed":
                self.stop_recording("button")
            elif (name == "hold" and state == "standby") or (name == "triple" and state == "recording"):
                self._cycle_matter()
        except RecordingRefused as exc:
            log.warning("%s", exc)

    def _cycle_matter(self) -> None:
        quick = self.a.quick
        if quick is None:
            return
        step = quick.next_after(self.matter["code"] if self.matter else None)
        if step is None:
            return
        self._set_matter(step.code, origin="button")
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

    def start_recording(self, origin: str) -> str:
        if self.a.cfg.device.profile == "stills":
            return self._still(origin)
        why = self.admission()
        if why is not None:
            self._refusals += 1
            self.a.feedback.refused()
            self.event("recording_refused", {"reason": why, "origin": origin})
            raise RecordingRefused(f"recording refused: {why}")
        self.stop_reason = None
        return self.a.recorder.start(reason=origin)

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

    def cmd_start(self, req: Request) -> dict[str, Any]:
        """Start recording (remote or ctl)."""
        rid = self.start_recording(req.origin)
        return {"recording_id": rid, "state": self.a.recorder.state}

    def cmd_stop(self, req: Request) -> dict[str, Any]:
        """Stop recording."""
        self.stop_recording(str(req.args.get("reason", req.origin)))
        return {"state": self.a.recorder.state}

    def cmd_press(self, req: Request) -> dict[str, Any]:
        """A virtual short press (same meaning as the button's)."""
        self._gesture("press")
        return self.cmd_status(req)

    def cmd_hold(self, req: Request) -> dict[str, Any]:
        """A virtual hold."""
        self._gesture("hold")
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
        return {"matter": self._set_matter(code, origin=req.origin)}

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
        return {"officer_id": self.set_officer(str(req.args.get("id", ""))[:64])}

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
        return apply_live(self.a, key, req.args.get("value"))

    def cmd_ack(self, req: Request) -> dict[str, Any]:
        """The back office holds these segments (device_seq list): retention may evict them."""
        seqs = req.args.get("device_seq")
        if not isinstance(seqs, list) or not all(isinstance(s, int) and s >= 0 for s in seqs):
            raise CommandRejected("ack needs device_seq: a list of non-negative integers")
        for s in seqs:
            self.a.store.acknowledge(s)
        return {"acknowledged": len(seqs)}

    def cmd_checkpoint(self, req: Request) -> dict[str, Any]:
        """The latest signed checkpoint (and, with sync, publish it with a consistency proof)."""
        out: dict[str, Any] = {"checkpoint": self.a.store.log.checkpoint().decode(),
                               "size": self.a.store.log.size}
        if self.sync is not None:
            out["published"] = self.sync.publish_checkpoint()
        return out

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
        self.a.store.log_event("shutdown", reason=str(req.args.get("reason", "requested")))
        return {}

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

