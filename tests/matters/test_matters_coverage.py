"""Checklist coverage and continuity, on manifest sets shaped like the recorder's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matters_harness import (
    FRAME_US,
    SEG_US,
    change,
    entry,
    manifest,
    mark,
    seg_start,
    utc,
    write_recording,
)

from agent.matters import (
    MatterCatalogue,
    coverage_for_dir,
    recording_coverage,
    render_coverage,
)

ZJSD = entry("ZJSD")  # required: service_time, service_result
FCZX = entry("FCZX")


def _complete_zjsd() -> list[dict]:
    return [
        manifest(0, matter=ZJSD, bookmarks=[mark("service_time", seg_start(0) + 2_500_000, seg_start(0))]),
        manifest(1, matter=ZJSD),
        manifest(2, matter=ZJSD, bookmarks=[mark("service_result", seg_start(2) + 400_000, seg_start(2))]),
    ]


def test_complete_recording_lists_every_mark_with_its_times() -> None:
    """All required items marked, segments back to back: complete and continuous."""
    cov = recording_coverage(_complete_zjsd())
    assert cov.continuous and cov.complete and not cov.uncategorised
    assert cov.segments == [0, 1, 2]
    assert cov.duration_us == 3 * SEG_US
    (m,) = cov.matters
    assert m.code == "ZJSD" and m.name_zh == "直接送达"
    assert m.required == ("service_time", "service_result") and m.missing == ()
    result = m.marked["service_result"]
    assert (result.seq, result.offset_us, result.media_us) == (2, 400_000, 2 * SEG_US + 400_000)
    assert result.utc == utc(seg_start(2) + 400_000)
    assert m.spans == [(0, 3 * SEG_US)]


def test_missing_required_items_are_named() -> None:
    """Items never marked are reported missing; a mark off the required list is kept as extra."""
    segs = [manifest(0, matter=FCZX, bookmarks=[mark("identity", seg_start(0) + 10, seg_start(0))]),
            manifest(1, matter=FCZX, bookmarks=[mark("rights_read", seg_start(1) + 5, seg_start(1))])]
    cov = recording_coverage(segs)
    (m,) = cov.matters
    assert cov.continuous and not cov.complete and not m.complete
    assert m.missing == ("reasons_read", "legal_basis", "statement", "measure", "items_counted")
    text = "\n".join(render_coverage(cov))
    assert "2/7 required item(s) marked, 5 required item(s) MISSING" in text
    assert "[ ] items_counted — MISSING" in text
    named = "\n".join(render_coverage(recording_coverage(segs, catalogue=MatterCatalogue.load())))
    assert ("[ ] items_counted 封存的资料和物品的清点情况 (Sealed materials and items counted)"
            " — MISSING") in named
    assert "[x] identity 表明执法人员身份 (Identity shown) — marked at 0.000 s (segment 0" in named


def test_gap_between_segments_breaks_continuity() -> None:
    """Segment 2 starting 200 ms after segment 1 ended is a gap, named with its size."""
    segs = _complete_zjsd()
    segs[2] = manifest(2, start=seg_start(2) + 200_000, matter=ZJSD)
    cov = recording_coverage(segs)
    assert not cov.continuous and not cov.complete
    (d,) = cov.discontinuities
    assert (d.seq, d.kind) == (2, "gap")
    assert "200.0 ms not recorded between segment 1 and 2" in d.detail


def test_lost_first_frames_count_as_a_gap_even_when_start_matches() -> None:
    """A segment whose first frame is later than the previous end (frames lost at the roll)."""
    segs = _complete_zjsd()
    segs[1] = manifest(1, matter=ZJSD, pts_shift=3 * FRAME_US)
    (d,) = recording_coverage(segs).discontinuities
    assert d.kind == "gap" and d.seq == 1


def test_one_frame_of_jitter_is_tolerated_and_more_overlap_is_not() -> None:
    """Within one frame interval the boundary is continuous; an overlap beyond it is reported."""
    segs = _complete_zjsd()
    segs[1] = manifest(1, start=seg_start(1) + FRAME_US - 1, length=SEG_US - FRAME_US + 1,
                       matter=ZJSD)
    assert recording_coverage(segs).continuous
    segs[1] = manifest(1, start=seg_start(1) - 2 * FRAME_US, length=SEG_US + 2 * FRAME_US,
                       matter=ZJSD)
    (d,) = recording_coverage(segs).discontinuities
    assert d.kind == "overlap" and "starts 66.7 ms before segment 0 ends" in d.detail


def test_truncated_segment_is_not_continuous() -> None:
    """A segment sealed after a crash (truncated, recovered) breaks the whole."""
    segs = _complete_zjsd()
    segs[1] = manifest(1, matter=ZJSD, flags=["recovered", "truncated"])
    segs[1]["end"] = {"utc": None, "mono_us": None}
    cov = recording_coverage(segs)
    kinds = sorted(d.kind for d in cov.discontinuities)
    assert kinds == ["recovered", "truncated"]
    assert not cov.complete
    assert "segment 1 truncated (sealed after a crash; its end is lost)" in "\n".join(render_coverage(cov))


def test_missing_segments_and_lost_frames() -> None:
    """A hole in the seq numbers, a missing first segment and frames lost inside a segment."""
    segs = [manifest(1, matter=ZJSD, missing_frames=4), manifest(3, matter=ZJSD)]
    details = [d.detail for d in recording_coverage(segs).discontinuities]
    assert details == ["segments 0..0 are missing before segment 1",
                       "4 frame(s) missing inside segment 1",
                       "segment(s) 2 missing between 1 and 3"]


def test_matter_change_splits_the_checklist_by_time() -> None:
    """Marks count for the matter active when made; the change is listed with its times."""
    s1 = seg_start(1)
    segs = [
        manifest(0, matter=ZJSD, bookmarks=[mark("service_time", seg_start(0) + 100, seg_start(0))]),
        manifest(1, matter=FCZX, bookmarks=[mark("service_result", s1 + 100_000, s1),
                                            change("FCZX", s1 + 500_000, s1),
                                            mark("identity", s1 + 900_000, s1)]),
        manifest(2, matter=FCZX),
    ]
    cov = recording_coverage(segs)
    zjsd, fczx = cov.matters
    assert zjsd.complete and zjsd.spans == [(0, SEG_US + 500_000)]
    assert list(fczx.marked) == ["identity"] and "service_result" not in fczx.marked
    assert fczx.spans == [(SEG_US + 500_000, 3 * SEG_US)]
    (c,) = cov.changes
    assert (c.previous, c.matter, c.seq, c.offset_us, c.media_us) == ("ZJSD", "FCZX", 1, 500_000,
                                                                      SEG_US + 500_000)
    assert "matter changed at 3.500 s (segment 1 +0.500 s" in "\n".join(render_coverage(cov))


def test_returning_to_a_matter_merges_its_spans() -> None:
    """ZJSD → FCZX → ZJSD: one ZJSD entry with two spans; marks from both count."""
    s0, s1, s2 = seg_start(0), seg_start(1), seg_start(2)
    segs = [
        manifest(0, matter=ZJSD, bookmarks=[mark("service_time", s0 + 10, s0)]),
        manifest(1, matter=FCZX, bookmarks=[change("FCZX", s1 + 1000, s1)]),
        manifest(2, matter=ZJSD, bookmarks=[change("ZJSD", s2 + 1000, s2),
                                            mark("service_result", s2 + 2000, s2)]),
    ]
    cov = recording_coverage(segs)
    zjsd, fczx = cov.matters
    assert zjsd.complete and zjsd.spans == [(0, SEG_US + 1000), (2 * SEG_US + 1000, 3 * SEG_US)]
    assert fczx.spans == [(SEG_US + 1000, 2 * SEG_US + 1000)] and fczx.marks == []
    assert [(c.previous, c.matter) for c in cov.changes] == [("ZJSD", "FCZX"), ("FCZX", "ZJSD")]
    assert cov.uncategorised_us == 0


def test_change_inside_the_first_segment() -> None:
    """Before a change in the first segment the matter is not on record: uncategorised."""
    s0 = seg_start(0)
    segs = [manifest(0, matter=FCZX, bookmarks=[mark("identity", s0 + 10, s0),
                                                change("FCZX", s0 + 1000, s0)])]
    cov = recording_coverage(segs)
    assert cov.uncategorised_us == 1000 and not cov.uncategorised
    assert [m.item for m in cov.unassigned_marks] == ["identity"]
    assert [(c.previous, c.matter) for c in cov.changes] == [(None, "FCZX")]
    assert cov.matters[0].missing[0] == "identity"
    assert "  uncategorised for 0.001 s of the recording" in render_coverage(cov)


def test_change_bookmark_naming_the_previous_matter() -> None:
    """A change bookmark that names the previous matter puts the start of the first segment
    under it instead of uncategorised."""
    s0 = seg_start(0)
    bookmark = dict(change("FCZX", s0 + 1000, s0), previous="ZJSD")
    cov = recording_coverage([manifest(0, matter=FCZX, bookmarks=[bookmark]), manifest(1, matter=ZJSD)])
    assert cov.uncategorised_us == 0
    assert [(m.code, m.spans) for m in cov.matters] == [
        ("ZJSD", [(0, 1000), (SEG_US, 2 * SEG_US)]), ("FCZX", [(1000, SEG_US)])]
    assert cov.matters[0].required == ("service_time", "service_result")


def test_change_label_as_typed_is_normalised() -> None:
    """``ctl matter zjsd`` accepted case-insensitively: the bookmark still maps to ZJSD."""
    s1 = seg_start(1)
    segs = [manifest(0, matter=FCZX), manifest(1, matter=ZJSD, bookmarks=[change("zjsd", s1 + 5, s1)])]
    cov = recording_coverage(segs)
    assert [m.code for m in cov.matters] == ["FCZX", "ZJSD"]
    assert cov.matters[1].required == ("service_time", "service_result")


def test_uncategorised_recording() -> None:
    """No matter at any time: flagged, and marks are listed as unassigned."""
    segs = [manifest(0, bookmarks=[mark("identity", seg_start(0) + 10, seg_start(0))]), manifest(1)]
    cov = recording_coverage(segs)
    assert cov.uncategorised and not cov.complete and cov.continuous
    assert cov.uncategorised_us == 2 * SEG_US
    lines = render_coverage(cov)
    assert "  matter: UNCATEGORISED (no enforcement matter was assigned)" in lines
    assert any("marked identity at 0.000 s" in x and "no matter was assigned" in x for x in lines)


def test_entry_without_checklist_is_reported_unknown() -> None:
    """A manifest matter without required items (no catalogue) cannot be called complete."""
    cov = recording_coverage([manifest(0, matter={"code": "XCJC"})])
    (m,) = cov.matters
    assert m.required is None and not m.complete and not cov.complete
    assert "    checklist: unknown (the manifests carry no required items)" in render_coverage(cov)


def test_coverage_for_dir_reads_manifests_from_disk(tmp_path: Path) -> None:
    """Every recording under a data directory, by start time; unreadable manifests skipped."""
    later = [dict(m, recording_id="rec2") for m in _complete_zjsd()]
    for m in later:
        m["start"] = {"utc": "2026-11-28T00:00:00.000000Z", "mono_us": m["start"]["mono_us"]}
    write_recording(tmp_path, later, "b")
    rec_dir = write_recording(tmp_path, list(reversed(_complete_zjsd())), "a")
    (rec_dir / "junk.manifest.json").write_text("{not json")
    covs = coverage_for_dir(tmp_path)
    assert [c.recording_id for c in covs] == ["rec1", "rec2"]
    assert all(c.complete for c in covs)
    assert [c.recording_id for c in coverage_for_dir(tmp_path / "recordings")] == ["rec1", "rec2"]
    assert [c.recording_id for c in coverage_for_dir(rec_dir)] == ["rec1"]


def test_json_form_is_serialisable_and_complete() -> None:
    """to_json() carries the verdicts and every mark (for verify --json)."""
    doc = json.loads(json.dumps(recording_coverage(_complete_zjsd()).to_json(), ensure_ascii=False))
    assert doc["continuous"] is True and doc["complete"] is True and doc["uncategorised"] is False
    (m,) = doc["matters"]
    assert m["missing"] == [] and m["marked"]["service_time"]["media_us"] == 2_500_000
    assert m["marked"]["service_time"]["utc"] == utc(seg_start(0) + 2_500_000)


def test_audio_only_recording_uses_the_aac_frame_as_tolerance() -> None:
    """Without video, one AAC frame (1024 samples) is the boundary tolerance."""
    segs = _complete_zjsd()
    for m in segs:
        m["media"]["video"] = None
    segs[1]["start"]["mono_us"] += 21_000  # < 21.3 ms at 48 kHz
    assert recording_coverage(segs).continuous
    segs[1]["start"]["mono_us"] += 1_000
    assert [d.kind for d in recording_coverage(segs).discontinuities] == ["gap"]


def test_mixed_recordings_are_refused() -> None:
    """One coverage is one recording."""
    with pytest.raises(ValueError, match="several recordings"):
        recording_coverage([manifest(0), manifest(1, recording_id="other")])
    with pytest.raises(ValueError, match="at least one"):
        recording_coverage([])
