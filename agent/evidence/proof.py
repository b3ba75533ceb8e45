"""``bodycam proof``: Merkle proofs a court or a back office can check without our code.

* ``inclusion TARGET`` — that one log entry (a segment, given by its manifest or media file,
  its manifest SHA-256, or ``#INDEX``) is in the log committed to by the signed checkpoint;
* ``consistency OLD_CHECKPOINT`` — that the current log extends an earlier checkpoint (no
  rollback, no fork, nothing rewritten);
* ``check PROOF.json`` — re-checks a proof file offline (and the checkpoint's signature
  with ``--pubkey``).

A proof file is self-contained JSON: the log entry's exact bytes (canonical JSON), the audit
path as base64 SHA-256 hashes, and the signed checkpoint text(s). docs/EVIDENCE-FORMAT.md
gives the algorithm (RFC 9162 §2.1.3) for checking it with any tool.

Reads the data directory without taking the agent's log lock: proofs can be made while the
agent runs, from the entries covered by the checkpoint read first.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hw.errors import EvidenceError, LogCorrupt, VerificationError

from .canonical import parse_canonical
from .checkpoint import SignedCheckpoint, parse_signed_checkpoint
from .inventory import UnsafeFile, read_bounded
from .journal import MANIFEST_SUFFIX, sidecar
from .keys import public_key_from_text
from .log import EvidenceLog, replay_entries
from .logcheck import MAX_CHECKPOINT, MAX_LOG
from .manifest import parse_envelope
from .merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

__all__ = ["check_proof", "consistency", "inclusion", "log_inclusion", "proof_main"]

PROOF_FORMAT = "bodycam-proof/1"
_MAX_PROOF = 4 << 20


class ProofError(EvidenceError, ValueError):
    """A proof cannot be made or does not check out; the message says why."""


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def _unb64(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list) or len(values) > 128:
        raise ProofError(f"{what} must be a list of at most 128 hashes")
    try:
        out = [base64.b64decode(str(v), validate=True) for v in values]
    except ValueError:
        raise ProofError(f"{what} holds a value that is not base64") from None
    if any(len(h) != 32 for h in out):
        raise ProofError(f"{what} holds a value that is not a SHA-256 hash")
    return out


def _log_state(data_dir: Path) -> tuple[SignedCheckpoint, list[bytes]]:
    """The signed checkpoint and the log records it covers."""
    try:
        scp = parse_signed_checkpoint(read_bounded(data_dir / "log" / "checkpoint",
                                                   MAX_CHECKPOINT))
        records = replay_entries(read_bounded(data_dir / "log" / "entries.bin", MAX_LOG)).records
    except (UnsafeFile, VerificationError, LogCorrupt) as exc:
        raise ProofError(f"{data_dir}: the log cannot be read ({exc})") from None
    size = scp.checkpoint.size
    if size > len(records) or root_of([leaf_hash(r) for r in records[:size]]) != \
            scp.checkpoint.root:
        raise ProofError(f"{data_dir}: the log does not match its signed checkpoint; "
                         "run bodycam verify")
    return scp, records[:size]


def _find(target: str, data_dir: Path, records: list[bytes]) -> int:
    """The log index a target names: #N, a manifest SHA-256, or a manifest/media file."""
    if target.startswith("#") and target[1:].isdigit():
        index = int(target[1:])
    else:
        sha = target.lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            path = Path(target)
            if not path.name.endswith(MANIFEST_SUFFIX):
                path = sidecar(path, MANIFEST_SUFFIX)
            try:
                sha = parse_envelope(read_bounded(path, 1 << 20)).sha256
            except (UnsafeFile, VerificationError) as exc:
                raise ProofError(f"{path}: not a readable manifest ({exc})") from None
        found = [i for i, r in enumerate(records)
                 if (e := _entry(r)).get("kind") == "segment" and e.get("manifest_sha256") == sha]
        if not found:
            raise ProofError(f"no segment with manifest SHA-256 {sha[:16]}… in the signed log of "
                             f"{data_dir}")
        index = found[0]
    if not 0 <= index < len(records):
        raise ProofError(f"entry #{index} is not covered by the signed checkpoint "
                         f"({len(records)} entries)")
    return index


def _entry(record: bytes) -> dict[str, Any]:
    try:
        e = parse_canonical(record)
    except (ValueError, UnicodeDecodeError):
        return {}
    return e if isinstance(e, dict) else {}


def _inclusion_doc(scp: SignedCheckpoint, index: int, entry: bytes,
                   hashes: Sequence[bytes]) -> dict[str, Any]:
    return {"format": PROOF_FORMAT, "type": "inclusion", "origin": scp.checkpoint.origin,
            "leaf_index": index, "tree_size": scp.checkpoint.size,
            "entry": entry.decode("utf-8"), "leaf_hash": _b64(leaf_hash(entry)),
            "hashes": [_b64(h) for h in hashes], "checkpoint": scp.text.decode("utf-8")}


def inclusion(data_dir: Path, target: str) -> dict[str, Any]:
    """An inclusion proof of one entry in the log of the current signed checkpoint."""
    scp, records = _log_state(data_dir)
    index = _find(target, data_dir, records)
    return _inclusion_doc(scp, index, records[index],
                          inclusion_proof([leaf_hash(r) for r in records], index))


def log_inclusion(log: EvidenceLog, index: int) -> dict[str, Any]:
    """The same proof from a live log (the agent's), against its current signed checkpoint:
    what the MQTT ``segment`` message carries so the back office can show membership."""
    scp = parse_signed_checkpoint(log.checkpoint())
    return _inclusion_doc(scp, index, log.entry(index),
                          log.inclusion_proof(index, scp.checkpoint.size))


def consistency(data_dir: Path, old_checkpoint: bytes) -> dict[str, Any]:
    """A consistency proof from an earlier checkpoint to the current one."""
    scp, records = _log_state(data_dir)
    try:
        old = parse_signed_checkpoint(old_checkpoint)
    except VerificationError as exc:
        raise ProofError(f"old checkpoint: {exc}") from None
    if old.checkpoint.origin != scp.checkpoint.origin:
        raise ProofError(f"old checkpoint is of {old.checkpoint.origin}, not "
                         f"{scp.checkpoint.origin}")
    if old.checkpoint.size > len(records):
        raise ProofError(f"old checkpoint covers {old.checkpoint.size} entries, the log only "
                         f"{len(records)}: rolled back")
    leaves = [leaf_hash(r) for r in records]
    return {"format": PROOF_FORMAT, "type": "consistency", "origin": scp.checkpoint.origin,
            "old_size": old.checkpoint.size, "new_size": len(records),
            "hashes": [_b64(h) for h in consistency_proof(leaves, old.checkpoint.size)],
            "old_checkpoint": old.text.decode("utf-8"), "checkpoint": scp.text.decode("utf-8")}


def _checkpoint(doc: dict[str, Any], key: str, pubkeys: Sequence[bytes]) -> SignedCheckpoint:
    text = doc.get(key)
    if not isinstance(text, str):
        raise ProofError(f"proof lacks '{key}'")
    try:
        scp = parse_signed_checkpoint(text.encode("utf-8"))
        if pubkeys:
            scp.verify(pubkeys)
    except VerificationError as exc:
        raise ProofError(f"{key}: {exc}") from None
    if scp.checkpoint.origin != doc.get("origin"):
        raise ProofError(f"{key} is of another log than the proof says")
    return scp


def check_proof(doc: Any, pubkeys: Sequence[bytes] = ()) -> str:
    """Check a proof document; returns a one-line confirmation, ProofError otherwise."""
    if not isinstance(doc, dict) or doc.get("format") != PROOF_FORMAT:
        raise ProofError(f"not a {PROOF_FORMAT} document")
    cp = _checkpoint(doc, "checkpoint", pubkeys).checkpoint
    hashes = _unb64(doc.get("hashes"), "hashes")
    if doc.get("type") == "inclusion":
        entry, index = doc.get("entry"), doc.get("leaf_index")
        if not isinstance(entry, str) or not isinstance(index, int) or isinstance(index, bool):
            raise ProofError("inclusion proof needs 'entry' text and an integer 'leaf_index'")
        if doc.get("tree_size") != cp.size:
            raise ProofError("tree_size differs from the checkpoint's size")
        if not verify_inclusion(leaf_hash(entry.encode("utf-8")), index, cp.size, hashes,
                                cp.root):
            raise ProofError("inclusion proof does not lead to the checkpoint's root")
        return f"entry #{index} is in the log {cp.origin} of {cp.size} entries"
    if doc.get("type") == "consistency":
        old = _checkpoint(doc, "old_checkpoint", pubkeys).checkpoint
        if not verify_consistency(old.size, cp.size, old.root, cp.root, hashes):
            raise ProofError(f"the log of {cp.size} entries does not extend the one of "
                             f"{old.size}: forked or rewritten")
        return f"the log {cp.origin} of {cp.size} entries extends the one of {old.size}"
    raise ProofError("proof type must be 'inclusion' or 'consistency'")


def proof_main(argv: Sequence[str] | None = None) -> int:
    """``bodycam proof inclusion|consistency|check …``; exit 0 ok, 1 failed, 2 usage."""
    ap = argparse.ArgumentParser(prog="bodycam proof", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)
    inc = sub.add_parser("inclusion", help="prove an entry is in the signed log")
    inc.add_argument("target", help="manifest or media file, manifest SHA-256, or #INDEX")
    con = sub.add_parser("consistency", help="prove the log extends an earlier checkpoint")
    con.add_argument("old_checkpoint", type=Path)
    for p in (inc, con):
        p.add_argument("--data-dir", type=Path, required=True)
        p.add_argument("--out", type=Path, help="write the proof here (default: stdout)")
    chk = sub.add_parser("check", help="check a proof file offline")
    chk.add_argument("proof", type=Path)
    chk.add_argument("--pubkey", action="append", default=[],
                     help="device public key (PEM file or base64) to check the checkpoint")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        if args.action == "check":
            keys = [public_key_from_text(read_bounded(Path(k), 16 << 10).decode()
                                         if Path(k).exists() else k) for k in args.pubkey]
            doc = json.loads(read_bounded(args.proof, _MAX_PROOF))
            print(f"OK: {check_proof(doc, keys)}"
                  + ("" if keys else " (checkpoint signature not checked: pass --pubkey)"))
            return 0
        if args.action == "inclusion":
            doc = inclusion(args.data_dir, args.target)
        else:
            doc = consistency(args.data_dir, read_bounded(args.old_checkpoint, MAX_CHECKPOINT))
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if args.out:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    except ProofError as exc:
        print(f"bodycam proof: {exc}", file=sys.stderr)
        return 1
    except (OSError, UnsafeFile, EvidenceError, ValueError, RecursionError) as exc:
        print(f"bodycam proof: {exc}", file=sys.stderr)
        return 2
