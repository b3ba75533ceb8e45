"""Location in evidence: the track recorded during each segment, and its export.

:class:`TrackRecorder` turns the fixes of a segment into the manifest's bounded, integer-only
:class:`~agent.evidence.manifest.GpsSummary`; :mod:`agent.location.export` writes such tracks
as GPX 1.1 or GeoJSON for ``bodycam verify``.
"""

from agent.location.export import to_geojson, to_gpx
from agent.location.track import TrackRecorder, fix_position

__all__ = ["TrackRecorder", "fix_position", "to_geojson", "to_gpx"]
