"""Make room by evicting acknowledged segments -- and never anything else.

"Acknowledged" means a collection station's signed receipt for the segment is in the evidence
log (:meth:`EvidenceStore.accept_receipt`); nothing else counts. The storage policy chooses
(oldest acknowledged segments past the retention minimum); the evidence store's ``evict``
deletes and logs each one, citing its receipt, and refuses anything unacknowledged. This
module only lists what is on disk for the planner and carries the plan out.
"""

from __future__ import annotations

import time
from pathlib import Path

from agent.evidence.canonical import parse_canonical
from agent.evidence.journal import MANIFEST_SUFFIX
from agent.ports import EvidenceOps, SpaceWatch
from agent.storage.eviction import SealedSegment

__all__ = ["evict_acknowledged", "sealed_segments"]


def sealed_segments(data_dir: Path, store: EvidenceOps) -> list[SealedSegment]:
    """Every sealed segment whose media is still on disk, oldest first."""
    out: list[tuple[int, SealedSegment]] = []
    for env in (Path(data_dir) / "recordings").glob(f"*/*{MANIFEST_SUFFIX}"):
        try:
            m = parse_canonical(env.read_bytes())["manifest"]
        except (OSError, ValueError, KeyError):
            continue
        media = env.with_name(m["file"]["name"])
        if not media.exists():
            continue
        seq = int(m["device_seq"])
        out.append((seq, SealedSegment(media, media.stat().st_size, env.stat().st_mtime,
                                       store.acknowledged(seq))))
    return [s for _, s in sorted(out, key=lambda x: x[0])]


def evict_acknowledged(store: EvidenceOps, watch: SpaceWatch, data_dir: Path, *,
                       min_age_s: float) -> int:
    """Evict what the storage policy's plan allows (segments at least ``min_age_s`` old, by
    their wall-clock seal time); returns bytes freed. Nothing before the first reading."""
    plan = watch.plan_eviction(sealed_segments(data_dir, store), now_wall=time.time(),
                               min_age_s=min_age_s)
    if plan is None:
        return 0
    freed = 0
    for path in plan.paths:
        freed += store.evict(path)
    return freed
