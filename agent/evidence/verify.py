"""``bodycam verify``: offline verification of a data directory or a copied-off evidence folder.

The verifier is an adversarial parser: the folder may have been prepared by someone who wants
it to pass. So every entry under it is accounted for (:mod:`agent.evidence.layout`), files are
opened without following links and read only up to a bound (:mod:`agent.evidence.inventory`),
every parsed document is shape-checked before use (:mod:`agent.evidence.shape`), and nothing
malformed raises: it becomes a named finding and exit code 1.

Checks, each reported as a finding (see :mod:`agent.evidence.report`):

* the log at ``log/entries.bin`` replays, matches its signed checkpoint, and the checkpoint's
  signature verifies; consistency with an earlier checkpoint the back office witnessed;
* receipts and evictions: a missing segment is excused only by a signed eviction citing a
  station receipt for exactly that segment (:mod:`agent.evidence.logcheck`);
* every manifest file: size, shape, signature (current or retired device key), device, its
  place (its recording folder, the path its log entry names), the ``prev_leaf`` chain; every
  segment leaf has its manifest and media; duplicates and stray media are failures;
* ciphertext SHA-256 and size, and plaintext SHA-256 when an agency identity is given;
* sequence and time gaps and ordering within each recording; recovered/truncated flags.

Nothing is modified. Trust comes from ``--pubkey`` (the key registered with the fleet),
``--checkpoint`` (one the back office received) and ``--station-key``; without them the
verifier can only rely on what the folder itself holds, and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from agent.location.export import track_segments
from agent.witness.cosignature import VerifierKey
from hw.errors import EvidenceError, VerificationError

from .age import AgeDecryptor, AgeFormatError, Identity
from .canonical import parse_canonical
from .inventory import Node, UnsafeFile, open_regular, read_bounded, walk
from .journal import MANIFEST_SUFFIX, sidecar
from .keys import fingerprint, public_key_from_text
from .layout import CREDENTIAL_SUFFIX, Layout, classify, evidence_like
from .logcheck import LogState, check_log
from .manifest import SignedManifest, parse_envelope
from .report import Report
from .shape import manifest_problem
from .witnessed import Cosigned, check_witnessed

__all__ = ["Trust", "Verifier", "verify"]

_READ = 1 << 20
MAX_MANIFEST = 1 << 20   # a manifest is ~2-20 kB; a 300 s GPS track stays far below this
MAX_JOURNAL = 1 << 20
MAX_KEY = 16 << 10
_MAX_CREDENTIAL = 1 << 20
_SPOOL = 64 << 20  # plaintext kept in memory up to this, then in a temporary file


def verify(path: Path, *, identity: Sequence[Identity] | None = None,
           pubkeys: Sequence[bytes] | None = None,
           trusted_checkpoint: bytes | None = None,
           station_keys: Sequence[bytes] | None = None,
           witnesses: Sequence[VerifierKey] | None = None,
           c2pa_anchors: bytes | None = None) -> Report:
    """Verify everything under ``path``; never raises for bad evidence, reports it."""
    trust = Trust(list(identity or []), list(pubkeys or []), trusted_checkpoint,
                  list(station_keys or []), list(witnesses or []), c2pa_anchors)
    return Verifier(Path(path), trust).run()


@dataclass(frozen=True, slots=True)
class Trust:
    """What the person verifying brings from outside the folder."""

    identity: list[Identity]        # the agency's age identity: plaintext hashes too
    pubkeys: list[bytes]            # the device key(s) registered with the fleet
    checkpoint: bytes | None        # a checkpoint the back office received (maybe cosigned)
    station_keys: list[bytes]       # collection-station receipt keys
    witnesses: list[VerifierKey]    # witness verifier keys
    c2pa_anchors: bytes | None = None  # PEM trust anchors for Content Credentials


@dataclass(frozen=True, slots=True)
class _Found:
    """A manifest file that parsed, fits the shape and carries a trusted signature."""

    node: Node
    signed: SignedManifest

    @property
    def manifest(self) -> dict[str, Any]:
        return self.signed.manifest

    @property
    def media_rel(self) -> str:
        return f"{self.node.rel.rsplit('/', 1)[0]}/{self.manifest['file']['name']}"


class Verifier:
    def __init__(self, root: Path, trust: Trust) -> None:
        self.root = root
        self.identity = trust.identity
        self.trusted_cp = trust.checkpoint
        self.station_keys = trust.station_keys
        self.witnesses = trust.witnesses
        self.c2pa_anchors = trust.c2pa_anchors
        self.c2pa_claimed: set[str] = set()
        self.r = Report(str(root))
        self.keys = list(trust.pubkeys)
        self.lay = Layout()
        self.log = LogState()
        self.accepted: list[dict[str, Any]] = []  # manifests at their logged place, verified

    def run(self) -> Report:
        if not self.root.is_dir():
            self.r.add("fail", "no_such_folder", str(self.root), "not a directory")
            return self.r
        self.root = self._data_root()
        self.lay = classify(walk(self.root), self.r)
        self._load_keys()
        self.log = check_log(self.lay.log, self.lay.checkpoint, self.keys, self.r,
                             trusted_checkpoint=self.trusted_cp, station_keys=self.station_keys)
        if self.witnesses:
            extra = [Cosigned("--checkpoint", self.trusted_cp)] if self.trusted_cp else []
            check_witnessed([*extra, *self._cosigned_notes()], self.witnesses, self.keys,
                            self.log, self.r)
        found = self._load_manifests()
        claimed = self._check_manifests(found)
        self._check_log_segments(found)
        claimed |= self._check_journals()
        for rel in sorted(set(self.lay.credentials) - self.c2pa_claimed):
            self.r.add("warn", "stray_credential", rel,
                       "a Content Credential beside no verified segment")
        for rel in sorted(set(self.lay.media) - claimed):
            self.r.add("fail", "stray_media", rel,
                       "media file that no signed manifest names: not evidence, and possibly "
                       "a substitute for evidence")
        self._check_recordings()
        self.r.segments = len(self.accepted)
        return self.r

    def _data_root(self) -> Path:
        """The folder itself, or the one data directory inside a case folder.

        A clerk copies a device's ``log/`` and ``recordings/`` into ``case-117/device/``;
        verify accepts the case folder when exactly one data directory is inside it, and
        accounts for everything else there too.
        """
        top = walk(self.root, max_depth=1)
        names = {n.name for n in top.nodes}
        if names & {"log", "recordings"}:
            return self.root
        inner = [n for n in top.nodes if n.kind == "dir"
                 and any((n.path / part).is_dir() and not (n.path / part).is_symlink()
                         for part in ("log", "recordings"))]
        if len(inner) != 1:
            return self.root
        for n in top.nodes:
            if n is not inner[0]:
                self.r.add("fail" if evidence_like(n.name) or n.kind != "file" else "warn",
                           "outside_data_dir", n.rel,
                           "beside the data directory, not part of it: not examined as evidence")
        self.r.add("ok", "data_root", inner[0].rel, "the data directory inside this folder")
        self.r.path = str(inner[0].path)
        return inner[0].path

    def _cosigned_notes(self) -> list[Cosigned]:
        out = []
        for node in self.lay.cosigned:
            try:
                out.append(Cosigned(node.rel, read_bounded(node.path, MAX_KEY)))
            except UnsafeFile as exc:
                self.r.add("fail", "cosigned_unreadable", node.rel, str(exc))
        return out

    # --- keys -------------------------------------------------------------------------------
    def _load_keys(self) -> None:
        if self.keys:
            return
        for node in self.lay.public_keys:
            try:
                self.keys.append(public_key_from_text(read_bounded(node.path, MAX_KEY).decode()))
            except (UnsafeFile, EvidenceError, ValueError) as exc:
                self.r.add("fail", "key_unreadable", node.rel, str(exc))
        if self.keys:
            self.r.add("warn", "self_trusted_keys", "keys/",
                       "public keys taken from the folder itself; pass --pubkey with the key "
                       "registered for the device for an independent check")
        else:
            self.r.add("fail", "no_keys", str(self.root),
                       "no public key to verify against (pass --pubkey)")

    # --- manifests and media ------------------------------------------------------------------
    def _load_manifests(self) -> dict[str, list[_Found]]:
        """Every manifest file that is readable, well formed, signed and this device's."""
        found: dict[str, list[_Found]] = defaultdict(list)
        for node in self.lay.manifests:
            item = self._manifest(node)
            if item is not None:
                found[item.signed.sha256].append(item)
        return found

    def _manifest(self, node: Node) -> _Found | None:
        try:
            signed = parse_envelope(read_bounded(node.path, MAX_MANIFEST))
        except (UnsafeFile, VerificationError) as exc:
            self.r.add("fail", "manifest_unreadable", node.rel, str(exc))
            return None
        except RecursionError:
            self.r.add("fail", "manifest_unreadable", node.rel, "JSON nested too deeply")
            return None
        m = signed.manifest
        try:
            pub = signed.verify(self.keys)
        except VerificationError as exc:
            device = m.get("device_id")
            if isinstance(device, str) and self.log.device_id and device != self.log.device_id:
                self.r.add("fail", "foreign_segment", node.rel,
                           f"segment from another device ({device[:64]}): {exc}")
            else:
                self.r.add("fail", "forged_signature", node.rel, str(exc))
            return None
        problem = manifest_problem(m)
        if problem is not None:
            self.r.add("fail", "manifest_malformed", node.rel,
                       f"signed (key {fingerprint(pub)[:16]}) but malformed: {problem}")
            return None
        if self.log.device_id and m["device_id"] != self.log.device_id:
            self.r.add("fail", "foreign_segment", node.rel,
                       f"manifest is from device {m['device_id'][:64]}, log is "
                       f"{self.log.device_id}")
            return None
        return _Found(node, signed)

    def _logged_places(self) -> dict[str, str]:
        """manifest SHA-256 → the manifest path its (well-formed) log entry names."""
        out: dict[str, str] = {}
        for e in self.log.entries:
            if e.get("kind") == "segment":
                media = Path(e["path"])
                out[e["manifest_sha256"]] = sidecar(media, MANIFEST_SUFFIX).as_posix()
        return out

    def _check_manifests(self, found: dict[str, list[_Found]]) -> set[str]:
        """Check each manifest at its place with its media; returns the media rel paths named."""
        places = self._logged_places()
        claimed: set[str] = set()
        for sha, items in sorted(found.items()):
            place = places.get(sha)
            for item in items:
                claimed.add(item.media_rel)
                name = item.manifest["file"]["name"]
                if item.node.name != sidecar(Path(name), MANIFEST_SUFFIX).name:
                    self.r.add("fail", "renamed", item.node.rel,
                               f"manifest file name does not match its media {name}")
                if place is None:
                    self.r.add("fail", "not_in_log", item.node.rel,
                               "signed manifest has no leaf in the log (inserted, or log cut)")
                elif item.node.rel != place:
                    self.r.add("fail", "duplicate_manifest" if len(items) > 1 else "misplaced",
                               item.node.rel,
                               f"a copy of the manifest the log places at {place}: only that "
                               "one is evidence")
                    continue
                self._check_one(item)
        return claimed

    def _check_one(self, item: _Found) -> None:
        where, m = item.node.rel, item.manifest
        failures_before = len(self.r.failures)
        folder = item.node.parts[1]
        if not folder.endswith(f"_{m['device_id']}_{m['recording_id'][:8]}"):
            self.r.add("fail", "misplaced", where,
                       f"manifest of recording {m['recording_id'][:8]} outside its recording "
                       "folder")
        self._check_media(self.lay.media.get(item.media_rel), item.media_rel, m, where,
                          item.signed.sha256)
        for flag in ("recovered", "truncated", "unencrypted"):
            if flag in m["flags"]:
                self.r.add("warn", flag, where, _FLAG_TEXT[flag])
        if len(self.r.failures) == failures_before:
            self.accepted.append(m)
            self.r.add("ok", "segment", where, "signature, log leaf, place and hashes intact")

    def _check_media(self, media: Node | None, rel: str, m: dict[str, Any], where: str,
                     manifest_sha: str) -> None:
        file = m["file"]
        cred_rel = sidecar(Path(rel), CREDENTIAL_SUFFIX).as_posix()
        cred = self.lay.credentials.get(cred_rel)
        if cred is not None:
            self.c2pa_claimed.add(cred_rel)
        if media is None:
            if m["device_seq"] in self.log.evicted:
                self.r.add("warn", "evicted", where,
                           "media evicted after a station receipt (logged, signed, justified)")
            else:
                self.r.add("fail", "media_deleted", where,
                           f"media file {rel} is missing (or is not a regular file)")
            return
        dec = (AgeDecryptor(self.identity, tolerant="truncated" in m["flags"])
               if self.identity and file["encrypted"] else None)
        spool = self.c2pa_anchors is not None and dec is not None and cred is not None
        with (tempfile.SpooledTemporaryFile(max_size=_SPOOL) if spool
              else contextlib.nullcontext()) as keep:
            try:
                size, cipher, plain = self._read_media(media, dec, where, keep)
            except UnsafeFile as exc:
                self.r.add("fail", "media_unreadable", where, f"{media.rel}: {exc}")
                return
            self._check_credential(where, media, cred, keep if plain is not None else None,
                                   manifest_sha)
        if size != file["cipher_bytes"]:
            self.r.add("fail", "media_altered", where,
                       f"{media.name}: {size} bytes, the signed manifest expected "
                       f"{file['cipher_bytes']} (truncated or extended)")
        elif cipher != file["cipher_sha256"]:
            self.r.add("fail", "media_altered", where,
                       f"{media.name}: SHA-256 differs from the signed manifest (altered)")
        if plain is None or dec is None:
            return
        if file["plain_sha256"] is None:
            self.r.add("ok", "plaintext", where,
                       f"decrypts {'up to its last complete chunk' if dec.truncated else 'fully'}"
                       " (plaintext hash not recorded: sealed after a crash)")
        elif plain != file["plain_sha256"]:
            self.r.add("fail", "plaintext_altered", where,
                       f"{media.name}: decrypted SHA-256 differs from the manifest")
        else:
            self.r.add("ok", "plaintext", where, "decrypted media matches plaintext SHA-256")

    def _check_credential(self, where: str, media: Node, cred: Node | None,
                          plain: IO[bytes] | None, manifest_sha: str) -> None:
        """The segment's C2PA Content Credential, validated by the reference library."""
        if self.c2pa_anchors is None:
            return
        if cred is None:
            self.r.add("warn", "c2pa_absent", where, "no Content Credential beside this segment")
            return
        if plain is None:
            self.r.add("warn", "c2pa_unchecked", where,
                       "Content Credential not validated: it binds the plaintext (pass --identity)")
            return
        from agent.c2pa.validity import c2pa_status

        try:
            credential = read_bounded(cred.path, _MAX_CREDENTIAL)
        except UnsafeFile as exc:
            self.r.add("fail", "c2pa_invalid", cred.rel, str(exc))
            return
        plain.seek(0)
        fmt = "image/jpeg" if ".jpg" in media.name else "video/mp4"
        state, reason = c2pa_status(cast(BinaryIO, plain), self.c2pa_anchors, credential=credential,
                                    media_format=fmt, evidence_manifest_sha256=manifest_sha)
        if state == "valid":
            self.r.add("ok", "c2pa", where, f"Content Credential valid and trusted ({reason})")
        else:
            self.r.add("fail", "c2pa_invalid", cred.rel, f"Content Credential {state}: {reason}")

    def _read_media(self, media: Node, dec: AgeDecryptor | None, where: str,
                    keep: IO[bytes] | None = None) -> tuple[int, str, str | None]:
        """One streaming pass: size, ciphertext SHA-256 and (if decrypting) plaintext SHA-256;
        the plaintext is also written to ``keep`` (on the verifier's machine, for C2PA)."""
        cipher, plain = hashlib.sha256(), hashlib.sha256()
        size = 0
        with open_regular(media.path) as fh:
            while block := fh.read(_READ):
                cipher.update(block)
                size += len(block)
                if dec is not None:
                    try:
                        chunk = dec.update(block)
                        plain.update(chunk)
                        if keep is not None:
                            keep.write(chunk)
                    except AgeFormatError as exc:
                        self.r.add("fail", "decrypt_failed", where, f"{media.name}: {exc}")
                        dec = None
        if dec is not None:
            try:
                tail = dec.finalize()
                plain.update(tail)
                if keep is not None:
                    keep.write(tail)
            except AgeFormatError as exc:
                self.r.add("fail", "decrypt_failed", where, f"{media.name}: {exc}")
                dec = None
        return size, cipher.hexdigest(), plain.hexdigest() if dec is not None else None

    # --- the log's segment entries ------------------------------------------------------------
    def _check_log_segments(self, found: dict[str, list[_Found]]) -> None:
        last_dseq = -1
        leaves = self.log.leaves
        for i, e in enumerate(self.log.entries):
            if e.get("kind") != "segment":
                continue
            dseq = e["device_seq"]
            where = f"log entry {i} ({e['path']})"
            if dseq <= last_dseq:
                self.r.add("fail", "reordered", where,
                           f"device_seq {dseq} after {last_dseq}: segments out of order")
            elif dseq != last_dseq + 1:
                self.r.add("warn", "device_seq_gap", where,
                           f"device_seq jumps {last_dseq} → {dseq}")
            last_dseq = max(last_dseq, dseq)
            place = sidecar(Path(e["path"]), MANIFEST_SUFFIX).as_posix()
            item = next((f for f in found.get(e["manifest_sha256"], []) if f.node.rel == place),
                        None)
            if item is None:
                self.r.add("fail", "segment_missing", where,
                           f"segment seq {e['seq']} of recording {e['recording_id'][:8]} is in "
                           "the log but its manifest is missing, altered or moved (deleted "
                           "segment)")
                continue
            prev = leaves[i - 1].hex() if i else None
            if item.manifest["prev_leaf"] != prev:
                self.r.add("fail", "chain_broken", item.node.rel,
                           f"prev_leaf does not match log entry {i - 1}")
            if (item.manifest["device_seq"] != dseq
                    or item.manifest["file"]["cipher_sha256"] != e["cipher_sha256"]):
                self.r.add("fail", "log_mismatch", item.node.rel,
                           "the log entry's device_seq or ciphertext hash differs from the "
                           "manifest's")

    def _check_journals(self) -> set[str]:
        """Unsealed segments (a crash): a warning each; their media are accounted for."""
        claimed: set[str] = set()
        for node in self.lay.journals:
            folder = node.rel.rsplit("/", 1)[0]
            try:
                doc = parse_canonical(read_bounded(node.path, MAX_JOURNAL))
                media = doc["media"] if isinstance(doc, dict) else None
            except (UnsafeFile, ValueError, UnicodeDecodeError, RecursionError, KeyError):
                media = None
            if not isinstance(media, str) or f"{folder}/{media}" not in self.lay.media:
                self.r.add("warn", "unsealed", node.rel,
                           "journal of a segment that was never sealed; its media is absent or "
                           "the journal is unreadable")
                continue
            claimed.add(f"{folder}/{media}")
            self.r.add("warn", "unsealed", node.rel,
                       "segment was never sealed (crash); the agent recovers it on start")
        return claimed

    # --- recordings ---------------------------------------------------------------------------
    def _check_recordings(self) -> None:
        for rid, ms in sorted(self.recordings().items()):
            where = f"recording {rid[:8]}"
            for a, b in itertools.pairwise(ms):
                if b["seq"] == a["seq"]:
                    self.r.add("fail", "duplicate_segment", where,
                               f"two different signed segments claim seq {a['seq']}")
                elif b["seq"] != a["seq"] + 1:
                    self.r.add("fail", "sequence_gap", where,
                               f"segments {a['seq'] + 1}..{b['seq'] - 1} missing")
                if a["device_seq"] >= b["device_seq"]:
                    self.r.add("fail", "reordered", where,
                               f"seq {b['seq']} has device_seq {b['device_seq']} <= "
                               f"{a['device_seq']} of seq {a['seq']}")
                gap = _gap_ms(a["end"]["utc"], b["start"]["utc"])
                if gap is not None and abs(gap) > 1:
                    self.r.add("warn", "time_gap", where,
                               f"{gap} ms between end of seq {a['seq']} and start of {b['seq']}")
            if ms and ms[0]["seq"] != 0:
                self.r.add("fail", "sequence_gap", where, f"segments 0..{ms[0]['seq'] - 1} missing")

    def recordings(self) -> dict[str, list[dict[str, Any]]]:
        """The accepted manifests by recording, in segment order."""
        by_rec: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for m in self.accepted:
            by_rec[m["recording_id"]].append(m)
        for ms in by_rec.values():
            ms.sort(key=lambda m: (m["seq"], m["device_seq"]))
        return dict(by_rec)

    def tracks(self) -> list[list[Sequence[object]]]:
        """GPS track rows per segment, recording by recording, from accepted manifests only."""
        return track_segments(m for ms in self.recordings().values() for m in ms)


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
