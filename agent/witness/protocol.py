"""The tlog-witness ``add-checkpoint`` wire format (https://c2sp.org/tlog-witness).

Request body::

    old <size>\\n
    <base64 consistency proof hash>\\n      (0 to 63 lines)
    \\n
    <signed checkpoint note>

Responses: 200 with the witness's cosignature line(s); 409 with the witness's size
(``<size>\\n``, ``Content-Type: text/x.tlog.size``); 400/403/404/422 with a short reason.

A witness faces anyone on the network, so the parser is strict and bounded: a body over
:data:`MAX_REQUEST_BYTES`, a non-canonical number or base64 hash, a checkpoint that is not
exactly ``origin / size / root`` — each is a :class:`~agent.witness.refusals.BadRequest`,
never another exception and never a partial acceptance.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from agent.evidence.checkpoint import SignedCheckpoint, parse_signed_checkpoint
from hw.errors import VerificationError

from .cosignature import DASH, MAX_NOTE_BYTES, MAX_SIGNATURE_LINES, Cosignature, parse_cosignature
from .refusals import BadRequest, WitnessUnavailable

__all__ = [
    "CONTENT_TYPE_SIZE",
    "CONTENT_TYPE_TEXT",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "MAX_TREE_SIZE",
    "AddCheckpointRequest",
    "format_conflict",
    "format_cosignatures",
    "parse_conflict",
    "parse_cosignatures",
]

CONTENT_TYPE_SIZE = "text/x.tlog.size"
CONTENT_TYPE_TEXT = "text/plain; charset=utf-8"
MAX_PROOF_LINES = 63
MAX_TREE_SIZE = (1 << 63) - 1
MAX_REQUEST_BYTES = 16 + MAX_PROOF_LINES * 45 + 1 + MAX_NOTE_BYTES
_MAX_RESPONSE_BYTES = MAX_SIGNATURE_LINES * 200


def _decimal(text: str, what: str) -> int:
    """A tree size in ASCII decimal without leading zeroes (``0`` itself allowed)."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit() \
            or (text[0] == "0" and text != "0"):
        raise BadRequest(f"{what} {text[:24]!r} is not a decimal without leading zeroes")
    value = int(text)
    if value > MAX_TREE_SIZE:
        raise BadRequest(f"{what} exceeds 2^63-1")
    return value


def _hash_line(line: str) -> bytes:
    try:
        raw = base64.b64decode(line, validate=True)
    except binascii.Error:
        raise BadRequest("consistency proof line is not base64") from None
    if len(raw) != 32 or base64.b64encode(raw).decode() != line:
        raise BadRequest("consistency proof line is not one canonical base64 SHA-256 hash")
    return raw


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """An add-checkpoint request: the size the client believes the witness holds, a
    consistency proof from it, and the new signed checkpoint (parsed, not yet verified)."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint

    def encode(self) -> bytes:
        """The request body."""
        return encode_request(self.old_size, self.proof, self.checkpoint.text)

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpointRequest:
        """Parse a request body strictly; :class:`BadRequest` names what is wrong."""
        if len(body) > MAX_REQUEST_BYTES:
            raise BadRequest(f"request body of {len(body)} bytes exceeds {MAX_REQUEST_BYTES}")
        head, sep, note = body.partition(b"\n\n")
        if not sep:
            raise BadRequest("request has no blank line before the checkpoint")
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError:
            raise BadRequest("request header lines are not ASCII") from None
        if not lines[0].startswith("old "):
            raise BadRequest("request does not start with an 'old <size>' line")
        old = _decimal(lines[0][4:], "old size")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise BadRequest(f"more than {MAX_PROOF_LINES} consistency proof lines")
        proof = tuple(_hash_line(line) for line in lines[1:])
        if len(note) > MAX_NOTE_BYTES:
            raise BadRequest(f"checkpoint of {len(note)} bytes exceeds {MAX_NOTE_BYTES}")
        if any(b < 0x20 and b != 0x0A for b in note):
            raise BadRequest("checkpoint holds a control character")
        try:
            signed = parse_signed_checkpoint(note)
        except (VerificationError, ValueError) as exc:
            raise BadRequest(f"checkpoint: {exc}") from None
        if signed.checkpoint.size > MAX_TREE_SIZE or len(signed.checkpoint.origin) > 256:
            raise BadRequest("checkpoint size or origin out of bounds")
        if old > signed.checkpoint.size:
            raise BadRequest(f"old size {old} is larger than the checkpoint's {signed.checkpoint.size}")
        return cls(old, proof, signed)


def encode_request(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """Build an add-checkpoint body from its parts (the checkpoint note as signed)."""
    if len(proof) > MAX_PROOF_LINES:
        raise ValueError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + checkpoint


def format_cosignatures(cosignatures: Sequence[Cosignature]) -> bytes:
    """A 200 response body: one signature line per cosignature."""
    return b"".join(c.line() for c in cosignatures)


def parse_cosignatures(body: bytes) -> list[Cosignature]:
    """The cosignature/v1 lines of a 200 response (other signature types are skipped)."""
    if len(body) > _MAX_RESPONSE_BYTES:
        raise WitnessUnavailable(f"witness response of {len(body)} bytes is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessUnavailable("witness response is not UTF-8") from None
    if not text.endswith("\n"):
        raise WitnessUnavailable("witness response does not end in a newline")
    out: list[Cosignature] = []
    for line in text[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH:
            raise WitnessUnavailable(f"witness response line is not a signature: {line[:60]!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            raise WitnessUnavailable("witness signature is not base64") from None
        cosig = parse_cosignature(parts[1], blob)
        if cosig is not None:
            out.append(cosig)
    return out


def format_conflict(size: int) -> bytes:
    """A 409 response body: the witness's latest cosigned size."""
    return b"%d\n" % size


def parse_conflict(body: bytes) -> int:
    """The witness's size from a 409 body."""
    text = body.decode("ascii", "replace")
    if not text.endswith("\n"):
        raise WitnessUnavailable("409 body is not '<size>\\n'")
    try:
        return _decimal(text[:-1], "witness size")
    except BadRequest as exc:
        raise WitnessUnavailable(str(exc)) from None
