"""Commands in the evidence log: each audited command's outcome, quoted safely.

A ``command`` event says what was asked, by whom (the origin: gesture, control-socket peer,
MQTT command id and claimed issuer) and whether it ``succeeded`` (with its effect) or was
``refused`` (with the reason) -- see :mod:`agent.command.command_set`. Whatever a remote peer sends, the
entry stays small (strings cut, lists and objects capped, nesting limited) and canonical
(floats as their decimal text), so a flood of odd commands cannot bloat or break the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agent.recording.controller import Handler, Request
from hw.errors import BodycamError, CommandRejected, RecorderError

__all__ = ["REFUSALS", "CommandAudit", "args_for_log", "loggable"]

# What a handler raises to refuse a command (the controller answers them as errors too).
REFUSALS = (CommandRejected, RecorderError, ValueError, KeyError, TypeError)

log = logging.getLogger(__name__)


class _EventLog(Protocol):
    def log_event(self, kind: str, **fields: Any) -> Any: ...


class CommandAudit:
    """Appends the outcome of audited commands to the evidence log (controller thread)."""

    def __init__(self, store: _EventLog) -> None:
        self._store = store

    def wrap(self, name: str, handler: Handler) -> Handler:
        """``handler`` with its outcome appended to the evidence log."""
        def run(req: Request) -> dict[str, Any] | None:
            return self.act(name, args_for_log(name, req.args), req.origin_record,
                            lambda: handler(req))
        return run

    def act(self, name: str, args: Mapping[str, Any], origin: Mapping[str, Any],
            action: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Run ``action``; log the command as succeeded (with its effect) or refused."""
        try:
            result = action()
        except REFUSALS as exc:
            self.record(name, args, origin, "refused", reason=str(exc) or type(exc).__name__)
            raise
        self.record(name, args, origin, "succeeded", effect=result)
        return result

    def record(self, name: str, args: Mapping[str, Any], origin: Mapping[str, Any],
               outcome: str, *, reason: str | None = None,
               effect: Mapping[str, Any] | None = None) -> None:
        """Append a ``command`` event; a log that cannot be written is reported, not raised
        (the command already took effect; the storage fault is the supervisor's to handle)."""
        fields: dict[str, Any] = {"command": name, "args": loggable(dict(args)),
                                  "origin": loggable(dict(origin)), "outcome": outcome,
                                  "reason": loggable(reason)}
        if effect:
            fields["effect"] = loggable(dict(effect))
        try:
            self._store.log_event("command", **fields)
        except (BodycamError, OSError):
            log.exception("command %s (%s) could not be logged", name, outcome)

_MAX_TEXT = 200
_MAX_ITEMS = 64


def args_for_log(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """What a command asked, as the log keeps it: receipts are summarised (each accepted one is
    quoted whole in its own ``acknowledged`` entry)."""
    if name == "ack":
        docs = args.get("receipts")
        return {"receipts": len(docs) if isinstance(docs, list) else None}
    return dict(args)


def loggable(value: Any, depth: int = 0) -> Any:
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
        return {str(k)[:_MAX_TEXT]: loggable(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [loggable(v, depth + 1) for v in value[:_MAX_ITEMS]]
    return repr(value)[:_MAX_TEXT]
