"""The recordings in ``bodycam verify``: segments in order, none missing, no time gaps.

Runs over the manifests that passed every per-segment check: within each recording the
segments must run ``seq`` 0, 1, 2, ... with rising ``device_seq``, and a gap of more than a
millisecond between one's end and the next one's start is reported. Its own module because it
judges a recording as a whole -- the continuity a court asks about -- not a file.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .report import Report
from .utc import parse_utc

__all__ = ["check_recordings", "recordings_of"]


def recordings_of(accepted: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The manifests by recording, in segment order."""
    by_rec: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in accepted:
        by_rec[m["recording_id"]].append(m)
    for ms in by_rec.values():
        ms.sort(key=lambda m: (m["seq"], m["device_seq"]))
    return dict(by_rec)


def check_recordings(recordings: dict[str, list[dict[str, Any]]], r: Report) -> None:
    """Sequence gaps, duplicates, reordering and time gaps within each recording."""
    for rid, ms in sorted(recordings.items()):
        where = f"recording {rid[:8]}"
        for a, b in itertools.pairwise(ms):
            if b["seq"] == a["seq"]:
                r.add("fail", "duplicate_segment", where,
                      f"two different signed segments claim seq {a['seq']}")
            elif b["seq"] != a["seq"] + 1:
                r.add("fail", "sequence_gap", where,
                      f"segments {a['seq'] + 1}..{b['seq'] - 1} missing")
            if a["device_seq"] >= b["device_seq"]:
                r.add("fail", "reordered", where,
                      f"seq {b['seq']} has device_seq {b['device_seq']} <= "
                      f"{a['device_seq']} of seq {a['seq']}")
            gap = _gap_ms(a["end"]["utc"], b["start"]["utc"])
            if gap is not None and abs(gap) > 1:
                r.add("warn", "time_gap", where,
                      f"{gap} ms between end of seq {a['seq']} and start of {b['seq']}")
        if ms and ms[0]["seq"] != 0:
            r.add("fail", "sequence_gap", where, f"segments 0..{ms[0]['seq'] - 1} missing")


def _gap_ms(end: Any, start: Any) -> int | None:
    """Milliseconds from one segment's ``end`` to the next one's ``start`` (None if either is
    not a manifest time)."""
    if not isinstance(end, str) or not isinstance(start, str):
        return None
    try:
        delta = parse_utc(start) - parse_utc(end)
    except ValueError:
        return None
    return round(delta.total_seconds() * 1000)
