"""Export a recording's track as GPX 1.1 or GeoJSON (RFC 7946).

Input is what manifests carry: segments, each a list of ``[utc_iso, lat_e7, lon_e7,
alt_mm | None]`` rows (:func:`track_segments` takes them from manifests). Each segment becomes
its own GPX ``trkseg`` / GeoJSON LineString, so a gap between segments is not drawn as travel.
Rows are validated: a manifest read back for export is untrusted input. Coordinates are
integers in 1e-7 degrees and are written as exact decimals with all seven places (no float
round trip in GPX), so a reader can match a point to its manifest row digit for digit.

The one track export of the product: ``bodycam verify --gpx/--geojson`` and the station's court
bundle (``track.gpx``) both write through here.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from hw.errors import VerificationError

__all__ = ["GPX_NS", "to_geojson", "to_gpx", "track_segments"]

GPX_NS = "http://www.topografix.com/GPX/1/1"
_E7 = Decimal(10) ** 7


def track_segments(manifests: Iterable[Mapping[str, Any]]) -> list[list[Sequence[object]]]:
    """Each manifest's ``gps.track`` rows, one list per segment, in (recording, seq) order;
    segments without a track are left out."""
    ordered = sorted(manifests, key=lambda m: (str(m.get("recording_id")), _seq(m.get("seq"))))
    out: list[list[Sequence[object]]] = []
    for m in ordered:
        gps = m.get("gps")
        rows = gps.get("track") if isinstance(gps, Mapping) else None
        if isinstance(rows, list) and rows:
            out.append([r if isinstance(r, Sequence) and not isinstance(r, str) else [r]
                        for r in rows])
    return out


def _seq(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _fixed(value: int, places: int) -> str:
    """``value`` / 10**places as an exact decimal string with every place written."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


def _checked(row: Sequence[object]) -> tuple[str, Decimal, Decimal, Decimal | None]:
    """Validate one row and convert to exact decimal degrees and metres."""
    if len(row) != 4:
        raise VerificationError(f"track row must have 4 items, got {row!r}")
    utc, lat, lon, alt = row
    if not isinstance(utc, str) or not utc.endswith("Z"):
        raise VerificationError(f"track row time must be ISO 8601 UTC, got {utc!r}")
    for name, value, limit in (("lat", lat, 900_000_000), ("lon", lon, 1_800_000_000)):
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > limit:
            raise VerificationError(f"track row {name} must be an integer e7 in range: {row!r}")
    if alt is not None and (not isinstance(alt, int) or isinstance(alt, bool)):
        raise VerificationError(f"track row altitude must be integer mm or null: {row!r}")
    assert isinstance(lat, int) and isinstance(lon, int)
    return utc, Decimal(lat) / _E7, Decimal(lon) / _E7, (
        Decimal(alt) / 1000 if isinstance(alt, int) else None
    )


def to_gpx(segments: Sequence[Sequence[Sequence[object]]], *, name: str | None = None) -> str:
    """A GPX 1.1 document with one track and one ``trkseg`` per segment."""
    ET.register_namespace("", GPX_NS)
    root = ET.Element(f"{{{GPX_NS}}}gpx", {"version": "1.1", "creator": "bodycam-agent"})
    trk = ET.SubElement(root, f"{{{GPX_NS}}}trk")
    if name:
        ET.SubElement(trk, f"{{{GPX_NS}}}name").text = name
    for rows in segments:
        seg = ET.SubElement(trk, f"{{{GPX_NS}}}trkseg")
        for row in rows:
            utc, lat, lon, alt = _checked(row)
            pt = ET.SubElement(seg, f"{{{GPX_NS}}}trkpt",
                               {"lat": _fixed(int(lat * _E7), 7), "lon": _fixed(int(lon * _E7), 7)})
            if alt is not None:
                ET.SubElement(pt, f"{{{GPX_NS}}}ele").text = _fixed(int(alt * 1000), 3)
            ET.SubElement(pt, f"{{{GPX_NS}}}time").text = utc
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def to_geojson(
    segments: Sequence[Sequence[Sequence[object]]], *, properties: dict[str, object] | None = None
) -> str:
    """A FeatureCollection with one LineString feature per segment (times in properties)."""
    features = []
    for index, rows in enumerate(segments):
        coords: list[list[float]] = []
        times: list[str] = []
        for row in rows:
            utc, lat, lon, alt = _checked(row)
            point = [float(lon), float(lat)] + ([float(alt)] if alt is not None else [])
            coords.append(point)
            times.append(utc)
        geometry = (
            {"type": "LineString", "coordinates": coords} if len(coords) >= 2
            else {"type": "Point", "coordinates": coords[0]} if coords else None
        )
        props: dict[str, object] = dict(properties or {})
        props.update(segment=index, times=times)
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=1) + "\n"
