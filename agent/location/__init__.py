"""Location in evidence: the track recorded during each segment, and its export.

:class:`TrackRecorder` turns the fixes of a segment into a bounded, integer-only summary
for the manifest; :mod:`agent.location.export` writes such tracks as GPX 1.1 or GeoJSON for
``bodycam verify``.
"""

from agent.location.export import to_geojson, to_gpx
from agent.location.track import TrackRecorder, TrackRow, TrackSummary, fix_row

__all__ = ["TrackRecorder", "TrackRow", "TrackSummary", "fix_row", "to_geojson", "to_gpx"]
