"""The device's command inbox: from a ``cmd/<name>`` message to a Command or a rejection ack.

Runs on the link thread (paho's message callback). It validates with
:func:`agent.sync.command_messages.parse_command`, refuses ids already seen (remembered durably in the
Outbox database, so a replay after a reboot is still a duplicate), sends ``accepted`` and hands
the Command to the controller's ``on_command``. Whatever happens, nothing is raised back into
paho: a hostile payload costs one ``rejected`` ack.

Only a command that passed all of this reaches the controller, and so the evidence log (which
records every evidence-changing command the recorder carried out or refused, with its id and
claimed issuer): a malformed, stale or replayed message is answered with a ``rejected`` ack
and otherwise forgotten, so a flood of garbage cannot grow the append-only log.

Acks, including those the controller sends later from its own thread, go into an
:class:`AckQueue` and the link is woken to send them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from agent.sync.acks import AckQueue
from agent.sync.command_messages import Command, CommandRequest, ConfigKey, iso_utc, parse_command
from agent.sync.outbox import Outbox
from agent.sync.topics import Topics, encode_json

__all__ = ["CommandInbox"]

_log = logging.getLogger(__name__)


class CommandInbox:
    """Turns command messages into Commands and every outcome into an ack."""

    def __init__(
        self,
        *,
        topics: Topics,
        outbox: Outbox,
        acks: AckQueue,
        wake: Callable[[], None],
        on_command: Callable[[Command], None],
        max_age_s: float,
        max_skew_s: float,
        config_allowlist: Mapping[str, ConfigKey],
    ) -> None:
        self._topics = topics
        self._outbox = outbox
        self._acks = acks
        self._wake = wake
        self._on_command = on_command
        self._max_age = max_age_s
        self._skew = max_skew_s
        self._allowlist = config_allowlist

    def receive(self, topic: str, payload: bytes) -> None:
        """Handle one message from the command subscription (never raises)."""
        try:
            self._receive(topic, payload)
        except Exception:  # never let a hostile message unwind paho's read path
            _log.exception("error while handling command on %r", topic)

    def _receive(self, topic: str, payload: bytes) -> None:
        name = self._topics.command_name(topic)
        if name is None:
            return
        result = parse_command(name, payload, now=datetime.now(UTC), max_age_s=self._max_age,
                               max_skew_s=self._skew, config_allowlist=self._allowlist)
        if not isinstance(result, CommandRequest):
            self._send(name, result.id, "rejected", result.reason, None)
            return
        if not self._outbox.remember_command(result.id, now=time.time(),
                                             horizon_s=self._max_age + self._skew):
            self._send(name, result.id, "rejected", "duplicate: id already seen", None)
            return
        command = Command(result.name, result.id, result.args, result.issued_at, self._reply,
                          issuer=result.issuer)
        command.accept()
        try:
            self._on_command(command)
        except Exception as exc:
            _log.exception("on_command raised for %s/%s", command.name, command.id)
            if command.status == "accepted":
                command.fail(f"internal error: {type(exc).__name__}")

    def _reply(self, command: Command, status: str, reason: str | None, result: Any) -> None:
        """A Command changed status (any thread): queue its ack."""
        self._send(command.name, command.id, status, reason, result)

    def _send(self, name: str, cmd_id: str | None, status: str, reason: str | None,
              result: Any) -> None:
        doc: dict[str, Any] = {"id": cmd_id, "status": status, "reason": reason,
                               "at": iso_utc(datetime.now(UTC)),
                               "device_id": self._topics.device_id}
        if result is not None:
            doc["result"] = result
        self._acks.add(self._topics.ack(name), encode_json(doc))
        self._wake()
