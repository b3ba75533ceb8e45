"""The plain-language coverage report: what a supervisor or a court reads.

Lines, not a table: each says one thing in full ("rights_read 宣读当事人依法享有的权利 … —
MISSING"), so the report survives being pasted into a case file, grepped or read aloud.
Times are media time from the start of the recording (what a player shows when the segments
are played in order), with the segment, the offset inside it and UTC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.matters.catalogue import MatterCatalogue
    from agent.matters.coverage import Mark, MatterCoverage, RecordingCoverage

__all__ = ["render_coverage"]


def render_coverage(cov: RecordingCoverage, catalogue: MatterCatalogue | None = None) -> list[str]:
    """Plain-language report lines for one recording (item names from ``catalogue``, else from
    the catalogue the coverage was computed with, when there is one)."""
    catalogue = catalogue if catalogue is not None else cov.catalogue
    lines = [f"recording {cov.recording_id}: {len(cov.segments)} segment(s), "
             f"{_s(cov.duration_us)}, {cov.start_utc or '?'} → {cov.end_utc or '?'}"]
    if cov.continuous:
        lines.append(f"  continuous: yes (segments {cov.segments[0]}..{cov.segments[-1]}, "
                     "no gap, nothing lost or damaged)")
    else:
        lines.append(f"  continuous: NO ({len(cov.discontinuities)} problem(s))")
        lines.extend(f"    - {d.detail}" for d in cov.discontinuities)
    if cov.uncategorised:
        lines.append("  matter: UNCATEGORISED (no enforcement matter was assigned)")
    elif cov.uncategorised_us:
        lines.append(f"  uncategorised for {_s(cov.uncategorised_us)} of the recording")
    for m in cov.matters:
        lines.extend(_matter_lines(m, catalogue))
    for c in cov.changes:
        lines.append(f"  matter changed at {_s(c.media_us)} (segment {c.seq} "
                     f"+{_s(c.offset_us)}, {c.utc or '?'}): {c.previous or 'none'} → {c.matter}")
    for mark in cov.unassigned_marks:
        lines.append(f"  marked {mark.item} {_when(mark)} while no matter was assigned")
    return lines


def _matter_lines(m: MatterCoverage, catalogue: MatterCatalogue | None) -> list[str]:
    spans = ", ".join(f"{_s(a)}-{_s(b)}" for a, b in m.spans) or "-"
    names = " / ".join(n for n in (m.name_zh, m.name_en) if n)
    if not names and catalogue is not None and m.code in catalogue:  # an entry without names
        known = catalogue.get(m.code)
        names = f"{known.name_zh} / {known.name_en} (names from the catalogue)"
    out = [f"  matter {m.code}{' ' + names if names else ''} ({spans})"]
    if m.required is None:
        out.append("    checklist: unknown (the manifests carry no required items)")
    else:
        verdict = "complete" if m.complete else f"{len(m.missing)} required item(s) MISSING"
        out.append(f"    checklist: {len(m.required) - len(m.missing)}/{len(m.required)} "
                   f"required item(s) marked, {verdict}")
    marked = m.marked
    for code in m.required or ():
        mark = marked.get(code)
        status = f"marked {_when(mark)}" if mark else "MISSING"
        out.append(f"    [{'x' if mark else ' '}] {code}{_item_name(catalogue, m.code, code)}"
                   f" — {status}")
    for code, mark in marked.items():
        if code not in (m.required or ()):
            out.append(f"    [+] {code}{_item_name(catalogue, m.code, code)} — marked "
                       f"{_when(mark)} (not required)")
    return out


def _item_name(catalogue: MatterCatalogue | None, matter: str, item: str) -> str:
    if catalogue is None or matter not in catalogue:
        return ""
    found = catalogue.get(matter).item(item)
    return f" {found.zh} ({found.en})" if found else ""


def _when(mark: Mark) -> str:
    return f"at {_s(mark.media_us)} (segment {mark.seq} +{_s(mark.offset_us)}, {mark.utc or '?'})"


def _s(us: int) -> str:
    return f"{us / 1_000_000:.3f} s"
