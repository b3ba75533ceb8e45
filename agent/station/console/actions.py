"""What a console user may ask a unit to do, as audited MQTT commands (DESIGN §7).

A dispatcher or admin may **start** a recording, **bookmark** it, assign a **matter** from
the catalogue and **stop** it with a typed reason. A viewer may do none of these: the refusal
is audited like an act. Each command goes to ``bodycam/v1/<id>/cmd/<name>`` with
``issuer = console:<user>``, so the unit's evidence log records who asked.

The typed stop reason travels in the device's ``stop`` command (``args.reason``) and becomes
the recording's recorded stop reason, in the same evidence-log entry as the command's id and
issuer; the station's audit keeps it with the stop too.

Pure validation (:func:`plan`) is separate from sending (:class:`Dispatcher`), so the rules
have instant tests.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from agent.matters.catalogue import MatterCatalogue
from agent.sync.command_messages import iso_utc
from agent.sync.topics import PREFIX, encode_json
from hw.errors import SyncError

from ..index import Index
from .accounts import Session, may_act

__all__ = ["ACTIONS", "Command", "Dispatcher", "Refusal", "plan"]

ACTIONS: Final = ("start", "bookmark", "matter", "stop")
_DEVICE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MIN_REASON: Final = 4
_MAX_TEXT: Final = 160


class Refusal(Exception):
    """A request the console will not turn into a command; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True, slots=True)
class Command:
    """One MQTT command ready to publish."""

    device_id: str
    name: str
    id: str
    payload: bytes

    @property
    def topic(self) -> str:
        """Where it goes."""
        return f"{PREFIX}/{self.device_id}/cmd/{self.name}"


def _command(device_id: str, name: str, issuer: str, args: dict[str, Any]) -> Command:
    cid = f"console-{uuid.uuid4().hex[:20]}"
    doc = {"id": cid, "issued_at": iso_utc(datetime.now(UTC)), "issuer": issuer, "args": args}
    return Command(device_id, name, cid, encode_json(doc))


def _text(body: dict[str, Any], key: str, what: str, *, minimum: int = 1) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not minimum <= len(value.strip()) <= _MAX_TEXT \
            or any(ord(c) < 32 for c in value):
        raise Refusal(400, f"{what}: {minimum}-{_MAX_TEXT} printable characters")
    return value.strip()


def plan(session: Session, device_id: str, action: str, body: dict[str, Any],
         catalogue: MatterCatalogue) -> tuple[list[Command], str]:
    """The commands for one console action and the audit detail; Refusal if not allowed."""
    if not may_act(session.role):
        raise Refusal(403, f"role {session.role} may not send commands to units")
    if action not in ACTIONS:
        raise Refusal(404, f"no action {action[:32]!r}")
    if not _DEVICE_RE.fullmatch(device_id):
        raise Refusal(404, "not a device id")
    issuer = f"console:{session.username}"
    if action == "start":
        return [_command(device_id, "start", issuer, {})], "start recording"
    if action == "bookmark":
        label = _text(body, "label", "label")
        return [_command(device_id, "bookmark", issuer, {"label": label})], f"bookmark: {label}"
    if action == "matter":
        code = body.get("code")
        if not isinstance(code, str) or code not in catalogue:
            raise Refusal(400, "matter: not a code of the catalogue")
        return ([_command(device_id, "matter", issuer, {"code": code})],
                f"matter {code} ({catalogue.get(code).name_en})")
    reason = _text(body, "reason", "stop needs a typed reason", minimum=_MIN_REASON)
    return [_command(device_id, "stop", issuer, {"reason": reason})], f"stop: {reason}"


class Dispatcher:
    """Publishes planned commands and audits each act and each acknowledgement.

    Runs in worker threads (the index and the publish block). ``pending`` maps a command id
    to (user, device, name) until the unit's final acknowledgement arrives; it is only
    touched from the event loop (:meth:`acknowledged`) and under the GIL for single dict
    operations from workers.
    """

    def __init__(self, index: Index, publish: Callable[[str, bytes], None],
                 catalogue: MatterCatalogue, utc: Callable[[], str]) -> None:
        self.index, self._publish, self.catalogue, self._utc = index, publish, catalogue, utc
        self.pending: dict[str, tuple[str, str, str, float]] = {}

    def act(self, session: Session, address: str, device_id: str, action: str,
            body: dict[str, Any]) -> dict[str, Any]:
        """Plan, audit and publish; Refusal (audited) if it may not or could not be sent."""
        try:
            commands, detail = plan(session, device_id, action, body, self.catalogue)
        except Refusal as exc:
            self.index.audit(self._utc(), session.username, action, address=address,
                             device_id=device_id if _DEVICE_RE.fullmatch(device_id) else None,
                             detail=exc.message, outcome=f"refused {exc.status}")
            raise
        sent: list[str] = []
        try:
            for cmd in commands:
                self.pending[cmd.id] = (session.username, device_id, cmd.name, time.time())
                self._publish(cmd.topic, cmd.payload)
                sent.append(cmd.id)
        except SyncError as exc:
            self.index.audit(self._utc(), session.username, action, address=address,
                             device_id=device_id, detail=f"{detail}; sent {sent}",
                             outcome=f"not sent: {exc}")
            raise Refusal(503, f"not sent: {exc}") from None
        self.index.audit(self._utc(), session.username, action, address=address,
                         device_id=device_id, detail=f"{detail}; commands {' '.join(sent)}",
                         outcome="sent")
        if len(self.pending) > 10_000:
            self.pending.pop(next(iter(self.pending)))
        return {"commands": sent, "detail": detail}

    def acknowledged(self, doc: dict[str, Any]) -> tuple[str, str, str, str] | None:
        """A unit's final answer to one of our commands, audited; (user, device, name,
        status) or None if it is not ours or not final."""
        cid, status = doc.get("id"), doc.get("status")
        if not isinstance(cid, str) or status not in ("succeeded", "failed", "rejected"):
            return None
        who = self.pending.pop(cid, None)
        if who is None:
            return None
        reason = doc.get("reason")
        self.index.audit(self._utc(), who[0], f"{who[2]}-ack", address="-", device_id=who[1],
                         detail=f"command {cid}" + (f": {str(reason)[:300]}" if reason else ""),
                         outcome=str(status))
        return who[0], who[1], who[2], str(status)
