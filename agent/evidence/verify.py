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
* every manifest file: size, shape, signature by the device key valid at its segment's log
  entry (a key's window ends at the rotation that retires it, :mod:`agent.evidence.key_windows`;
  rotations count only under the verified checkpoint), device, its place (its recording
  folder, the path its log entry names), the ``prev_leaf`` chain; every segment leaf has its
  manifest and media; duplicates and stray media are failures;
* ciphertext SHA-256 and size, and plaintext SHA-256 when an agency identity is given;
* sequence and time gaps and ordering within each recording; recovered/truncated flags.

This module reads the folder's layout and keys and runs the checks in order; each kind of
check is its own module: the log (:mod:`~agent.evidence.logcheck`), each segment's manifest
and media (:mod:`~agent.evidence.segment_check`), the log's segment leaves and the journals
(:mod:`~agent.evidence.logged_segments`), the recordings as wholes
(:mod:`~agent.evidence.recording_check`).

Nothing is modified. Trust comes from ``--pubkey`` (the key registered with the fleet),
``--checkpoint`` (one the back office received) and ``--station-key``; without them the
verifier can only rely on what the folder itself holds, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.location.export import track_segments
from agent.witness.cosignature import VerifierKey
from hw.errors import EvidenceError

from .age import Identity
from .inventory import UnsafeFile, read_bounded, walk
from .keys import public_key_from_text
from .layout import Layout, classify, evidence_like
from .logcheck import LogState, check_log
from .logged_segments import check_journals, check_log_segments
from .recording_check import check_recordings, recordings_of
from .report import Report
from .segment_check import SegmentChecks
from .witnessed import Cosigned, check_witnessed

__all__ = ["MAX_KEY", "Trust", "Verifier", "verify"]

MAX_KEY = 16 << 10


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


class Verifier:
    """One verification of one folder: :meth:`run` once, then read the recordings it accepted."""

    def __init__(self, root: Path, trust: Trust) -> None:
        self.root = root
        self.identity = trust.identity
        self.trusted_cp = trust.checkpoint
        self.station_keys = trust.station_keys
        self.witnesses = trust.witnesses
        self.c2pa_anchors = trust.c2pa_anchors
        self.r = Report(str(root))
        self.keys = list(trust.pubkeys)
        self.lay = Layout()
        self.log = LogState()
        self.accepted: list[dict[str, Any]] = []  # manifests at their logged place, verified

    def run(self) -> Report:
        """Every check, each problem a finding in the returned report (never raises for it)."""
        if not self.root.is_dir():
            self.r.add("fail", "no_such_folder", str(self.root), "not a directory")
            return self.r
        self.root = self._data_root()
        self.lay = classify(walk(self.root), self.r)
        self._load_keys()
        self.log = check_log(self.lay.log, self.lay.checkpoint, self.keys, self.r,
                             trusted_checkpoint=self.trusted_cp, station_keys=self.station_keys)
        # Every key trusted for some stretch of the log; which stretch is log.windows' to say.
        self.keys.extend(k for k in self.log.introduced if k not in self.keys)
        if self.witnesses:
            extra = [Cosigned("--checkpoint", self.trusted_cp)] if self.trusted_cp else []
            check_witnessed([*extra, *self._cosigned_notes()], self.witnesses, self.keys,
                            self.log, self.r)
        segments = SegmentChecks(self.r, self.lay, self.log, keys=self.keys,
                                 identity=self.identity, c2pa_anchors=self.c2pa_anchors)
        found = segments.load()
        claimed = segments.check(found)
        check_log_segments(self.log, found, self.r)
        claimed |= check_journals(self.lay, self.r)
        for rel in sorted(set(self.lay.credentials) - segments.c2pa_claimed):
            self.r.add("warn", "stray_credential", rel,
                       "a Content Credential beside no verified segment")
        for rel in sorted(set(self.lay.media) - claimed):
            self.r.add("fail", "stray_media", rel,
                       "media file that no signed manifest names: not evidence, and possibly "
                       "a substitute for evidence")
        self.accepted = segments.accepted
        check_recordings(self.recordings(), self.r)
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

    # --- what was accepted --------------------------------------------------------------------
    def recordings(self) -> dict[str, list[dict[str, Any]]]:
        """The accepted manifests by recording, in segment order."""
        return recordings_of(self.accepted)

    def tracks(self) -> list[list[Sequence[object]]]:
        """GPS track rows per segment, recording by recording, from accepted manifests only."""
        return track_segments(m for ms in self.recordings().values() for m in ms)
