"""GPX and GeoJSON export of a recording's track, from the manifests' ``gps.track`` rows.

Rows are ``[utc, lat_e7, lon_e7, alt_mm|null]``; coordinates are integers in 1e-7 degrees
and are rendered as exact decimal strings (no float round trip).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

__all__ = ["to_geojson", "to_gpx", "track_rows"]


def _deg(e7: int) -> str:
    sign = "-" if e7 < 0 else ""
    whole, frac = divmod(abs(e7), 10_000_000)
    return f"{sign}{whole}.{frac:07d}"


def _metres(mm: int) -> str:
    sign = "-" if mm < 0 else ""
    whole, frac = divmod(abs(mm), 1000)
    return f"{sign}{whole}.{frac:03d}"


def track_rows(manifests: Iterable[dict[str, Any]]) -> list[list[Any]]:
    """All track rows of the manifests, in segment order, duplicates at boundaries dropped."""
    rows: list[list[Any]] = []
    for m in sorted(manifests, key=lambda m: (m.get("recording_id"), m.get("seq"))):
        for row in (m.get("gps") or {}).get("track") or []:
            if not rows or rows[-1] != row:
                rows.append(list(row))
    return rows


def to_gpx(rows: Sequence[Sequence[Any]], *, name: str) -> str:
    """A GPX 1.1 document with one track."""
    pts = []
    for utc, lat, lon, alt in rows:
        ele = f"<ele>{_metres(alt)}</ele>" if alt is not None else ""
        pts.append(f'      <trkpt lat="{_deg(lat)}" lon="{_deg(lon)}">{ele}'
                   f"<time>{utc}</time></trkpt>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<gpx version="1.1" creator="bodycam verify" '
            'xmlns="http://www.topografix.com/GPX/1/1">\n'
            f"  <trk><name>{quoteattr(name)[1:-1]}</name>\n    <trkseg>\n"
            + "\n".join(pts) + "\n    </trkseg>\n  </trk>\n</gpx>\n")


def to_geojson(rows: Sequence[Sequence[Any]], *, name: str) -> str:
    """A GeoJSON FeatureCollection with one LineString (RFC 7946: lon, lat, alt)."""
    coords = []
    for _, lat, lon, alt in rows:
        pt = [json.loads(_deg(lon)), json.loads(_deg(lat))]
        if alt is not None:
            pt.append(json.loads(_metres(alt)))
        coords.append(pt)
    feature = {"type": "Feature", "properties": {"name": name,
                                                 "times": [r[0] for r in rows]},
               "geometry": {"type": "LineString", "coordinates": coords}}
    return json.dumps({"type": "FeatureCollection", "features": [feature]}, indent=1) + "\n"
