"""The log's segment leaves and the journals, in ``bodycam verify``: what must be present.

Every segment leaf of the log needs its manifest at the place the leaf names (a missing one is
a deleted segment), chained to the leaf before it and naming the same ciphertext; leaves come
in ``device_seq`` order. A journal is a segment a crash left unsealed: a warning, and its
media is accounted for. Its own module because these checks start from the log and the
folder's journals, not from the manifests found (:mod:`~agent.evidence.segment_check`).
"""

from __future__ import annotations

from pathlib import Path

from .canonical import parse_canonical
from .inventory import UnsafeFile, read_bounded
from .journal import MANIFEST_SUFFIX, sidecar
from .layout import Layout
from .logcheck import LogState
from .report import Report
from .segment_check import Found

__all__ = ["MAX_JOURNAL", "check_journals", "check_log_segments"]

MAX_JOURNAL = 1 << 20


def check_log_segments(log: LogState, found: dict[str, list[Found]], r: Report) -> None:
    """Each segment leaf against the manifest at its place (``found``: manifests by hash)."""
    last_dseq = -1
    leaves = log.leaves
    for i, e in enumerate(log.entries):
        if e.get("kind") != "segment":
            continue
        dseq = e["device_seq"]
        where = f"log entry {i} ({e['path']})"
        if dseq <= last_dseq:
            r.add("fail", "reordered", where,
                  f"device_seq {dseq} after {last_dseq}: segments out of order")
        elif dseq != last_dseq + 1:
            r.add("warn", "device_seq_gap", where,
                  f"device_seq jumps {last_dseq} → {dseq}")
        last_dseq = max(last_dseq, dseq)
        place = sidecar(Path(e["path"]), MANIFEST_SUFFIX).as_posix()
        item = next((f for f in found.get(e["manifest_sha256"], []) if f.node.rel == place),
                    None)
        if item is None:
            r.add("fail", "segment_missing", where,
                  f"segment seq {e['seq']} of recording {e['recording_id'][:8]} is in "
                  "the log but its manifest is missing, altered or moved (deleted "
                  "segment)")
            continue
        prev = leaves[i - 1].hex() if i else None
        if item.manifest["prev_leaf"] != prev:
            r.add("fail", "chain_broken", item.node.rel,
                  f"prev_leaf does not match log entry {i - 1}")
        if (item.manifest["device_seq"] != dseq
                or item.manifest["file"]["cipher_sha256"] != e["cipher_sha256"]):
            r.add("fail", "log_mismatch", item.node.rel,
                  "the log entry's device_seq or ciphertext hash differs from the "
                  "manifest's")


def check_journals(lay: Layout, r: Report) -> set[str]:
    """Unsealed segments (a crash): a warning each; their media are accounted for."""
    claimed: set[str] = set()
    for node in lay.journals:
        folder = node.rel.rsplit("/", 1)[0]
        try:
            doc = parse_canonical(read_bounded(node.path, MAX_JOURNAL))
            media = doc["media"] if isinstance(doc, dict) else None
        except (UnsafeFile, ValueError, UnicodeDecodeError, RecursionError, KeyError):
            media = None
        if not isinstance(media, str) or f"{folder}/{media}" not in lay.media:
            r.add("warn", "unsealed", node.rel,
                  "journal of a segment that was never sealed; its media is absent or "
                  "the journal is unreadable")
            continue
        claimed.add(f"{folder}/{media}")
        r.add("warn", "unsealed", node.rel,
              "segment was never sealed (crash); the agent recovers it on start")
    return claimed
