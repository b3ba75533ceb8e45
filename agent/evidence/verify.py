"""``bodycam verify``: offline verification of a data directory or a copied-off evidence folder.

Checks, each reported as a finding (see :mod:`agent.evidence.report`):

* the log replays, matches its signed checkpoint, and the checkpoint's signature verifies;
* consistency with an earlier checkpoint the back office witnessed (rollback, fork);
* every manifest's signature (current or retired device key), its device, its place in the
  log and the ``prev_leaf`` chain; every segment leaf has its manifest and media;
* ciphertext SHA-256 and size, and plaintext SHA-256 when an agency identity is given;
* sequence and time gaps and ordering within each recording; recovered/truncated flags;
  media evicted after acknowledgement (logged), which is not a failure.

Nothing is modified. Trust comes from ``--pubkey`` (the key registered with the fleet) and
``--checkpoint`` (one the back office received); without them the verifier can only rely on
what the folder itself holds, and says so.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.errors import EvidenceError, LogCorrupt, VerificationError

from .age import AgeDecryptor, AgeFormatError, Identity
from .canonical import parse_canonical
from .checkpoint import SignedCheckpoint, parse_signed_checkpoint
from .export import to_geojson, to_gpx, track_rows
from .journal import JOURNAL_SUFFIX, MANIFEST_SUFFIX, sidecar
from .keys import fingerprint, load_public_keys, public_key_from_text
from .log import replay_entries
from .manifest import SignedManifest, parse_envelope
from .merkle import consistency_proof, leaf_hash, root_of, verify_consistency
from .report import Report

__all__ = ["verify", "verify_main"]

_READ = 1 << 20


def verify(path: Path, *, identity: Sequence[Identity] | None = None,
           pubkeys: Sequence[bytes] | None = None,
           trusted_checkpoint: bytes | None = None) -> Report:
    """Verify everything under ``path``; never raises for bad evidence, reports it."""
    return _Verifier(Path(path), identity, pubkeys, trusted_checkpoint).run()


class _Verifier:
    def __init__(self, root: Path, identity: Sequence[Identity] | None,
                 pubkeys: Sequence[bytes] | None, trusted: bytes | None) -> None:
        self.root = root
        self.identity = list(identity or [])
        self.trusted_cp = trusted
        self.r = Report(str(root))
        self.keys = list(pubkeys or [])
        self.leaves: list[bytes] = []
        self.entries: list[dict[str, Any]] = []
        self.manifests: dict[str, tuple[Path, SignedManifest]] = {}  # sha256 → (file, manifest)

    def run(self) -> Report:
        if not self.root.is_dir():
            self.r.add("fail", "no_such_folder", str(self.root), "not a directory")
            return self.r
        self._load_keys()
        if self._load_log():
            self._check_checkpoint()
        self._load_manifests()
        self._check_log_segments()
        self._check_manifests()
        self._check_recordings()
        for journal in sorted(self.root.rglob(f"*{JOURNAL_SUFFIX}")):
            self.r.add("warn", "unsealed", self._rel(journal),
                       "segment was never sealed (crash); the agent recovers it on start")
        return self.r

    def _rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    # --- keys and log ----------------------------------------------------------------------
    def _load_keys(self) -> None:
        if self.keys:
            return
        for keys_dir in [self.root / "keys", *self.root.glob("*/keys")]:
            if keys_dir.is_dir():
                self.keys = list(load_public_keys(keys_dir).values())
                break
        if self.keys:
            self.r.add("warn", "self_trusted_keys", "keys/",
                       "public keys taken from the folder itself; pass --pubkey with the key "
                       "registered for the device for an independent check")
        else:
            self.r.add("fail", "no_keys", str(self.root),
                       "no public key to verify against (pass --pubkey)")

    def _load_log(self) -> bool:
        found = sorted(self.root.rglob("entries.bin"))
        if not found:
            self.r.add("fail", "no_log", str(self.root), "no log (entries.bin) found")
            return False
        self.log_dir = found[0].parent
        try:
            rep = replay_entries(found[0].read_bytes())
        except LogCorrupt as exc:
            self.r.add("fail", "log_corrupt", self._rel(found[0]), str(exc))
            return False
        if rep.torn:
            self.r.add("warn", "log_torn_tail", self._rel(found[0]),
                       f"torn final record after byte {rep.valid_length} ignored (crash)")
        for i, data in enumerate(rep.records):
            self.leaves.append(leaf_hash(data))
            try:
                entry = parse_canonical(data)
            except ValueError:
                self.r.add("fail", "log_entry_unreadable", f"log entry {i}", "not canonical JSON")
                entry = {}
            self.entries.append(entry if isinstance(entry, dict) else {})
        self.r.log_size = len(self.leaves)
        self.r.log_root = root_of(self.leaves).hex()
        return True

    def _signed_cp(self, text: bytes, where: str) -> SignedCheckpoint | None:
        try:
            scp = parse_signed_checkpoint(text)
            pub = scp.verify(self.keys)
        except VerificationError as exc:
            self.r.add("fail", "checkpoint_signature", where, str(exc))
            return None
        self.r.add("ok", "checkpoint_signature", where,
                   f"signature verifies (key {fingerprint(pub)[:16]})")
        return scp

    def _check_checkpoint(self) -> None:
        cp_path = self.log_dir / "checkpoint"
        n = len(self.leaves)
        if not cp_path.is_file():
            self.r.add("fail", "no_checkpoint", self._rel(cp_path), "signed checkpoint missing")
            return
        scp = self._signed_cp(cp_path.read_bytes(), self._rel(cp_path))
        if scp is None:
            return
        cp = scp.checkpoint
        self.r.checkpoint_size = cp.size
        self.r.device_id = cp.origin.rsplit("/", 1)[-1]
        if cp.size > n:
            self.r.add("fail", "log_truncated", self._rel(cp_path),
                       f"checkpoint covers {cp.size} entries but the log holds {n}: "
                       f"entries {n}..{cp.size - 1} were deleted")
        elif root_of(self.leaves[: cp.size]) != cp.root:
            self.r.add("fail", "log_altered", self._rel(cp_path),
                       f"the first {cp.size} log entries do not hash to the signed root")
        elif n - cp.size > 1:
            self.r.add("fail", "checkpoint_stale", self._rel(cp_path),
                       f"checkpoint covers {cp.size} of {n} entries: an old checkpoint was put "
                       "back, or entries were added without the device key")
        elif n - cp.size == 1:
            self.r.add("warn", "entry_unsigned", f"log entry {n - 1}",
                       "last entry not covered by a signed checkpoint (crash during append?)")
        else:
            self.r.add("ok", "log_root", self._rel(cp_path),
                       f"log of {n} entries replays to the signed root")
        if self.trusted_cp is not None:
            self._check_trusted(cp.size, cp.root)

    def _check_trusted(self, size: int, root: bytes) -> None:
        old = self._signed_cp(self.trusted_cp or b"", "--checkpoint")
        if old is None:
            return
        t = old.checkpoint
        n = len(self.leaves)
        if self.r.device_id and t.origin.rsplit("/", 1)[-1] != self.r.device_id:
            self.r.add("fail", "checkpoint_other_log", "--checkpoint",
                       f"trusted checkpoint is for {t.origin}, not this device's log")
        elif t.size > min(n, size):
            self.r.add("fail", "rollback", "--checkpoint",
                       f"back office already witnessed {t.size} entries; this log holds {n} "
                       f"(signed checkpoint {size}): rolled back or replayed old state")
        elif not verify_consistency(t.size, size, t.root, root,
                                    consistency_proof(self.leaves[:size], t.size)):
            self.r.add("fail", "fork", "--checkpoint",
                       f"log is not an extension of the witnessed checkpoint of size {t.size}")
        else:
            self.r.add("ok", "consistency", "--checkpoint",
                       f"log extends the witnessed checkpoint ({t.size} → {size} entries)")

    # --- manifests and media ---------------------------------------------------------------
    def _load_manifests(self) -> None:
        for f in sorted(self.root.rglob(f"*{MANIFEST_SUFFIX}")):
            try:
                signed = parse_envelope(f.read_bytes())
            except (OSError, VerificationError) as exc:
                self.r.add("fail", "manifest_unreadable", self._rel(f), str(exc))
                continue
            self.manifests[signed.sha256] = (f, signed)
        self.r.segments = len(self.manifests)

    def _check_log_segments(self) -> None:
        self.evicted = {e.get("device_seq") for e in self.entries
                        if e.get("kind") == "event" and e.get("type") == "eviction"}
        last_dseq = -1
        for i, e in enumerate(self.entries):
            if e.get("kind") != "segment":
                continue
            dseq = e.get("device_seq")
            where = f"log entry {i} ({e.get('path')})"
            if not isinstance(dseq, int) or dseq <= last_dseq:
                self.r.add("fail", "reordered", where,
                           f"device_seq {dseq} after {last_dseq}: segments out of order")
            elif dseq != last_dseq + 1:
                self.r.add("warn", "device_seq_gap", where,
                           f"device_seq jumps {last_dseq} → {dseq}")
            last_dseq = dseq if isinstance(dseq, int) else last_dseq
            item = self.manifests.get(str(e.get("manifest_sha256")))
            if item is None:
                self.r.add("fail", "segment_missing", where,
                           f"segment seq {e.get('seq')} of recording "
                           f"{str(e.get('recording_id'))[:8]} is in the log but its manifest "
                           "is missing or altered (deleted segment)")
                continue
            m = item[1].manifest
            prev = self.leaves[i - 1].hex() if i else None
            if m.get("prev_leaf") != prev:
                self.r.add("fail", "chain_broken", self._rel(item[0]),
                           f"prev_leaf does not match log entry {i - 1}")

    def _check_manifests(self) -> None:
        in_log = {e.get("manifest_sha256") for e in self.entries if e.get("kind") == "segment"}
        for sha, (f, signed) in self.manifests.items():
            where = self._rel(f)
            m = signed.manifest
            failures_before = len(self.r.failures)
            try:
                pub = signed.verify(self.keys)
            except VerificationError as exc:
                code = "forged_signature"
                if m.get("device_id") != self.r.device_id and self.r.device_id:
                    code = "foreign_segment"
                    exc = VerificationError(
                        f"segment from another device ({m.get('device_id')}): {exc}")
                self.r.add("fail", code, where, str(exc))
                continue
            if self.r.device_id and m.get("device_id") != self.r.device_id:
                self.r.add("fail", "foreign_segment", where,
                           f"manifest is from device {m.get('device_id')}, log is "
                           f"{self.r.device_id}")
                continue
            if sha not in in_log:
                self.r.add("fail", "not_in_log", where,
                           "signed manifest has no leaf in the log (inserted, or log cut)")
            file = m.get("file") or {}
            if f.name != sidecar(f.with_name(str(file.get("name"))), MANIFEST_SUFFIX).name:
                self.r.add("fail", "renamed", where,
                           f"manifest file name does not match its media {file.get('name')}")
            self._check_media(f.with_name(str(file.get("name"))), m, where)
            for flag in ("recovered", "truncated", "unencrypted"):
                if flag in m.get("flags", []):
                    self.r.add("warn", flag, where, _FLAG_TEXT[flag])
            if len(self.r.failures) == failures_before:
                self.r.add("ok", "segment", where,
                           f"signature (key {fingerprint(pub)[:16]}), log leaf and hashes intact")

    def _check_media(self, media: Path, m: dict[str, Any], where: str) -> None:
        file = m["file"]
        if not media.is_file():
            if m.get("device_seq") in self.evicted:
                self.r.add("warn", "evicted", where,
                           "media evicted after acknowledgement by the back office (logged)")
            else:
                self.r.add("fail", "media_deleted", where, f"media file {media.name} is missing")
            return
        dec = (AgeDecryptor(self.identity, tolerant="truncated" in m.get("flags", []))
               if self.identity and file.get("encrypted") else None)
        size, cipher, plain = self._read_media(media, dec, where)
        if size != file.get("cipher_bytes"):
            self.r.add("fail", "media_altered", where,
                       f"{media.name}: {size} bytes, the signed manifest expected "
                       f"{file.get('cipher_bytes')} (truncated or extended)")
        elif cipher != file.get("cipher_sha256"):
            self.r.add("fail", "media_altered", where,
                       f"{media.name}: SHA-256 differs from the signed manifest (altered)")
        if plain is None or dec is None:
            return
        if file.get("plain_sha256") is None:
            self.r.add("ok", "plaintext", where,
                       f"decrypts {'up to its last complete chunk' if dec.truncated else 'fully'}"
                       " (plaintext hash not recorded: sealed after a crash)")
        elif plain != file["plain_sha256"]:
            self.r.add("fail", "plaintext_altered", where,
                       f"{media.name}: decrypted SHA-256 differs from the manifest")
        else:
            self.r.add("ok", "plaintext", where, "decrypted media matches plaintext SHA-256")

    def _read_media(self, media: Path, dec: AgeDecryptor | None,
                    where: str) -> tuple[int, str, str | None]:
        """One streaming pass: size, ciphertext SHA-256 and (if decrypting) plaintext SHA-256."""
        cipher, plain = hashlib.sha256(), hashlib.sha256()
        size = 0
        with open(media, "rb") as fh:
            while block := fh.read(_READ):
                cipher.update(block)
                size += len(block)
                if dec is not None:
                    try:
                        plain.update(dec.update(block))
                    except AgeFormatError as exc:
                        self.r.add("fail", "decrypt_failed", where, f"{media.name}: {exc}")
                        dec = None
        if dec is not None:
            try:
                plain.update(dec.finalize())
            except AgeFormatError as exc:
                self.r.add("fail", "decrypt_failed", where, f"{media.name}: {exc}")
                dec = None
        return size, cipher.hexdigest(), plain.hexdigest() if dec is not None else None

    def _check_recordings(self) -> None:
        by_rec: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _, signed in self.manifests.values():
            m = signed.manifest
            if m.get("device_id") == self.r.device_id or not self.r.device_id:
                by_rec[str(m.get("recording_id"))].append(m)
        for rid, ms in sorted(by_rec.items()):
            ms.sort(key=lambda m: int(m.get("seq", -1)))
            where = f"recording {rid[:8]}"
            for a, b in itertools.pairwise(ms):
                if b["seq"] != a["seq"] + 1:
                    self.r.add("fail", "sequence_gap", where,
                               f"segments {a['seq'] + 1}..{b['seq'] - 1} missing")
                if a["device_seq"] >= b["device_seq"]:
                    self.r.add("fail", "reordered", where,
                               f"seq {b['seq']} has device_seq {b['device_seq']} <= "
                               f"{a['device_seq']} of seq {a['seq']}")
                gap = _gap_ms(a.get("end", {}).get("utc"), b.get("start", {}).get("utc"))
                if gap is not None and abs(gap) > 1:
                    self.r.add("warn", "time_gap", where,
                               f"{gap} ms between end of seq {a['seq']} and start of {b['seq']}")
            if ms and ms[0]["seq"] != 0:
                self.r.add("fail", "sequence_gap", where, f"segments 0..{ms[0]['seq'] - 1} missing")

    def tracks(self) -> dict[str, list[list[Any]]]:
        by_rec: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _, s in self.manifests.values():
            by_rec[str(s.manifest.get("recording_id"))].append(s.manifest)
        return {rid: track_rows(ms) for rid, ms in by_rec.items()}


_FLAG_TEXT = {
    "recovered": "segment was sealed after a crash (recovered)",
    "truncated": "segment was cut at its last complete chunk after a crash (truncated)",
    "unencrypted": "segment stored without encryption (explicit configuration)",
}


def _gap_ms(end: Any, start: Any) -> int | None:
    if not isinstance(end, str) or not isinstance(start, str):
        return None
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    try:
        delta = datetime.strptime(start, fmt) - datetime.strptime(end, fmt)
    except ValueError:
        return None
    return round(delta.total_seconds() * 1000)


def _read_keys(values: Sequence[str]) -> list[bytes]:
    out = []
    for v in values:
        p = Path(v)
        out.append(public_key_from_text(p.read_text() if p.is_file() else v))
    return out


def _coverage(path: Path) -> list[Any]:
    """Per recording: the enforcement matter's checklist coverage and whether it is one
    continuous whole (the seed's "whole process" requirement). Informational: integrity
    failures are the report's business, so a missing checklist item does not fail verify."""
    from agent.matters.coverage import coverage_for_dir

    try:
        return coverage_for_dir(path)
    except (OSError, ValueError, EvidenceError) as exc:
        print(f"bodycam verify: coverage not computed: {exc}", file=sys.stderr)
        return []


def verify_main(argv: Sequence[str] | None = None) -> int:
    """``bodycam verify PATH [...]``; exit 0 intact, 1 on any failure, 2 on usage error."""
    ap = argparse.ArgumentParser(prog="bodycam verify", description=__doc__.split("\n")[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--identity", type=Path, help="agency age identity file (checks plaintext)")
    ap.add_argument("--pubkey", action="append", default=[],
                    help="trusted device public key (PEM file or base64); repeatable")
    ap.add_argument("--checkpoint", type=Path, help="a checkpoint the back office witnessed")
    ap.add_argument("--json", action="store_true", help="machine-readable report")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("--gpx", type=Path, help="write the recordings' GPS track as GPX")
    out.add_argument("--geojson", type=Path, help="write the recordings' GPS track as GeoJSON")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        ids = Identity.from_file(args.identity.read_text()) if args.identity else None
        keys = _read_keys(args.pubkey)
        trusted = args.checkpoint.read_bytes() if args.checkpoint else None
    except (OSError, EvidenceError, ValueError) as exc:
        print(f"bodycam verify: {exc}", file=sys.stderr)
        return 2
    v = _Verifier(args.path, ids, keys, trusted)
    report = v.run()
    recordings = _coverage(args.path)
    if args.json:
        doc = report.to_json()
        doc["recordings"] = [c.to_json() for c in recordings]
        print(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(report.render())
        for cov in recordings:
            print()
            print("\n".join(cov.render_text()))
    if args.gpx or args.geojson:
        rows = [r for _, rs in sorted(v.tracks().items()) for r in rs]
        name = report.device_id or args.path.name
        text = to_gpx(rows, name=name) if args.gpx else to_geojson(rows, name=name)
        (args.gpx or args.geojson).write_text(text)
    return 0 if report.ok else 1
