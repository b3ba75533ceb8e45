"""``bodycam station export``: one recording as a court bundle, checkable offline.

The bundle (layout in docs/EVIDENCE-DESK.md) carries the evidence exactly as the station holds
it — encrypted segments, signed manifests, receipts — plus what a person needs to use and to
check it: the decrypted segments, one joined MP4 of the whole recording, the Merkle proofs the
device gave at upload, the keys, the GPS track, the matter checklist coverage, a plain-language
report and ``MANIFEST.sha256``. ``bodycam verify BUNDLE`` (agent/evidence/bundle.py) re-checks
all of it without the station.

Steps, in order; the bundle is built in a fresh folder and nothing in the store is changed:

1. the recording's segments are re-hashed in the store; one that is changed, missing or
   deleted stops the export (a bundle never carries what the station cannot vouch for);
2. each segment is copied and hashed *as copied* (what is in the bundle is what was checked),
   then decrypted with the agency identity the person supplies (never stored by the station);
3. proofs, receipts, keys, track, coverage and the joined MP4 are written; a device's key
   rotations go with their proven log positions, placed in the newest checkpoint
   (:func:`agent.evidence.bundle_windows.rotation_position`), so the check holds each key to
   its window of the log;
4. the bundle's own contents are checked (agent/evidence/bundle.py); the report says what was
   checked and what it means;
   the station's witness key cosigns the newest checkpoint it holds (tlog-cosignature/v1);
5. ``MANIFEST.sha256`` lists every file; its SHA-256 is the bundle's hash;
6. the export is recorded in the index (who, what, when, bundle hash): custody continues
   past the device.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.atomic import fsync_dir
from agent.c2pa.credentials import SigningIdentity
from agent.evidence.age import Identity
from agent.evidence.bundle import (
    BUNDLE_FORMAT,
    HASH_LIST,
    MARKER,
    ROTATIONS,
    ROTATIONS_FORMAT,
    check_contents,
)
from agent.evidence.bundle_windows import known_nodes, rotation_position
from agent.evidence.checkpoint import Checkpoint, parse_signed_checkpoint
from agent.evidence.decrypt import decrypt_stream
from agent.evidence.journal import sidecar
from agent.evidence.layout import CREDENTIAL_SUFFIX
from agent.evidence.proof import PROOF_FORMAT
from agent.location.export import to_gpx, track_segments
from agent.witness.cosignature import Cosigner, add_cosignatures
from hw.errors import EvidenceError

from .clerk_report import render_html
from .desk import RecordingView, SegmentView
from .index import Index, KeptConsistency, KeptInclusion
from .joined import join_segments
from .joinedcredential import Part, sign_joined
from .proofkeep import consistency_chain
from .stationlog import StationLog

__all__ = ["ExportError", "Exported", "export_recording"]

_DOCS = Path(__file__).resolve().parents[2] / "docs"


class ExportError(RuntimeError):
    """The recording cannot be exported as it is; the message says why."""


@dataclass(frozen=True, slots=True)
class Exported:
    """A finished bundle: where, its hash (of MANIFEST.sha256), and whether it checked out."""

    path: Path
    bundle_sha256: str
    files: int
    ok: bool
    report: dict[str, Any]


def _pem(raw: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _copy_checked(src: Path, dst: Path, sha256: str) -> None:
    """Copy ``src`` and confirm the copy's bytes are ``sha256`` (the store may change under us)."""
    h = hashlib.sha256()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        while chunk := fi.read(1 << 20):
            h.update(chunk)
            fo.write(chunk)
        fo.flush()
        os.fsync(fo.fileno())
    if h.hexdigest() != sha256:
        raise ExportError(f"{src.name} changed in the store while it was copied")


def _stem(seg: SegmentView) -> str:
    return sidecar(seg.media, "").name


def _segment_files(out: Path, seg: SegmentView, index: Index,
                   identities: Sequence[Identity]) -> tuple[dict[str, Any], KeptInclusion | None]:
    """Step 2 for one segment; its marker entry and its kept inclusion proof."""
    row, stem = seg.row, _stem(seg)
    media_rel = f"encrypted/{seg.media.name}"
    manifest_rel = f"encrypted/{seg.manifest_path.name}"
    _copy_checked(seg.media, out / media_rel, row.cipher_sha256)
    _copy_checked(seg.manifest_path, out / manifest_rel,
                  hashlib.sha256(seg.manifest_path.read_bytes()).hexdigest())
    entry: dict[str, Any] = {"seq": row.seq, "device_seq": row.device_seq, "media": media_rel,
                             "manifest": manifest_rel, "c2pa": None}
    credential = sidecar(seg.media, CREDENTIAL_SUFFIX)
    if credential.is_file():
        entry["c2pa"] = f"encrypted/{credential.name}"
        shutil.copyfile(credential, out / entry["c2pa"])
    plain_rel = f"decrypted/{stem}.mp4"
    (out / "decrypted").mkdir(exist_ok=True)
    with open(out / media_rel, "rb") as src, open(out / plain_rel, "xb") as dst:
        result = decrypt_stream(src, dst, identities)
    entry["decrypted"] = plain_rel
    entry["decrypted_complete"] = result.complete
    receipt_rel = f"receipts/{row.device_seq:06d}.receipt.json"
    _write(out / receipt_rel, _json({"receipt": json.loads(row.receipt),
                                     "stored_utc": row.stored_utc, "path": row.path}))
    entry["receipt"] = receipt_rel
    kept = index.kept_inclusion(row.device_id, row.device_seq)
    entry["inclusion"] = None
    if kept is None:
        return entry, None
    cp = parse_signed_checkpoint(kept.checkpoint.encode())
    entry["inclusion"] = f"proofs/inclusion-{row.device_seq:06d}.json"
    _write(out / entry["inclusion"], _json({
        "format": PROOF_FORMAT, "type": "inclusion", "origin": cp.checkpoint.origin,
        "leaf_index": kept.leaf_index, "tree_size": cp.checkpoint.size, "entry": kept.entry,
        "hashes": list(kept.hashes), "checkpoint": kept.checkpoint}))
    return entry, kept


def _history(out: Path, index: Index, device_id: str, notes: list[str]) -> dict[str, Any]:
    """The newest held checkpoint and the consistency proofs that lead every segment's
    checkpoint to it (a chain the kept proofs cannot make is reported, not invented)."""
    held = index.checkpoint(device_id)
    newest = held.note if held is not None else max(
        notes, key=lambda n: parse_signed_checkpoint(n.encode()).checkpoint.size)
    goal_cp = parse_signed_checkpoint(newest.encode()).checkpoint
    _write(out / "proofs/checkpoint.txt", newest.encode())
    kept = index.kept_consistency(device_id)
    used: dict[tuple[int, str, int, str], KeptConsistency] = {}
    unlinked: list[int] = []
    for note in sorted(set(notes)):
        cp = parse_signed_checkpoint(note.encode()).checkpoint
        chain = consistency_chain(kept, (cp.size, base64.b64encode(cp.root).decode()),
                                  (goal_cp.size, base64.b64encode(goal_cp.root).decode()))
        if chain is None:
            unlinked.append(cp.size)
            continue
        for p in chain:
            used[(p.old_size, p.old_root, p.new_size, p.new_root)] = p
    files = []
    for p in sorted(used.values(), key=lambda p: (p.old_size, p.new_size)):
        rel = f"proofs/consistency-{p.old_size:06d}-{p.new_size:06d}.json"
        _write(out / rel, _json({
            "format": PROOF_FORMAT, "type": "consistency", "origin": goal_cp.origin,
            "old_size": p.old_size, "new_size": p.new_size, "hashes": list(p.hashes),
            "old_checkpoint": p.old_note, "checkpoint": p.new_note}))
        files.append(rel)
    return {"checkpoint": "proofs/checkpoint.txt", "consistency": files,
            "history_unlinked_sizes": unlinked}


def _witness(out: Path, note: str, cosigner: Cosigner | None) -> dict[str, Any] | None:
    """The station's witness cosignature (tlog-cosignature/v1) over the newest checkpoint it
    holds — its witness state, which it only ever advanced after proving consistency — with
    the witness's verifier key. None when the station has no witness key to cosign with."""
    if cosigner is None:
        return None
    body = note.encode().split(b"\n\n", 1)[0] + b"\n"
    cosigned = add_cosignatures(note.encode(), [cosigner.cosign(body, int(time.time()))])
    _write(out / "witness/cosigned-checkpoint.txt", cosigned)
    _write(out / "witness/station-witness.vkey", f"{cosigner.vkey}\n".encode())
    return {"note": "witness/cosigned-checkpoint.txt", "vkey": "witness/station-witness.vkey"}


def export_recording(view: RecordingView, *, index: Index, station_id: str, station_key: bytes,
                     identities: Sequence[Identity], out: Path, by: str, utc: str,
                     station_log: StationLog, cosigner: Cosigner | None = None,
                     c2pa_identity: SigningIdentity | None = None) -> Exported:
    """Build the bundle of ``view`` in ``out`` (which must not exist); module steps 1–6."""
    bad = [f"seq {s.row.seq}: {s.state}" for s in view.segments if s.state != "verified"]
    if bad:
        raise ExportError("the station cannot vouch for every segment: " + "; ".join(bad))
    device = index.device(view.device_id)
    if device is None:
        raise ExportError(f"device {view.device_id} is not registered at this station")
    out.mkdir(parents=False, exist_ok=False)
    try:
        return _build(view, index=index, station_id=station_id, station_key=station_key,
                      identities=identities, out=out, by=by, utc=utc, device_key=device.public_key,
                      rotations=_positioned(index, view.device_id),
                      cosigner=cosigner, station_log=station_log, c2pa_identity=c2pa_identity)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # ours, made above: no half bundle is left
        raise


def _positioned(index: Index, device_id: str) -> list[tuple[str, int | None]]:
    """The device's stored rotation entries, each with its proven log index (None: the
    station took it without one)."""
    proven = index.rotation_positions(device_id)
    return [(r.entry, proven.get(r.fingerprint)) for r in index.device_key_rows(device_id)]


def _write_keys(out: Path, device_key: bytes, station_key: bytes) -> None:
    """The enrolled device key (the trust root) and the station's."""
    _write(out / "keys/device.pub", _pem(device_key))
    _write(out / "keys/station.pub", _pem(station_key))


def _write_rotations(out: Path, rotations: list[tuple[str, int | None]],
                     kept: Sequence[KeptInclusion], consistency: Sequence[KeptConsistency],
                     newest: str | None) -> None:
    """For a device that rotated: its endorsed rotations since enrolment (how its later keys
    are trusted), each with its place in the log proven into the bundle's newest checkpoint
    when the station proved it and the kept proofs reach it (so the check holds each key to
    its window, agent/evidence/bundle_windows.py); ``null`` otherwise."""
    if not rotations:
        return
    cp = parse_signed_checkpoint(newest.encode()).checkpoint if newest else None
    inclusions = ((k.entry.encode(), k.leaf_index, [base64.b64decode(h) for h in k.hashes],
                   parse_signed_checkpoint(k.checkpoint.encode()).checkpoint) for k in kept)
    chains = ((_tree(p.old_size, p.old_root), _tree(p.new_size, p.new_root),
               [base64.b64decode(h) for h in p.hashes]) for p in consistency)
    nodes = known_nodes(inclusions, chains)
    positions = [None if at is None or cp is None else
                 rotation_position(entry.encode(), at, nodes, cp) for entry, at in rotations]
    _write(out / ROTATIONS, _json({
        "format": ROTATIONS_FORMAT, "entries": [e for e, _ in rotations],
        "positions": positions, "positions_note": "one per entry: its log_index and an "
        "inclusion proof (RFC 9162, hashes base64) of the entry's exact bytes into the "
        "bundle's newest checkpoint (tree_size); null where the station holds no proven "
        "position that reaches it -- then no key can be held to its window of the log"}))


def _tree(size: int, root: str) -> Checkpoint:
    """A kept proof's tree (size, base64 root) as a checkpoint body: its origin is not needed."""
    return Checkpoint("", size, base64.b64decode(root))


def _build(view: RecordingView, *, index: Index, station_id: str, station_key: bytes,
           identities: Sequence[Identity], out: Path, by: str, utc: str,
           device_key: bytes, rotations: list[tuple[str, int | None]], cosigner: Cosigner | None,
           station_log: StationLog, c2pa_identity: SigningIdentity | None) -> Exported:
    """Steps 2–6 in the new folder ``out``."""
    _write_keys(out, device_key, station_key)
    made = [_segment_files(out, seg, index, identities) for seg in view.segments]
    segments, kept = [e for e, _ in made], [k for _, k in made if k is not None]
    notes = [k.checkpoint for k in kept]
    history = _history(out, index, view.device_id, notes) if notes else {
        "checkpoint": None, "consistency": [], "history_unlinked_sizes": []}
    if history["checkpoint"] is None:
        held = index.checkpoint(view.device_id)
        if held is not None:
            _write(out / "proofs/checkpoint.txt", held.note.encode())
            history["checkpoint"] = "proofs/checkpoint.txt"
    newest = (out / history["checkpoint"]).read_text() if history["checkpoint"] else None
    history["witness"] = _witness(out, newest, cosigner) if newest else None
    _write_rotations(out, rotations, kept, index.kept_consistency(view.device_id), newest)
    manifests = view.manifests
    rid8 = view.recording_id[:8]
    joined_rel = f"joined/{view.device_id}_{rid8}.mp4"
    (out / "joined").mkdir()
    joined = join_segments([out / s["decrypted"] for s in segments],
                           [int(m["media"]["video"]["first_pts_us"]) for m in manifests],
                           out / joined_rel)
    credential = None
    if c2pa_identity is not None:
        parts = [Part(Path(s["decrypted"]).name, out / s["decrypted"],
                      (out / s["c2pa"]).read_bytes() if s["c2pa"] else None) for s in segments]
        try:
            credential = sign_joined(out / joined_rel, c2pa_identity, station_id, parts)
        except c2pa.C2paError as exc:
            raise ExportError(f"the station could not sign the joined MP4's Content "
                              f"Credential: {exc}") from None
    _write(out / "track.gpx", to_gpx(track_segments(manifests), name=f"{view.device_id} {rid8}")
           .encode())
    from agent.matters.coverage import recording_coverage
    from agent.matters.render import render_coverage

    cov = recording_coverage(manifests)
    _write(out / "coverage.json", _json(cov.to_json()))
    _write(out / "coverage.txt", ("\n".join(render_coverage(cov)) + "\n").encode())
    doc = _DOCS / "EVIDENCE-FORMAT.md"
    if doc.is_file():
        shutil.copyfile(doc, out / "EVIDENCE-FORMAT.md")
    marker = {"format": BUNDLE_FORMAT, "station_id": station_id, "device_id": view.device_id,
              "recording_id": view.recording_id, "officer_id": view.officer_id,
              "matters": view.matter_codes, "start_utc": view.start_utc,
              "end_utc": view.end_utc, "exported_utc": utc, "exported_by": by,
              "device_key": "keys/device.pub", "station_key": "keys/station.pub",
              **({"device_rotations": ROTATIONS} if rotations else {}),
              "segments": segments,
              "joined": {"file": joined_rel, "video_packets": joined.video_packets,
                         "audio_packets": joined.audio_packets,
                         "duration_us": joined.duration_us, "c2pa": credential},
              "track": "track.gpx", "coverage": "coverage.json", **history}
    _write(out / MARKER, _json(marker))
    report = check_contents(out)
    report_doc = {"bundle": marker, **report.to_json()}
    _write(out / "report.json", _json(report_doc))
    _write(out / "report.html", render_html(marker, report, cov).encode())
    files = _hash_list(out)
    bundle_sha = hashlib.sha256((out / HASH_LIST).read_bytes()).hexdigest()
    try:  # the station's signed log witnesses the export before the index records it
        station_log.append("export", {
            "recording_id": view.recording_id, "device_id": view.device_id, "by": by,
            "utc": utc, "bundle_sha256": bundle_sha, "files": files, "checked_ok": report.ok,
            "segments": [s["device_seq"] for s in segments]})
    except (EvidenceError, OSError) as exc:
        raise ExportError(f"the station log could not record the export: {exc}") from None
    index.event(utc, view.device_id, "export", json.dumps({
        "by": by, "recording_id": view.recording_id, "bundle_sha256": bundle_sha,
        "files": files, "segments": [s["device_seq"] for s in segments],
        "checked_ok": report.ok, "path": str(out.resolve())}, sort_keys=True))
    return Exported(out, bundle_sha, files, report.ok, report_doc)


def _hash_list(out: Path) -> int:
    """Step 5: ``MANIFEST.sha256`` in ``sha256sum`` format; fsync every directory."""
    lines = []
    for dirpath, _, names in sorted(os.walk(out)):
        for name in sorted(names):
            p = Path(dirpath) / name
            rel = p.relative_to(out).as_posix()
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            lines.append(f"{h.hexdigest()}  {rel}")
        fsync_dir(Path(dirpath))
    _write(out / HASH_LIST, ("\n".join(lines) + "\n").encode())
    fsync_dir(out)
    return len(lines)
