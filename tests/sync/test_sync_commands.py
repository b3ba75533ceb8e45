"""Command parsing: every accepted shape, every rejection reason, and fuzzed input."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.evidence.keys import DeviceKey
from agent.evidence.receipt import issue_receipt
from agent.sync.command_messages import (
    EVIDENCE_COMMANDS,
    MAX_ACK_RECEIPTS,
    MAX_COMMAND_BYTES,
    Command,
    CommandRequest,
    Rejection,
    iso_utc,
    parse_command,
)
from hw.errors import SyncError

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
ISSUER = "dispatch:A-7"


STATION = DeviceKey(Ed25519PrivateKey.generate())  # made at run time, never stored


def _receipt(seq: int = 0) -> dict[str, Any]:
    return issue_receipt(STATION, station_id="ST-1", device_id="BC-0001", device_seq=seq,
                         cipher_sha256="a" * 64, manifest_sha256="b" * 64,
                         utc="2026-11-27T11:00:00.000000Z").to_json()


def cmd(args: Any = None, *, cid: str = "c-1", age_s: float = 1.0, issuer: str | None = ISSUER,
        **extra: Any) -> bytes:
    doc: dict[str, Any] = {"id": cid, "issued_at": iso_utc(NOW - timedelta(seconds=age_s))}
    if issuer is not None:
        doc["issuer"] = issuer
    if args is not None:
        doc["args"] = args
    doc.update(extra)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("start", None),
        ("stop", {}),
        ("stop", {"reason": "scene cleared, suspect in custody"}),
        ("checkpoint", {}),
        ("bookmark", {"label": "suspect left vehicle"}),
        ("bookmark", {"label": "出示执法证件", "checklist_item": "identity"}),
        ("matter", {"code": "XZCF-001", "scope": "next"}),
        ("matter", {"code": "inspection/site"}),
        ("ack", {"receipts": [_receipt(0), _receipt(1)]}),
        ("config_set", {"key": "mqtt.telemetry_s", "value": 60}),
        ("config_set", {"key": "power.warn_min", "value": 12.5}),
        ("config_set", {"key": "power.warn_min", "value": 12}),
        ("config_set", {"key": "device.officer_id", "value": "A1234"}),
    ],
)
def test_valid_commands_are_accepted(name: str, args: Any) -> None:
    """Each documented command shape parses into a request with its args."""
    result = parse_command(name, cmd(args), now=NOW)
    assert isinstance(result, CommandRequest), result
    assert (result.name, result.id, result.args) == (name, "c-1", args or {})
    assert result.issuer == ISSUER


@pytest.mark.parametrize(
    ("name", "payload", "reason", "echo_id"),
    [
        ("start", cmd(age_s=301), "stale", True),
        ("start", cmd(age_s=-31), "future", True),
        ("start", b"{not json", "malformed", False),
        ("start", b"\xff\xfe\x00", "UTF-8", False),
        ("start", b"[1, 2]", "JSON object", False),
        ("start", b'{"id": "x", "issued_at": NaN}', "malformed", False),
        ("start", b"{" * 100_000, "oversize", False),
        ("start", b" " * (MAX_COMMAND_BYTES + 1), "oversize", False),
        ("start", cmd(cid="x" * 65), "invalid id", False),
        ("start", cmd(cid="bad id"), "invalid id", False),
        ("start", json.dumps({"id": 7, "issued_at": iso_utc(NOW)}).encode(), "invalid id", False),
        ("launch", cmd(), "unknown command", True),
        ("start", cmd(extra_field=1), "unknown field", True),
        ("start", json.dumps({"id": "c-1", "issued_at": "2026-11-27T12:00:00"}).encode(),
         "issued_at", True),
        ("start", json.dumps({"id": "c-1", "issued_at": "2026-11-27T20:00:00+08:00"}).encode(),
         "issued_at", True),
        ("start", cmd({"x": 1}), "no arguments", True),
        ("start", cmd([1]), "args", True),
        ("bookmark", cmd({}), "label", True),
        ("bookmark", cmd({"label": 5}), "label", True),
        ("bookmark", cmd({"label": "x" * 201}), "label", True),
        ("bookmark", cmd({"label": "x", "checklist_item": ""}), "checklist_item", True),
        ("matter", cmd({"code": "a b"}), "code", True),
        ("matter", cmd({"code": "A", "scope": "forever"}), "scope", True),
        ("ack", cmd({"device_seq": [0, 1, 2]}), "signed receipt", True),
        ("ack", cmd({"device_seq": list(range(1000))}), "signed receipt", True),
        ("ack", cmd({"receipts": []}), "1-64", True),
        ("ack", cmd({"receipts": [_receipt()] * (MAX_ACK_RECEIPTS + 1)}), "1-64", True),
        ("ack", cmd({"receipts": "all"}), "receipts must be a list", True),
        ("ack", cmd({"receipts": [_receipt(), {"receipt": {}}]}), "receipts[1]", True),
        ("ack", cmd({"receipts": [{**_receipt(), "extra": 1}]}), "exactly", True),
        ("ack", cmd({"receipts": [_receipt()], "x": 1}), "unexpected", True),
        ("stop", cmd(issuer=None), "must name its issuer", True),
        ("stop", cmd({"reason": ""}), "reason", True),
        ("stop", cmd({"reason": 7}), "reason", True),
        ("stop", cmd({"reason": "x" * 201}), "reason", True),
        ("stop", cmd({"reason": "ok", "why": "x"}), "unexpected", True),
        ("ack", cmd({"receipts": [_receipt()]}, issuer=None), "issuer", True),
        ("config_set", cmd({"key": "mqtt.telemetry_s", "value": 60}, issuer=None), "issuer", True),
        ("start", cmd(issuer="a b"), "invalid issuer", True),
        ("start", cmd(issuer=7), "invalid issuer", True),
        ("start", cmd(issuer="x" * 65), "invalid issuer", True),
        ("config_set", cmd({"key": "evidence.recipients", "value": "x"}), "not remotely", True),
        ("config_set", cmd({"key": "audio.enabled", "value": False}), "not remotely", True),
        ("config_set", cmd({"key": "mqtt.telemetry_s"}), "value is required", True),
        ("config_set", cmd({"key": "mqtt.telemetry_s", "value": 5}), ">= 10", True),
        ("config_set", cmd({"key": "mqtt.telemetry_s", "value": True}), "integer", True),
        ("config_set", cmd({"key": "mqtt.telemetry_s", "value": 60.5}), "integer", True),
        ("config_set", cmd({"key": "power.warn_min", "value": "5"}), "number", True),
        ("config_set", cmd({"key": "power.warn_min", "value": 241}), "<= 240", True),
        ("config_set", cmd({"key": "device.officer_id", "value": 7}), "string", True),
        ("config_set", cmd({"key": "device.officer_id", "value": "x" * 65}), "too long", True),
    ],
)
def test_bad_commands_are_rejected_with_a_reason(
    name: str, payload: bytes, reason: str, echo_id: bool
) -> None:
    """Each malformed, stale or disallowed command is refused, naming the problem."""
    result = parse_command(name, payload, now=NOW)
    assert isinstance(result, Rejection)
    assert reason in result.reason
    assert (result.id == "c-1") is echo_id


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=20,
)
names = st.sampled_from(["start", "stop", "bookmark", "matter", "ack", "checkpoint",
                         "config_set", "nope", ""])


@settings(max_examples=120, deadline=None, database=None)
@given(name=names, doc=json_values)
def test_fuzzed_json_never_raises(name: str, doc: Any) -> None:
    """Any JSON document yields a request or a rejection with a reason, never an exception."""
    result = parse_command(name, json.dumps(doc).encode(), now=NOW)
    assert isinstance(result, CommandRequest | Rejection)
    if isinstance(result, Rejection):
        assert result.reason


@settings(max_examples=120, deadline=None, database=None)
@given(name=names, raw=st.binary(max_size=2048))
def test_fuzzed_bytes_never_raise(name: str, raw: bytes) -> None:
    """Arbitrary bytes (mostly not UTF-8 or JSON) are rejected, never raised."""
    result = parse_command(name, raw, now=NOW)
    assert isinstance(result, Rejection) and result.reason


@settings(max_examples=80, deadline=None, database=None)
@given(name=names, args=st.dictionaries(st.sampled_from(["label", "code", "scope", "key",
                                                           "value", "device_seq", "receipts",
                                                           "x"]),
                                         json_values, max_size=4))
def test_fuzzed_args_are_typed_or_rejected(name: str, args: dict[str, Any]) -> None:
    """Whatever the args, an accepted request only carries documented keys."""
    result = parse_command(name, cmd(args), now=NOW)
    if isinstance(result, CommandRequest):
        allowed = {"label", "checklist_item", "code", "scope", "receipts", "key", "value"}
        assert set(result.args) <= allowed


def test_issuer_is_optional_only_for_commands_that_change_no_evidence() -> None:
    """bookmark and checkpoint may omit the issuer; every evidence-changing command may not."""
    assert {"start", "stop", "matter", "ack", "config_set"} == EVIDENCE_COMMANDS
    for name, args in (("bookmark", {"label": "x"}), ("checkpoint", None)):
        result = parse_command(name, cmd(args, issuer=None), now=NOW)
        assert isinstance(result, CommandRequest) and result.issuer is None


def test_a_full_ack_of_receipts_fits_the_size_limit() -> None:
    """64 receipts with the longest ids fit in one command message."""
    key = DeviceKey(Ed25519PrivateKey.generate())
    receipts = [issue_receipt(key, station_id="S" * 64, device_id="D" * 64, device_seq=10**12 + i,
                              cipher_sha256="a" * 64, manifest_sha256="b" * 64,
                              utc="2026-11-27T11:00:00.000000Z").to_json()
                for i in range(MAX_ACK_RECEIPTS)]
    payload = cmd({"receipts": receipts})
    assert len(payload) <= MAX_COMMAND_BYTES
    assert isinstance(parse_command("ack", payload, now=NOW), CommandRequest)


def _recorder() -> tuple[list[tuple[str, str | None, Any]], Command]:
    replies: list[tuple[str, str | None, Any]] = []
    command = Command("start", "c-1", {}, NOW,
                      lambda _c, status, reason, result: replies.append((status, reason, result)))
    return replies, command


def test_command_life_cycle_replies_once_each() -> None:
    """accepted, then exactly one final status; a second final status is an error."""
    replies, command = _recorder()
    command.accept()
    command.succeed({"recording_id": "r1"})
    assert replies == [("accepted", None, None), ("succeeded", None, {"recording_id": "r1"})]
    assert command.status == "succeeded"
    with pytest.raises(SyncError, match="already succeeded"):
        command.fail("late")
    with pytest.raises(SyncError):
        command.accept()


def test_only_one_thread_can_finish_a_command() -> None:
    """Racing finishers from several threads produce exactly one final ack."""
    replies, command = _recorder()
    command.accept()
    errors: list[Exception] = []

    def finish(i: int) -> None:
        try:
            command.fail(f"t{i}") if i % 2 else command.reject(f"t{i}")
        except SyncError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(replies) == 2 and len(errors) == 7
