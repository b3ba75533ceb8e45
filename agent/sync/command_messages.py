"""Remote commands: strict parsing of ``cmd/<name>`` messages and their acknowledgement life cycle.

A command arrives on paho's network thread from a broker that anyone in the back office can
write to, so nothing here may raise into that thread: :func:`parse_command` returns either a
:class:`CommandRequest` or a :class:`Rejection` carrying the reason that goes into the ack.

Every accepted request becomes a :class:`Command`. The link sends ``accepted`` immediately,
then the controller (on its own thread) finishes it exactly once with :meth:`Command.succeed`,
:meth:`Command.fail` or :meth:`Command.reject`.

Issuers: a command that changes evidence or the recording (``EVIDENCE_COMMANDS``) must name
its ``issuer`` -- the back-office identity that sent it (a dispatcher, a collection station).
The device cannot check that claim (the broker's ACL decides who may write ``cmd/``), but it
records it, with the command id, in the evidence log, so a court sees who claimed to stop a
recording.

Locking: a :class:`Command`'s status is guarded by its own ``_lock``; the reply function it
holds must be thread-safe (the link's is: it only queues the ack for the network thread).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from agent.evidence.receipt import parse_receipt
from agent.evidence.utc import iso_utc as evidence_iso_utc
from hw.errors import SyncError, VerificationError

__all__ = [
    "COMMAND_NAMES",
    "DEFAULT_CONFIG_ALLOWLIST",
    "EVIDENCE_COMMANDS",
    "MAX_ACK_RECEIPTS",
    "MAX_COMMAND_BYTES",
    "Command",
    "CommandRequest",
    "ConfigKey",
    "Rejection",
    "iso_utc",
    "parse_command",
]

MAX_COMMAND_BYTES: Final = 64 * 1024  # room for MAX_ACK_RECEIPTS signed receipts
COMMAND_NAMES: Final = frozenset(
    {"start", "stop", "bookmark", "matter", "ack", "checkpoint", "config_set"}
)
EVIDENCE_COMMANDS: Final = frozenset({"start", "stop", "matter", "ack", "config_set"})
MAX_ACK_RECEIPTS: Final = 64
_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ISSUER_RE: Final = re.compile(r"[A-Za-z0-9._:@-]{1,64}")
_MATTER_RE: Final = re.compile(r"[A-Za-z0-9._/-]{1,64}")
_MATTER_SCOPES: Final = frozenset({"current", "next"})
_MAX_LABEL: Final = 200
_FINAL_STATUSES: Final = frozenset({"succeeded", "failed", "rejected"})


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """What ``config_set`` accepts for one key: a type and, for numbers, an inclusive range."""

    kind: type[int] | type[float] | type[bool] | type[str]
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 128

    def check(self, value: Any) -> str | None:
        """None if ``value`` is acceptable, otherwise the reason it is not."""
        if self.kind is bool:
            return None if isinstance(value, bool) else "value must be a boolean"
        if self.kind is str:
            if not isinstance(value, str):
                return "value must be a string"
            return None if len(value) <= self.max_length else "value is too long"
        return self._check_number(value)

    def _check_number(self, value: Any) -> str | None:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind is int and not (is_number and isinstance(value, int)):
            return "value must be an integer"
        if not is_number or not math.isfinite(value):
            return "value must be a finite number"
        if self.minimum is not None and value < self.minimum:
            return f"value must be >= {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"value must be <= {self.maximum:g}"
        return None


# Keys (named as in the agent's TOML config, ``section.key``) an operator may change remotely,
# with ranges no wider than the config schema's. Anything touching evidence integrity or
# completeness (keys, recipients, encryption, audio, overlay, retention) is deliberately absent.
DEFAULT_CONFIG_ALLOWLIST: Final[Mapping[str, ConfigKey]] = {
    "mqtt.telemetry_s": ConfigKey(int, 10, 3600),
    "recording.prerecord_s": ConfigKey(int, 0, 120),
    "recording.segment_s": ConfigKey(int, 10, 3600),
    "recording.reminder_s": ConfigKey(int, 0, 3600),
    "power.warn_min": ConfigKey(float, 1, 240),
    "storage.warn_min": ConfigKey(float, 1, 10_000),
    "device.officer_id": ConfigKey(str, max_length=64),
    "matters.default": ConfigKey(str, max_length=64),
}


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A syntactically and semantically valid command, not yet deduplicated."""

    name: str
    id: str
    issued_at: datetime
    args: dict[str, Any]
    issuer: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a command message was refused; ``id`` is echoed when it could be read."""

    id: str | None
    reason: str


def iso_utc(moment: datetime) -> str:
    """The time of an MQTT payload: RFC 3339 UTC to the millisecond, ``Z`` suffix (the
    protocol's precision, docs in asyncapi.yaml), written by the product's one formatter."""
    return evidence_iso_utc(moment, 3)


def parse_command(
    name: str,
    payload: bytes,
    *,
    now: datetime,
    max_age_s: float = 300.0,
    max_skew_s: float = 30.0,
    config_allowlist: Mapping[str, ConfigKey] = DEFAULT_CONFIG_ALLOWLIST,
) -> CommandRequest | Rejection:
    """Validate one ``cmd/<name>`` message; never raises for any input."""
    doc = _decode(payload)
    if isinstance(doc, Rejection):
        return doc
    raw_id = doc.get("id")
    if not isinstance(raw_id, str) or not _ID_RE.fullmatch(raw_id):
        return Rejection(None, "invalid id: must be 1-64 characters of [A-Za-z0-9._:-]")
    problem = _check_envelope(name, doc, now, max_age_s, max_skew_s)
    if problem is None:
        args = doc.get("args", {})
        problem = (
            _check_args(name, args, config_allowlist)
            if isinstance(args, dict)
            else "invalid args: must be an object"
        )
    if problem is not None:
        return Rejection(raw_id, problem)
    return CommandRequest(name, raw_id, _parse_time(doc["issued_at"]) or now, doc.get("args", {}),
                          doc.get("issuer"))


def _decode(payload: bytes) -> dict[str, Any] | Rejection:
    if len(payload) > MAX_COMMAND_BYTES:
        return Rejection(None, f"oversize: {len(payload)} bytes (max {MAX_COMMAND_BYTES})")
    try:
        doc = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        return Rejection(None, "malformed: payload is not UTF-8")
    except (ValueError, RecursionError) as exc:
        return Rejection(None, f"malformed: not JSON ({_short(exc)})")
    if not isinstance(doc, dict):
        return Rejection(None, "malformed: payload must be a JSON object")
    return doc


def _check_envelope(
    name: str, doc: dict[str, Any], now: datetime, max_age_s: float, max_skew_s: float
) -> str | None:
    unknown = set(doc) - {"id", "issued_at", "args", "issuer"}
    if unknown:
        return f"malformed: unknown field(s) {sorted(unknown)[:5]}"
    if name not in COMMAND_NAMES:
        return f"unknown command {name[:64]!r}"
    issued = _parse_time(doc.get("issued_at"))
    if issued is None:
        return "invalid issued_at: must be an ISO-8601 UTC timestamp"
    age = (now - issued).total_seconds()
    if age > max_age_s:
        return f"stale: issued {age:.0f} s ago (max {max_age_s:g} s)"
    if age < -max_skew_s:
        return f"from the future: issued {-age:.0f} s ahead of device clock"
    issuer = doc.get("issuer")
    if issuer is None and name in EVIDENCE_COMMANDS:
        return f"invalid issuer: {name} changes evidence, so it must name its issuer"
    if issuer is not None and (not isinstance(issuer, str) or not _ISSUER_RE.fullmatch(issuer)):
        return "invalid issuer: must be 1-64 characters of [A-Za-z0-9._:@-]"
    return None


@dataclass(eq=False)
class Command:
    """An accepted remote command, handed to the controller to carry out and answer once."""

    name: str
    id: str
    args: dict[str, Any]
    issued_at: datetime
    _reply: Callable[[Command, str, str | None, Any], None] = field(repr=False)
    issuer: str | None = None
    _status: str = field(default="received", repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def status(self) -> str:
        """received, accepted, succeeded, failed or rejected."""
        with self._lock:
            return self._status

    def accept(self) -> None:
        """Acknowledge receipt (the link does this before handing the command over)."""
        self._finish("accepted", None, None)

    def succeed(self, result: Any = None) -> None:
        """The command was carried out; ``result`` (JSON-serialisable) goes into the ack."""
        self._finish("succeeded", None, result)

    def fail(self, reason: str) -> None:
        """The command was attempted and did not work."""
        self._finish("failed", reason, None)

    def reject(self, reason: str) -> None:
        """The command was refused without being attempted (e.g. not allowed in this state)."""
        self._finish("rejected", reason, None)

    def _finish(self, status: str, reason: str | None, result: Any) -> None:
        with self._lock:
            if self._status in _FINAL_STATUSES:
                raise SyncError(
                    f"command {self.name}/{self.id} already {self._status}; cannot mark {status}"
                )
            if status == "accepted" and self._status != "received":
                raise SyncError(f"command {self.name}/{self.id} already {self._status}")
            self._status = status
        self._reply(self, status, reason, result)


# --- argument checks ------------------------------------------------------------------------
def _check_args(name: str, args: dict[str, Any], allow: Mapping[str, ConfigKey]) -> str | None:
    problem = _ARG_CHECKS[name](args, allow)
    return f"invalid args: {problem}" if problem else None


def _no_args(args: dict[str, Any], _allow: Mapping[str, ConfigKey]) -> str | None:
    return f"takes no arguments, got {sorted(args)[:5]}" if args else None


def _bookmark(args: dict[str, Any], _allow: Mapping[str, ConfigKey]) -> str | None:
    extra = _extra(args, {"label", "checklist_item"})
    if extra:
        return extra
    label = args.get("label")
    if not isinstance(label, str) or not 1 <= len(label) <= _MAX_LABEL:
        return f"label must be a string of 1-{_MAX_LABEL} characters"
    item = args.get("checklist_item")
    if item is not None and (not isinstance(item, str) or not 1 <= len(item) <= 64):
        return "checklist_item must be a string of 1-64 characters"
    return None


def _stop(args: dict[str, Any], _allow: Mapping[str, ConfigKey]) -> str | None:
    """An optional typed reason, which becomes the recording's recorded stop reason (a console
    dispatcher must give one): the evidence says why the recording ended, not only who ended it."""
    extra = _extra(args, {"reason"})
    if extra:
        return extra
    reason = args.get("reason")
    if reason is not None and (not isinstance(reason, str) or not 1 <= len(reason) <= _MAX_LABEL):
        return f"reason must be a string of 1-{_MAX_LABEL} characters"
    return None


def _matter(args: dict[str, Any], _allow: Mapping[str, ConfigKey]) -> str | None:
    extra = _extra(args, {"code", "scope"})
    if extra:
        return extra
    code = args.get("code")
    if not isinstance(code, str) or not _MATTER_RE.fullmatch(code):
        return "code must be 1-64 characters of [A-Za-z0-9._/-]"
    scope = args.get("scope", "current")
    if scope not in _MATTER_SCOPES:
        return f"scope must be one of {sorted(_MATTER_SCOPES)}"
    return None


def _ack(args: dict[str, Any], _allow: Mapping[str, ConfigKey]) -> str | None:
    """Receipts only: a bare list of sequence numbers proves nothing (DESIGN §3)."""
    if "device_seq" in args:
        return ("device_seq is no longer accepted: acknowledging a segment needs a station's "
                "signed receipt (args.receipts)")
    extra = _extra(args, {"receipts"})
    if extra:
        return extra
    receipts = args.get("receipts")
    if not isinstance(receipts, list) or not 1 <= len(receipts) <= MAX_ACK_RECEIPTS:
        return f"receipts must be a list of 1-{MAX_ACK_RECEIPTS} signed receipt envelopes"
    for i, doc in enumerate(receipts):
        try:
            parse_receipt(doc)
        except VerificationError as exc:
            return f"receipts[{i}]: {exc}"
    return None


def _config_set(args: dict[str, Any], allow: Mapping[str, ConfigKey]) -> str | None:
    extra = _extra(args, {"key", "value"})
    if extra:
        return extra
    key = args.get("key")
    if not isinstance(key, str):
        return "key must be a string"
    spec = allow.get(key)
    if spec is None:
        return f"key {key[:64]!r} is not remotely settable"
    if "value" not in args:
        return "value is required"
    problem = spec.check(args["value"])
    return f"{key}: {problem}" if problem else None


_ARG_CHECKS: Final[
    Mapping[str, Callable[[dict[str, Any], Mapping[str, ConfigKey]], str | None]]
] = {
    "start": _no_args,
    "stop": _stop,
    "checkpoint": _no_args,
    "bookmark": _bookmark,
    "matter": _matter,
    "ack": _ack,
    "config_set": _config_set,
}


def _extra(args: dict[str, Any], allowed: set[str]) -> str | None:
    extra = set(args) - allowed
    return f"unexpected argument(s) {sorted(extra)[:5]}" if extra else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    offset = moment.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        return None
    return moment


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON")


def _short(exc: BaseException) -> str:
    return str(exc)[:80] or type(exc).__name__
