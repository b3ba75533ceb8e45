"""Checking a court bundle offline: ``bodycam verify BUNDLE``.

A bundle (made by ``bodycam station export``, agent/station/exporter.py) is a folder that carries
one recording with everything needed to check it without the station, the device or us: the
encrypted segments and their signed manifests, the decrypted segments, one joined MP4, the
station's receipts, Merkle proofs, the keys, and ``MANIFEST.sha256``. Its marker file
``BODYCAM-BUNDLE.json`` says which file is which.

What is checked, and what each check rules out:

1. every file's SHA-256 against ``MANIFEST.sha256``, and no file more or less (a changed,
   added or removed file — one flipped bit — is named);
2. each manifest's Ed25519 signature with the device key (the bundle's own, reported as
   self-contained unless ``--pubkey`` names the key the agency registered) or a successor the
   bundle's endorsed rotations introduce (``keys/device-rotations.json``, followed by the
   verifier's rule, :mod:`.rotation_trust`: a second successor of a retired key is a fork, a
   failure, and introduces nothing); and, when the bundle proves where each rotation is in the
   log (an inclusion proof into the newest checkpoint), by the key valid at its segment's log
   entry, as ``bodycam verify`` of a data directory holds it (``manifest_retired_key``,
   ``checkpoint_retired_key``: a retired key signs nothing logged after its rotation). A
   bundle whose rotations lack positions (an older station) is warned about, not failed
   (:mod:`.bundle_windows`);
3. each encrypted segment's SHA-256 and size against its signed manifest, each decrypted
   segment's SHA-256 against the manifest's plaintext hash (the plaintext is the recording);
4. each receipt: signed by the station key, naming exactly this segment;
5. each inclusion proof: the segment's log entry (naming the manifest's and ciphertext's
   hashes) is in the device-signed log; each consistency proof; and every inclusion proof's
   checkpoint leads through them to the newest checkpoint the station held (one history);
6. the joined MP4 holds exactly the segments' frames: its packet count per stream equals the
   sum of the decrypted segments' (nothing dropped, nothing added); its station-signed C2PA
   Content Credential, when the marker names one, is intact and lists every segment
   (reading the MP4 needs PyAV and c2pa: :mod:`.joined_media`);
7. the station witness's cosignature over the newest checkpoint (with ``--witness``, by the
   key given), when the bundle holds one.

Like ``bodycam verify``, nothing in the folder can make it raise or hang: files are opened
without following links, sizes are bounded before JSON is parsed, and every problem is a
named finding.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from agent.witness.cosignature import VerifierKey, verified_cosignatures
from agent.witness.refusals import CosignatureInvalid
from hw.errors import EvidenceError, VerificationError

from .bundle_windows import ROTATIONS_FORMAT, SignedSegment, hold_to_windows, read_rotations
from .checkpoint import Checkpoint, parse_signed_checkpoint
from .inventory import UnsafeFile, read_bounded
from .joined_media import count_packets, joined_credential_finding
from .keys import public_key_from_text
from .manifest import parse_envelope
from .proof import ProofError, check_proof
from .receipt import parse_receipt

__all__ = ["BUNDLE_FORMAT", "HASH_LIST", "MARKER", "ROTATIONS", "ROTATIONS_FORMAT", "BundleReport",
           "bundle_main", "check_bundle", "check_contents", "count_packets", "is_bundle",
           "sha256_path"]

MARKER = "BODYCAM-BUNDLE.json"
#: The device's endorsed key rotations since enrolment (only in a bundle of a device that
#: rotated): the enrolled key in keys/device.pub stays the one trust root.
ROTATIONS = "keys/device-rotations.json"
HASH_LIST = "MANIFEST.sha256"
BUNDLE_FORMAT = "bodycam-bundle/1"
_MAX_DOC = 8 << 20
_MAX_KEY = 64 << 10


@dataclass
class BundleReport:
    """Findings: (level ``fail``|``warn``|``ok``, code, where, message)."""

    findings: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, level: str, code: str, where: str, message: str) -> None:
        self.findings.append((level, code, where, message))

    @property
    def ok(self) -> bool:
        return not any(f[0] == "fail" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [
            {"level": lv, "code": c, "where": w, "message": m} for lv, c, w, m in self.findings]}

    def render(self) -> str:
        lines = [f"{lv.upper():4} {c}: {w}: {m}" for lv, c, w, m in self.findings]
        lines.append("BUNDLE INTACT" if self.ok else "BUNDLE NOT INTACT")
        return "\n".join(lines)


def is_bundle(path: Path) -> bool:
    """A folder with the bundle marker (not a link)."""
    try:
        return stat.S_ISREG(os.lstat(path / MARKER).st_mode) and path.is_dir()
    except OSError:
        return False


def sha256_path(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a regular file, opened without following a link or blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFile(f"{path.name} is not a regular file")
        h, n = hashlib.sha256(), 0
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
            n += len(chunk)
        return h.hexdigest(), n
    finally:
        os.close(fd)


def _rel(root: Path, value: Any, what: str) -> Path:
    """A path the marker names, kept inside the bundle."""
    if not isinstance(value, str) or not value or value.startswith("/") or any(
            p in ("", ".", "..") for p in value.split("/")):
        raise ValueError(f"{what} is not a relative path inside the bundle: {value!r}")
    return root / value


def _doc(path: Path) -> Any:
    return json.loads(read_bounded(path, _MAX_DOC))


def _walk(root: Path, r: BundleReport) -> set[str]:
    """Every regular file under ``root`` (relative, '/'-separated); others are findings."""
    found: set[str] = set()
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                r.add("fail", "symlink", rel, "a link in a bundle points outside what is hashed")
            elif stat.S_ISREG(mode):
                found.add(rel)
            elif not stat.S_ISDIR(mode):
                r.add("fail", "special_file", rel, "not a regular file")
        dirs[:] = [d for d in dirs if not os.path.islink(Path(dirpath) / d)]
    return found


def _check_hash_list(root: Path, r: BundleReport) -> None:
    """Check 1: MANIFEST.sha256 names every file, once, with its SHA-256."""
    try:
        text = read_bounded(root / HASH_LIST, _MAX_DOC).decode("utf-8")
    except (OSError, UnsafeFile, UnicodeDecodeError) as exc:
        r.add("fail", "hash_list_unreadable", HASH_LIST, str(exc))
        return
    listed: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if (not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest)
                or name in listed or name in ("", HASH_LIST)):
            r.add("fail", "hash_list_malformed", f"{HASH_LIST}:{n}", "not '<sha256>  <file>'")
            continue
        listed[name] = digest
    present = _walk(root, r) - {HASH_LIST}
    for name in sorted(present - set(listed)):
        r.add("fail", "unlisted_file", name, f"not in {HASH_LIST}: added after export")
    for name in sorted(set(listed) - present):
        r.add("fail", "file_missing", name, f"listed in {HASH_LIST} but absent")
    bad = 0
    for name in sorted(present & set(listed)):
        try:
            digest = sha256_path(_rel(root, name, "file"))[0]
        except (OSError, UnsafeFile, ValueError) as exc:
            r.add("fail", "file_unreadable", name, str(exc))
            continue
        if digest != listed[name]:
            bad += 1
            r.add("fail", "file_altered", name, f"SHA-256 differs from {HASH_LIST}")
    if bad == 0 and present == set(listed):
        r.add("ok", "hash_list", HASH_LIST, f"all {len(listed)} files match their SHA-256")


def _key(root: Path, rel: Any, given: Sequence[bytes], r: BundleReport, what: str) -> bytes:
    try:
        key = public_key_from_text(read_bounded(_rel(root, rel, what), _MAX_KEY).decode())
    except UnsupportedAlgorithm as exc:  # a PEM naming another algorithm
        raise ValueError(f"{what}: not an Ed25519 key ({exc})") from None
    if given and key not in given:
        r.add("fail", "untrusted_key", str(rel), f"the bundle's {what} is not the one given")
    elif not given:
        r.add("warn", "self_trusted_keys", str(rel), f"checked with the {what} in the bundle "
              f"itself; pass the registered key to check it against the agency's record")
    return key


def check_contents(root: Path, *, pubkeys: Sequence[bytes] = (),
                   station_keys: Sequence[bytes] = (),
                   witnesses: Sequence[VerifierKey] = ()) -> BundleReport:
    """Checks 2–6 (everything but the hash list): what the evidence in the bundle proves."""
    r = BundleReport()
    try:
        marker = _doc(root / MARKER)
        if not isinstance(marker, dict) or marker.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"not a {BUNDLE_FORMAT} marker")
        device_key = _key(root, marker.get("device_key"), pubkeys, r, "device key")
        rel = marker.get("device_rotations")
        rotations = None if rel is None else read_rotations(
            _doc(_rel(root, rel, "key rotations")), device_key, r)
        device_keys = rotations.keys if rotations else [device_key]
        station_key = _key(root, marker.get("station_key"), station_keys, r, "station key")
        segments = marker.get("segments")
        if not isinstance(segments, list) or not segments:
            raise ValueError("the marker lists no segments")
        done = [x for x in (_check_segment(root, s, device_keys, station_key, r)
                            for s in segments) if x is not None]
        newest = _check_history(root, marker, device_keys, [x[0] for x in done], r)
        hold_to_windows(rotations, newest, [x[1] for x in done], r)
        _check_witness(root, marker, witnesses, r)
        _check_joined(root, marker, segments, r)
    except (OSError, UnsafeFile, EvidenceError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError) as exc:
        r.add("fail", "bundle_malformed", MARKER, str(exc))
    return r


def _check_segment(root: Path, s: Any, device_keys: Sequence[bytes], station_key: bytes,
                   r: BundleReport) -> tuple[tuple[int, str], SignedSegment] | None:
    """Checks 2–5 for one segment; the (size, root) of its inclusion proof's checkpoint, and
    who signed its manifest for which log entry."""
    where = f"segment {s.get('seq')}" if isinstance(s, dict) else "segment"
    if not isinstance(s, dict):
        raise ValueError("a segment entry is not an object")
    try:
        signed = parse_envelope(read_bounded(_rel(root, s["manifest"], "manifest"), _MAX_DOC))
        signer = signed.verify(device_keys)
    except VerificationError as exc:
        r.add("fail", "forged_signature", where, str(exc))
        return None
    f = signed.manifest["file"]
    if sha256_path(_rel(root, s["media"], "media")) != (f["cipher_sha256"], f["cipher_bytes"]):
        r.add("fail", "media_altered", where, "the encrypted segment is not the one signed")
    if s.get("decrypted") is not None:
        plain = sha256_path(_rel(root, s["decrypted"], "decrypted"))
        if plain != (f.get("plain_sha256"), f.get("plain_bytes")):
            level = "warn" if "truncated" in (signed.manifest.get("flags") or []) else "fail"
            r.add(level, "plaintext_altered" if level == "fail" else "truncated", where,
                  "the decrypted segment's SHA-256 is not the manifest's plaintext hash")
    receipt = parse_receipt(_doc(_rel(root, s["receipt"], "receipt"))["receipt"])
    problem = receipt.matches(device_id=signed.manifest["device_id"],
                              device_seq=signed.manifest["device_seq"],
                              cipher_sha256=f["cipher_sha256"], manifest_sha256=signed.sha256)
    try:
        if problem:
            raise VerificationError(problem)
        receipt.verify([station_key])
    except VerificationError as exc:
        r.add("fail", "receipt_invalid", where, str(exc))
    if s.get("inclusion") is None:
        r.add("warn", "no_inclusion_proof", where, "the station kept no inclusion proof "
              "(segment stored before proofs were kept)")
        return None
    proof = _doc(_rel(root, s["inclusion"], "inclusion proof"))
    try:
        check_proof(proof, device_keys)
        entry = json.loads(proof["entry"])
        if (entry.get("manifest_sha256"), entry.get("cipher_sha256")) != (
                signed.sha256, f["cipher_sha256"]):
            raise ProofError("the proven log entry names another manifest or ciphertext")
    except (ProofError, ValueError) as exc:
        r.add("fail", "not_in_log", where, str(exc))
        return None
    r.add("ok", "segment", where, f"signed, hashes match, receipted, in the log at "
          f"#{proof['leaf_index']}")
    cp = parse_signed_checkpoint(proof["checkpoint"].encode())
    return ((cp.checkpoint.size, cp.checkpoint.root.hex()),
            SignedSegment(where, signer, proof["leaf_index"], cp))


def _check_history(root: Path, marker: dict[str, Any], device_keys: Sequence[bytes],
                   leaves: list[tuple[int, str]], r: BundleReport) -> Checkpoint:
    """Check 5: the consistency proofs chain every inclusion checkpoint to the newest one
    (returned: the tree the rotations' positions are proven in)."""
    edges: dict[tuple[int, str], set[tuple[int, str]]] = {}
    for rel in marker.get("consistency") or []:
        doc = _doc(_rel(root, rel, "consistency proof"))
        try:
            check_proof(doc, device_keys)
        except ProofError as exc:
            r.add("fail", "fork", str(rel), str(exc))
            continue
        old = parse_signed_checkpoint(doc["old_checkpoint"].encode()).checkpoint
        new = parse_signed_checkpoint(doc["checkpoint"].encode()).checkpoint
        edges.setdefault((old.size, old.root.hex()), set()).add((new.size, new.root.hex()))
    newest = parse_signed_checkpoint(read_bounded(_rel(root, marker["checkpoint"], "checkpoint"),
                                                  _MAX_KEY))
    newest.verify(device_keys)
    goal = (newest.checkpoint.size, newest.checkpoint.root.hex())
    for start in sorted(set(leaves)):
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges.get(todo.pop(), set()) - seen:
                seen.add(nxt)
                todo.append(nxt)
        if goal not in seen:
            r.add("warn", "history_unlinked", f"checkpoint of size {start[0]}",
                  f"no consistency proof leads to the newest checkpoint (size {goal[0]})")
    r.add("ok", "history", str(marker["checkpoint"]), f"the device's log of {goal[0]} entries, "
          "signed by the device key")
    return newest.checkpoint


def _check_witness(root: Path, marker: dict[str, Any], witnesses: Sequence[VerifierKey],
                   r: BundleReport) -> None:
    """The station witness's cosignature is valid and over the bundle's newest checkpoint."""
    w = marker.get("witness")
    if not isinstance(w, dict):
        r.add("warn", "no_witness", MARKER, "no witness cosignature held")
        return
    try:
        vkey = VerifierKey.parse(read_bounded(_rel(root, w["vkey"], "vkey"), _MAX_KEY)
                                 .decode().strip())
        note = read_bounded(_rel(root, w["note"], "cosigned note"), _MAX_KEY)
        ok = vkey.name in verified_cosignatures(note, [vkey])
    except CosignatureInvalid as exc:
        r.add("fail", "cosignature_invalid", str(w.get("note")), str(exc))
        return
    newest = read_bounded(_rel(root, marker["checkpoint"], "checkpoint"), _MAX_KEY)
    if not ok or note.split(b"\n\n", 1)[0] != newest.split(b"\n\n", 1)[0]:
        r.add("fail", "cosignature_invalid", str(w["note"]),
              "no valid cosignature by the bundle's witness key over the newest checkpoint")
        return
    if witnesses and str(vkey) not in {str(k) for k in witnesses}:
        r.add("fail", "untrusted_key", str(w["vkey"]), "the bundle's witness key is not one given")
    elif not witnesses:
        r.add("warn", "self_trusted_keys", str(w["vkey"]), "checked with the witness key in the "
              "bundle itself; pass --witness with the station's published key")
    r.add("ok", "witness", str(w["note"]), f"cosigned by {vkey.name}")


def _check_joined(root: Path, marker: dict[str, Any], segments: list[Any],
                  r: BundleReport) -> None:
    """Check 6: the joined MP4 holds exactly the decrypted segments' packets."""
    joined = marker.get("joined")
    if not isinstance(joined, dict):
        r.add("warn", "no_joined_media", MARKER, "no joined MP4 in this bundle")
        return
    import av

    total: dict[str, int] = {}
    try:
        for s in segments:
            for kind, n in count_packets(_rel(root, s["decrypted"], "decrypted")).items():
                total[kind] = total.get(kind, 0) + n
        got = count_packets(_rel(root, joined["file"], "joined"))
    except (OSError, ValueError, av.FFmpegError) as exc:
        r.add("fail", "joined_unreadable", str(joined.get("file")), str(exc))
        return
    if got != total:
        r.add("fail", "joined_frames", str(joined["file"]),
              f"the joined MP4 holds {got}, the segments {total}")
    else:
        r.add("ok", "joined", str(joined["file"]), f"{got.get('video', 0)} video frames and "
              f"{got.get('audio', 0)} audio frames, exactly the segments'")
    if isinstance(joined.get("c2pa"), dict):
        r.add(*joined_credential_finding(_rel(root, joined["file"], "joined"), joined["c2pa"]))


def check_bundle(root: Path, *, pubkeys: Sequence[bytes] = (),
                 station_keys: Sequence[bytes] = (),
                 witnesses: Sequence[VerifierKey] = ()) -> BundleReport:
    """All checks (module doc)."""
    r = BundleReport()
    _check_hash_list(root, r)
    r.findings += check_contents(root, pubkeys=pubkeys, station_keys=station_keys,
                                 witnesses=witnesses).findings
    return r


def bundle_main(root: Path, *, pubkeys: Sequence[bytes], station_keys: Sequence[bytes],
                witnesses: Sequence[VerifierKey], as_json: bool) -> int:
    """``bodycam verify BUNDLE``: print the report; exit 0 intact, 1 not."""
    report = check_bundle(root, pubkeys=pubkeys, station_keys=station_keys, witnesses=witnesses)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(report.render())
    return 0 if report.ok else 1
