"""Station receipts one rule at a time (agent/evidence/receipt.py): what parses, what is refused
and the reason given -- the reason is what the verifier prints against an acknowledgement, so
each one must name the field that is wrong."""

from __future__ import annotations

import base64
import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from agent.evidence.receipt import RECEIPT_FORMAT, Receipt, issue_receipt, parse_receipt
from hw.errors import VerificationError
from tests.tools.receipts import RECEIPT_UTC, Station, make_station

HEX = "ab" * 32


@pytest.fixture
def station(tmp_path: Path) -> Station:
    return make_station(tmp_path / "station")


def issued(station: Station, **override: Any) -> Receipt:
    fields: dict[str, Any] = {"station_id": "ST-1", "device_id": "BC-0001", "device_seq": 4,
                              "cipher_sha256": HEX, "manifest_sha256": "cd" * 32,
                              "utc": RECEIPT_UTC}
    fields.update(override)
    return issue_receipt(station.key, **fields)


def raises(reason: str) -> AbstractContextManager[pytest.ExceptionInfo[VerificationError]]:
    """Expect a VerificationError with exactly ``reason``."""
    return pytest.raises(VerificationError, match=f"^{re.escape(reason)}$")


def refused(doc: Any, reason: str) -> None:
    with raises(reason):
        parse_receipt(doc)


def test_round_trip_keeps_body_and_signature(station: Station) -> None:
    """A parsed envelope is the envelope: same body, same signature block, same hash."""
    r = issued(station)
    parsed = parse_receipt(r.to_json())
    assert parsed.to_json() == r.to_json() and parsed.sha256 == r.sha256
    assert parsed.signature == {"alg": "ed25519", "key": station.public_b64,
                                "sig": r.signature["sig"]}
    assert parsed.verify([station.public]) == station.public


@pytest.mark.parametrize("doc", [["receipt", "signature"], "receipt", None,
                                 {"receipt": {}}, {"receipt": {}, "signature": {}, "x": 1}])
def test_envelope_must_be_exactly_receipt_and_signature(doc: Any) -> None:
    """Anything but an object with exactly the two members is refused, saying so."""
    refused(doc, "a receipt is an object with exactly 'receipt' and 'signature'")


@pytest.mark.parametrize("sig", [
    ["alg", "key", "sig"],
    {"alg": "rsa", "key": "a", "sig": "b"},
    {"alg": "ed25519", "key": "a"},
    {"alg": "ed25519", "key": "a", "sig": "b", "kid": "c"},
])
def test_signature_block_shape(station: Station, sig: Any) -> None:
    """The signature block is {alg: ed25519, key, sig} and nothing else."""
    refused({"receipt": issued(station).body, "signature": sig},
            "receipt signature block must be {alg: ed25519, key, sig}")


@pytest.mark.parametrize("key", [["k"], 7, "k" * 201])
def test_signature_fields_are_short_strings(station: Station, key: Any) -> None:
    """A key that is a list, a number or over 200 characters is refused before decoding."""
    refused({"receipt": issued(station).body,
             "signature": {"alg": "ed25519", "key": key, "sig": "s"}},
            "receipt signature fields must be short strings")


def test_two_hundred_characters_is_still_short(station: Station) -> None:
    """The limit is inclusive: a 200-character field parses (and then fails as base64)."""
    r = parse_receipt({"receipt": issued(station).body,
                       "signature": {"alg": "ed25519", "key": "!" * 200, "sig": "s" * 200}})
    with raises("receipt signature key is not base64"):
        r.verify([station.public])


def test_signature_that_is_not_base64_names_which(station: Station) -> None:
    """Key or signature not base64: the message says which of the two."""
    body = issued(station).body
    good = issued(station).signature
    bad_sig = parse_receipt({"receipt": body, "signature": {**good, "sig": "!!"}})
    with raises("receipt signature is not base64"):
        bad_sig.verify([station.public])


def test_untrusted_key_and_bad_signature(station: Station, tmp_path: Path) -> None:
    """A receipt from a key the device does not trust, and one whose signature does not cover
    its body, are refused with different reasons."""
    other = make_station(tmp_path / "other", "ST-2")
    with raises("receipt signed by a key that is not a trusted station key"):
        issued(other).verify([station.public])
    r = issued(station)
    forged = Receipt({**r.body, "device_seq": 5}, dict(r.signature))
    with raises("receipt signature does not verify"):
        forged.verify([station.public])
    short = Receipt(r.body, {**r.signature, "sig": base64.b64encode(b"x" * 10).decode()})
    with raises("receipt signature does not verify"):
        short.verify([station.public])


@pytest.mark.parametrize("body", [
    ["format", "station_id", "device_id", "device_seq", "cipher_sha256", "manifest_sha256",
     "utc"],
    {"format": RECEIPT_FORMAT},
])
def test_body_must_hold_exactly_the_fields(station: Station, body: Any) -> None:
    """A body that is not an object of exactly the receipt fields is refused, listing them."""
    refused({"receipt": body, "signature": issued(station).signature},
            "receipt body must hold exactly ['cipher_sha256', 'device_id', 'device_seq', "
            "'format', 'manifest_sha256', 'station_id', 'utc']")


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("format", "bodycam-receipt/2", f"receipt format is not {RECEIPT_FORMAT}"),
    ("device_seq", True, "receipt device_seq must be a non-negative integer"),
    ("device_seq", "4", "receipt device_seq must be a non-negative integer"),
    ("device_seq", -1, "receipt device_seq must be a non-negative integer"),
    ("station_id", 7, "receipt station_id is not a valid identifier"),
    ("device_id", "../x", "receipt device_id is not a valid identifier"),
    ("cipher_sha256", 7, "receipt cipher_sha256 must be 64 lowercase hex digits"),
    ("manifest_sha256", "AB" * 32, "receipt manifest_sha256 must be 64 lowercase hex digits"),
    ("utc", 7, "receipt utc must be YYYY-MM-DDTHH:MM:SS.ffffffZ"),
    ("utc", "2026-11-27T11:00:00Z", "receipt utc must be YYYY-MM-DDTHH:MM:SS.ffffffZ"),
])
def test_each_body_field_is_checked_and_named(station: Station, field: str, value: Any,
                                              reason: str) -> None:
    """A wrong type or form in any field is refused, naming the field; issuing is refused
    for the same reason as parsing."""
    good = issued(station)
    refused({"receipt": {**good.body, field: value}, "signature": good.signature}, reason)
    if field != "format":
        with raises(reason):
            issued(station, **{field: value})


def test_device_seq_zero_is_a_segment(station: Station) -> None:
    """The first segment (device_seq 0) can be receipted."""
    assert parse_receipt(issued(station, device_seq=0).to_json()).device_seq == 0
