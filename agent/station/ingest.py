"""What the station checks before it promises to hold a segment — with the device's public key
only, never the agency's decryption key.

A finalise request (docs/STATION-API.md §4) carries the signed manifest envelope, the log entry
of the segment, its inclusion proof against a device-signed checkpoint and a consistency proof
between that checkpoint and the newest one the station holds for the device. The checks, in
order, each a named refusal:

1. the manifest envelope parses, its signature verifies with one of the device's keys (the
   registered one or a successor an endorsed rotation introduced, :mod:`.devicekeys`), its
   shape is the one the recorder writes, and it names this device;
2. the entry is canonical JSON, well formed, and is the segment entry of exactly this manifest
   (``manifest_sha256``, ``cipher_sha256``, ``device_seq``, ``seq``, ``recording_id``, and a
   ``path`` whose file name is the manifest's media name);
3. the checkpoint is signed by one of the device's keys under the device's origin, and the
   entry's leaf is in it (RFC 9162 inclusion); a key a rotation retired signs neither a
   checkpoint past its span nor the manifest of an entry after it, and a successor signs no
   manifest of an entry before its proven rotation (:mod:`.keyspans`:
   ``checkpoint-retired-key``, ``manifest-retired-key``, ``manifest-key-not-yet-valid``, all
   alarms);
4. the ciphertext's size and SHA-256 equal the manifest's (:func:`check_cipher`);
5. the checkpoint is consistent with the one the station holds (:func:`check_consistency`): a
   log that shrank or forked is refused and raised as an alarm.

Everything here is pure: no I/O, no clock; :mod:`.server` supplies the inputs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Protocol

from agent.evidence.canonical import canonical_json, parse_canonical
from agent.evidence.checkpoint import SignedCheckpoint, parse_signed_checkpoint
from agent.evidence.log import origin_for
from agent.evidence.manifest import SignedManifest, parse_envelope
from agent.evidence.merkle import leaf_hash, verify_consistency, verify_inclusion
from agent.evidence.shape import entry_problem, manifest_problem
from hw.errors import VerificationError

from .enrolment import Enrolment
from .index import CheckpointRow
from .keyspans import check_manifest_key, checkpoint_signer
from .refusal import Refused

__all__ = ["MAX_FINALISE_BYTES", "MAX_SIDECAR_BYTES", "Finalise", "LogProof", "ProvenSizes", "Verified",
           "check_cipher", "check_consistency", "check_segment", "checked_checkpoint",
           "parse_finalise", "parse_log_proof", "proof_hashes"]

MAX_FINALISE_BYTES = 4 << 20  # a manifest with a long GPS track, proofs of 64 hashes each
#: A segment's C2PA sidecar (§4a): ~4.4 KB from our devices; the same bound as
#: agent.c2pa.binding.MAX_SIDECAR_BYTES (that module loads the C2PA library, this one must not).
MAX_SIDECAR_BYTES = 64 << 10
_MAX_PROOF_HASHES = 128


@dataclass(frozen=True, slots=True)
class LogProof:
    """Where an entry sits in the device's log, as a request proves it: its index, its
    inclusion in a signed checkpoint, and that checkpoint's consistency with the held one (a
    finalise's segment entry, a presented key rotation's entry)."""

    leaf_index: int
    inclusion: tuple[bytes, ...]
    checkpoint: bytes
    old_size: int
    new_size: int
    consistency: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Finalise:
    """A finalise request's parts, syntactically checked."""

    upload_id: str
    manifest: bytes
    entry: bytes
    leaf_index: int
    inclusion: tuple[bytes, ...]
    checkpoint: bytes
    old_size: int
    new_size: int
    consistency: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Verified:
    """A segment whose manifest, log entry and checkpoint all check out."""

    manifest: SignedManifest
    entry: dict[str, Any]
    checkpoint: SignedCheckpoint

    @property
    def device_seq(self) -> int:
        """The segment's device sequence number."""
        return int(self.entry["device_seq"])

    @property
    def cipher_sha256(self) -> str:
        """SHA-256 of the ciphertext the manifest names."""
        return str(self.manifest.manifest["file"]["cipher_sha256"])

    @property
    def cipher_bytes(self) -> int:
        """Size of the ciphertext the manifest names."""
        return int(self.manifest.manifest["file"]["cipher_bytes"])


def _bad(message: str) -> Refused:
    return Refused(400, "bad-request", message)


def proof_hashes(value: Any, what: str) -> tuple[bytes, ...]:
    """A list of base64 SHA-256 hashes (a proof); 400 naming ``what`` is malformed."""
    if not isinstance(value, list) or len(value) > _MAX_PROOF_HASHES:
        raise _bad(f"{what} must be a list of at most {_MAX_PROOF_HASHES} base64 hashes")
    try:
        out = tuple(base64.b64decode(str(v), validate=True) for v in value)
    except (binascii.Error, ValueError):
        raise _bad(f"{what} holds a value that is not base64") from None
    if any(len(h) != 32 for h in out):
        raise _bad(f"{what} holds a value that is not a SHA-256 hash")
    return out


def _uint(doc: dict[str, Any], name: str) -> int:
    v = doc.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise _bad(f"'{name}' must be a non-negative integer")
    return v


def _text(doc: dict[str, Any], name: str) -> bytes:
    v = doc.get(name)
    if not isinstance(v, str) or not v:
        raise _bad(f"'{name}' must be a non-empty string")
    return v.encode("utf-8")


def parse_log_proof(doc: dict[str, Any]) -> LogProof:
    """A request's ``leaf_index``, ``inclusion``, ``checkpoint`` and ``consistency``
    ({old_size, new_size, hashes}); 400 naming the first malformed part."""
    cons = doc.get("consistency")
    if not isinstance(cons, dict):
        raise _bad("'consistency' must be an object {old_size, new_size, hashes}")
    return LogProof(_uint(doc, "leaf_index"), proof_hashes(doc.get("inclusion"), "inclusion"),
                    _text(doc, "checkpoint"), _uint(cons, "old_size"), _uint(cons, "new_size"),
                    proof_hashes(cons.get("hashes"), "consistency.hashes"))


def parse_finalise(body: bytes) -> Finalise:
    """Parse a finalise request body (JSON); 400 naming the first malformed part."""
    try:
        doc = parse_canonical(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"the body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _bad("the body must be a JSON object")
    proof = parse_log_proof(doc)
    upload = doc.get("upload")
    if not isinstance(upload, str):
        raise _bad("'upload' must be the upload id")
    return Finalise(upload, _text(doc, "manifest"), _text(doc, "entry"), proof.leaf_index,
                    proof.inclusion, proof.checkpoint, proof.old_size, proof.new_size,
                    proof.consistency)


def _unverified(message: str, code: str = "not-verified") -> Refused:
    return Refused(422, code, message)


def check_segment(req: Finalise, device: Enrolment) -> Verified:
    """Checks 1–3 of the module docstring; 422 naming the first that fails."""
    try:
        manifest = parse_envelope(req.manifest)
        signer = manifest.verify(list(device.keys))
    except VerificationError as exc:
        raise _unverified(f"manifest: {exc}", "bad-manifest") from None
    problem = manifest_problem(manifest.manifest)
    if problem:
        raise _unverified(f"manifest: {problem}", "bad-manifest")
    m = manifest.manifest
    if m["device_id"] != device.device_id:
        raise _unverified(f"the manifest is of device {str(m['device_id'])[:64]!r}, not of "
                          f"{device.device_id}", "bad-manifest")
    entry = _entry(req.entry)
    want = {"manifest_sha256": manifest.sha256, "cipher_sha256": m["file"]["cipher_sha256"],
            "device_seq": m["device_seq"], "seq": m["seq"], "recording_id": m["recording_id"]}
    for name, value in want.items():
        if entry[name] != value:
            raise _unverified(f"the log entry's {name} is not the manifest's", "entry-mismatch")
    if entry["path"].rsplit("/", 1)[-1] != m["file"]["name"]:
        raise _unverified("the log entry's path does not name the manifest's media file",
                          "entry-mismatch")
    cp = _checkpoint(req, device)
    if not verify_inclusion(leaf_hash(req.entry), req.leaf_index, cp.checkpoint.size,
                            list(req.inclusion), cp.checkpoint.root):
        raise _unverified(f"the entry is not at index {req.leaf_index} of the signed log "
                          f"(size {cp.checkpoint.size})", "not-in-log")
    check_manifest_key(device, signer, req.leaf_index)  # the index is proven now
    return Verified(manifest, entry, cp)


def _entry(data: bytes) -> dict[str, Any]:
    try:
        entry = parse_canonical(data)
        canonical = canonical_json(entry) == data
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise _unverified(f"the log entry is not canonical JSON ({exc})", "bad-entry") from None
    if not canonical:
        raise _unverified("the log entry is not in canonical form", "bad-entry")
    problem = entry_problem(entry)
    if problem:
        raise _unverified(f"log entry: {problem}", "bad-entry")
    if entry.get("kind") != "segment":
        raise _unverified("the log entry is not a segment entry", "bad-entry")
    return dict(entry)


def _checkpoint(req: Finalise, device: Enrolment) -> SignedCheckpoint:
    return checked_checkpoint(req.checkpoint, device)


def checked_checkpoint(note: bytes, device: Enrolment) -> SignedCheckpoint:
    """A signed checkpoint of the device's log, by a key of the device that may sign its size
    (:func:`.keyspans.checkpoint_signer`); 422 ``bad-checkpoint`` otherwise."""
    try:
        cp = parse_signed_checkpoint(note)
        checkpoint_signer(cp, device)
    except VerificationError as exc:
        raise _unverified(f"checkpoint: {exc}", "bad-checkpoint") from None
    if cp.checkpoint.origin != origin_for(device.device_id):
        raise _unverified(f"the checkpoint's origin is not {origin_for(device.device_id)}",
                          "bad-checkpoint")
    return cp


def check_cipher(v: Verified, *, size: int, sha256: str) -> None:
    """Check 4: the bytes received are the ciphertext the manifest names."""
    if size != v.cipher_bytes:
        raise _unverified(f"received {size} bytes; the manifest names {v.cipher_bytes}",
                          "cipher-mismatch")
    if sha256 != v.cipher_sha256:
        raise _unverified("the SHA-256 of the bytes received is not the manifest's",
                          "cipher-mismatch")


class ProvenSizes(Protocol):
    """The consistency proof a request carries (a finalise, a rotation's presentation)."""

    @property
    def old_size(self) -> int: ...
    @property
    def new_size(self) -> int: ...
    @property
    def consistency(self) -> tuple[bytes, ...]: ...


def check_consistency(held: CheckpointRow | None, req: ProvenSizes,
                      cp: SignedCheckpoint) -> bool:
    """Check 5. True if ``cp`` is newer than ``held`` (the station should advance to it).

    The proof runs from the smaller tree to the larger: from the held checkpoint to the
    presented one, or — when another upload of the same device already advanced the station
    further — from the presented one to the held one. A proof for another size than the
    station now holds is a stale view (409 ``stale-log-state``: fetch the state and retry),
    not an alarm; a signed checkpoint that cannot be shown consistent is a fork or a rollback.
    """
    size, root = cp.checkpoint.size, cp.checkpoint.root
    if held is None:
        if req.old_size != 0:
            raise Refused(409, "stale-log-state", "the station holds no checkpoint of this "
                          "device yet; prove from size 0")
        return True
    held_root = base64.b64decode(held.root)
    small, large = sorted((size, held.size))
    if (req.old_size, req.new_size) != (small, large):
        raise Refused(409, "stale-log-state", f"the station holds size {held.size}; prove "
                      f"consistency between {small} and {large}")
    ok = (verify_consistency(held.size, size, held_root, root, list(req.consistency))
          if size >= held.size else
          verify_consistency(size, held.size, root, held_root, list(req.consistency)))
    if not ok:
        what = "forked from" if size >= held.size else "rolled back from, or forked from,"
        raise Refused(409, "log-inconsistent", f"the device's signed log of size {size} is "
                      f"{what} the one of size {held.size} the station holds", alarm=True)
    return size > held.size
