"""TrackRecorder bounds, integer positions and the manifest's ``gps`` bytes; GPX and GeoJSON
parse back to the same points."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from agent.evidence.canonical import canonical_json
from agent.location import TrackRecorder, fix_position, to_geojson, to_gpx
from agent.location.export import GPX_NS
from hw.errors import VerificationError
from hw.gps import Fix

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def fix_at(second: float, *, lat: float = 31.2304161, alt: float | None = 12.3456) -> Fix:
    return Fix(
        mode=3, utc=T0 + timedelta(seconds=second), lat=lat + second * 1e-5, lon=121.4737012,
        alt_msl=alt, received_mono_ns=int(second * 1e9) + 1,
    )


def test_positions_are_integers_only() -> None:
    """Manifest positions carry no float: e7 degrees and millimetres, UTC to the ms."""
    row = fix_position(fix_at(0)).to_row()
    assert row == ["2026-03-01T08:00:00.000Z", 312304161, 1214737012, 12346]
    assert not any(isinstance(v, float) for v in row)
    assert fix_position(fix_at(0, alt=None)).alt_mm is None
    assert fix_position(fix_at(1.2345678)).utc == "2026-03-01T08:00:01.234Z"  # truncated


def test_ten_hertz_fixes_are_sampled_at_one_hertz() -> None:
    """A 10 Hz receiver yields one sample per second; start and end are exact."""
    rec = TrackRecorder()
    rec.start_segment(0)
    for tenth in range(100):
        rec.add(fix_at(tenth / 10))
    summary = rec.end_segment()
    assert len(summary.track) == 10 and rec.fixes == 100
    assert summary.start == fix_position(fix_at(0))
    assert summary.end == fix_position(fix_at(9.9))
    assert [p.utc[17:19] for p in summary.track] == [f"{s:02d}" for s in range(10)]


def test_long_segment_is_bounded_by_decimation() -> None:
    """Hours of fixes stay within max_samples, evenly spread, the interval doubling."""
    rec = TrackRecorder(max_samples=100)
    rec.start_segment(0)
    for second in range(1000):
        rec.add(fix_at(second))
    summary = rec.end_segment()
    assert len(summary.track) <= 100
    assert rec.interval_s == 16
    assert summary.track[0] == fix_position(fix_at(0))
    assert summary.end == fix_position(fix_at(999))
    seconds = [int(p.utc[14:16]) * 60 + int(p.utc[17:19]) for p in summary.track]
    assert {b - a for a, b in itertools.pairwise(seconds)} == {16}


def test_no_fix_no_stale_and_untimed_are_not_positions() -> None:
    """Stale markers, no-fix epochs and undated fixes never enter the track."""
    rec = TrackRecorder()
    rec.start_segment(0)
    rec.add(Fix(mode=1, utc=T0, received_mono_ns=1))
    rec.add(Fix(mode=1, utc=None, received_mono_ns=2, stale=True))
    rec.add(Fix(mode=3, utc=None, lat=1.0, lon=1.0, received_mono_ns=3))
    summary = rec.end_segment()
    assert (summary.start, summary.end, summary.track) == (None, None, ())


def test_recent_fix_before_the_segment_is_its_start() -> None:
    """A fix received shortly before start_segment gives the start position; an old one does not."""
    rec = TrackRecorder(start_max_age_s=5)
    rec.add(fix_at(0))
    rec.start_segment(now_mono_ns=int(3e9))
    assert rec.end_segment().start == fix_position(fix_at(0))
    rec.start_segment(now_mono_ns=int(60e9))
    assert rec.end_segment().start is None


def test_the_manifest_gps_object_has_its_shipped_bytes() -> None:
    """What the recorder puts in a manifest: start/end objects, a track of compact rows, no
    float (the bytes are signed evidence: this shape must never change)."""
    rec = TrackRecorder()
    rec.start_segment(0)
    for second in range(2):
        rec.add(fix_at(second, alt=None if second else 12.3456))
    assert canonical_json(rec.end_segment().to_json()) == (
        b'{"end":{"alt_mm":null,"lat_e7":312304261,"lon_e7":1214737012,'
        b'"utc":"2026-03-01T08:00:01.000Z"},'
        b'"start":{"alt_mm":12346,"lat_e7":312304161,"lon_e7":1214737012,'
        b'"utc":"2026-03-01T08:00:00.000Z"},'
        b'"track":[["2026-03-01T08:00:00.000Z",312304161,1214737012,12346],'
        b'["2026-03-01T08:00:01.000Z",312304261,1214737012,null]]}')
    assert canonical_json(TrackRecorder().end_segment().to_json()) == \
        b'{"end":null,"start":null,"track":[]}'


def test_gpx_parses_back_to_the_same_points() -> None:
    """GPX 1.1 with one trkseg per segment; coordinates and times exact."""
    seg_a = [fix_position(fix_at(s)).to_row() for s in range(3)]
    seg_b = [fix_position(fix_at(s, alt=None)).to_row() for s in range(10, 12)]
    root = ET.fromstring(to_gpx([seg_a, seg_b], name="REC-1"))
    ns = {"g": GPX_NS}
    assert root.tag == f"{{{GPX_NS}}}gpx" and root.get("version") == "1.1"
    segs = root.findall("g:trk/g:trkseg", ns)
    assert [len(s) for s in segs] == [3, 2]
    first = segs[0][0]
    assert (first.get("lat"), first.get("lon")) == ("31.2304161", "121.4737012")
    assert first.findtext("g:ele", namespaces=ns) == "12.346"
    assert first.findtext("g:time", namespaces=ns) == "2026-03-01T08:00:00.000Z"
    assert segs[1][0].find("g:ele", ns) is None


def test_geojson_is_a_valid_feature_collection() -> None:
    """RFC 7946: [lon, lat, ele] order, one LineString per segment, times kept."""
    seg = [fix_position(fix_at(s)).to_row() for s in range(3)]
    doc = json.loads(to_geojson([seg, seg[:1]], properties={"recording": "REC-1"}))
    assert doc["type"] == "FeatureCollection"
    line, point = doc["features"]
    assert line["geometry"]["type"] == "LineString"
    assert line["geometry"]["coordinates"][0] == [121.4737012, 31.2304161, 12.346]
    assert line["properties"]["times"][2] == "2026-03-01T08:00:02.000Z"
    assert line["properties"]["recording"] == "REC-1"
    assert point["geometry"] == {"type": "Point", "coordinates": [121.4737012, 31.2304161, 12.346]}


@pytest.mark.parametrize(
    "row",
    [["2026-03-01T08:00:00Z", 1.5, 2, None], ["2026-03-01T08:00:00Z", 900_000_001, 0, None],
     ["x", 1, 2, None], ["2026-03-01T08:00:00Z", 1, 2], ["2026-03-01T08:00:00Z", 1, 2, 1.5]],
)
def test_malformed_rows_are_refused(row: list[object]) -> None:
    """A tampered or malformed manifest track is a VerificationError, not a bad file."""
    with pytest.raises(VerificationError, match="track row"):
        to_gpx([[row]])
    with pytest.raises(VerificationError, match="track row"):
        to_geojson([[row]])
