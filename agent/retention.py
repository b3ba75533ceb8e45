"""Make room by evicting acknowledged segments -- and never anything else.

"Acknowledged" means a collection station's signed receipt for the segment is in the evidence
log (:meth:`EvidenceStore.accept_receipt`); nothing else counts. The storage policy chooses
(oldest acknowledged segments past the retention minimum); the evidence store's ``evict``
deletes and logs each one, citing its receipt, and refuses anything unacknowledged. This
module only lists what is on disk for the planner and carries the plan out.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agent.evidence.canonical import parse_canonical
from agent.evidence.journal import MANIFEST_SUFFIX
from agent.storage.eviction import SealedSegment

if TYPE_CHECKING:
    from agent.app import Agent

__all__ = ["evict_acknowledged", "sealed_segments"]


def sealed_segments(agent: Agent) -> list[SealedSegment]:
    """Every sealed segment whose media is still on disk, oldest first."""
    out: list[tuple[int, SealedSegment]] = []
    for env in (agent.data_dir / "recordings").glob(f"*/*{MANIFEST_SUFFIX}"):
        try:
            m = parse_canonical(env.read_bytes())["manifest"]
        except (OSError, ValueError, KeyError):
            continue
        media = env.with_name(m["file"]["name"])
        if not media.exists():
            continue
        seq = int(m["device_seq"])
        out.append((seq, SealedSegment(media, media.stat().st_size, env.stat().st_mtime,
                                       agent.store.acknowledged(seq))))
    return [s for _, s in sorted(out, key=lambda x: x[0])]


def evict_acknowledged(agent: Agent, now_mono: float) -> int:
    """Evict what the plan allows; returns bytes freed."""
    watch = agent.storage_watch
    if watch.reading is None:
        return 0
    plan = watch.policy.plan_eviction(
        sealed_segments(agent), watch.reading, watch.meter.rate, now=time.time(),
        min_age_s=agent.cfg.storage.min_retention_h * 3600)
    freed = 0
    for path in plan.paths:
        freed += agent.store.evict(path)
    return freed
