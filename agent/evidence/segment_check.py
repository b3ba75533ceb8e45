"""Per-segment checks of ``bodycam verify``: each manifest file and the media it names.

A manifest counts only if it is readable within its bound, well formed, signed by a trusted
device key and this device's; the key must be the one valid at its segment's log entry (a
rotation retires a key: what it signs for an entry after its rotation is refused,
:mod:`~agent.evidence.key_windows`); then, at the place its log leaf names, its media must have the
signed size and hashes (ciphertext always, plaintext when the agency's identity is given) and
its Content Credential must validate when trust anchors are given. Its own module because this
is where the verifier reads the (large, untrusted) media, streaming and bounded -- apart from
the log's checks (:mod:`~agent.evidence.logcheck`, :mod:`~agent.evidence.logged_segments`) and
the recordings' (:mod:`~agent.evidence.recording_check`).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from hw.errors import VerificationError

from .age import AgeDecryptor, AgeFormatError, Identity
from .inventory import Node, UnsafeFile, open_regular, read_bounded
from .journal import MANIFEST_SUFFIX, sidecar
from .keys import fingerprint
from .layout import CREDENTIAL_SUFFIX, Layout
from .logcheck import LogState
from .manifest import SignedManifest, parse_envelope
from .report import Report
from .shape import manifest_problem

__all__ = ["MAX_MANIFEST", "Found", "SegmentChecks"]

_READ = 1 << 20
MAX_MANIFEST = 1 << 20   # a manifest is ~2-20 kB; a 300 s GPS track stays far below this
_MAX_CREDENTIAL = 1 << 20
_SPOOL = 64 << 20  # plaintext kept in memory up to this, then in a temporary file


@dataclass(frozen=True, slots=True)
class Found:
    """A manifest file that parsed, fits the shape and carries a trusted signature."""

    node: Node
    signed: SignedManifest
    key: bytes  # the trusted device key its signature verifies under

    @property
    def manifest(self) -> dict[str, Any]:
        """The signed manifest."""
        return self.signed.manifest

    @property
    def media_rel(self) -> str:
        """The media file the manifest names, beside it (relative to the data directory)."""
        return f"{self.node.rel.rsplit('/', 1)[0]}/{self.manifest['file']['name']}"


class SegmentChecks:
    """The manifests of a folder and their media, checked against the log's state."""

    def __init__(self, report: Report, lay: Layout, log: LogState, *, keys: Sequence[bytes],
                 identity: Sequence[Identity], c2pa_anchors: bytes | None) -> None:
        self.r = report
        self.lay = lay
        self.log = log
        self.keys = keys
        self.identity = list(identity)
        self.c2pa_anchors = c2pa_anchors
        self.c2pa_claimed: set[str] = set()  # credentials beside a checked segment
        self.accepted: list[dict[str, Any]] = []  # manifests at their logged place, verified

    def load(self) -> dict[str, list[Found]]:
        """Every manifest file that is readable, well formed, signed and this device's."""
        found: dict[str, list[Found]] = defaultdict(list)
        for node in self.lay.manifests:
            item = self._manifest(node)
            if item is not None:
                found[item.signed.sha256].append(item)
        return found

    def _manifest(self, node: Node) -> Found | None:
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
        return Found(node, signed, pub)

    def _logged_places(self) -> dict[str, tuple[str, int]]:
        """manifest SHA-256 → the manifest path its (well-formed) log entry names, and that
        entry's index."""
        out: dict[str, tuple[str, int]] = {}
        for i, e in enumerate(self.log.entries):
            if e.get("kind") == "segment":
                media = Path(e["path"])
                out[e["manifest_sha256"]] = (sidecar(media, MANIFEST_SUFFIX).as_posix(), i)
        return out

    def check(self, found: dict[str, list[Found]]) -> set[str]:
        """Check each manifest at its place with its media; returns the media rel paths named."""
        places = self._logged_places()
        claimed: set[str] = set()
        for sha, items in sorted(found.items()):
            place, index = places.get(sha, (None, None))
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
                self._check_one(item, index)
        return claimed

    def _check_one(self, item: Found, index: int | None) -> None:
        where, m = item.node.rel, item.manifest
        failures_before = len(self.r.failures)
        outside = None if index is None else \
            self.log.windows.outside(item.key, index, what="manifest")
        if outside is not None:
            self.r.add("fail", outside[0], where, outside[1])
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


_FLAG_TEXT = {
    "recovered": "segment was sealed after a crash (recovered)",
    "truncated": "segment was cut at its last complete chunk after a crash (truncated)",
    "unencrypted": "segment stored without encryption (explicit configuration)",
}
