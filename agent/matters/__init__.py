"""Enforcement matters: the seed's recording list as product data and behaviour.

* :mod:`~agent.matters.catalogue` -- the matters, their names and checklists, from TOML;
* :mod:`~agent.matters.quick` -- choosing a matter with the button (quick list, N beeps);
* :mod:`~agent.matters.coverage` -- per recording: required items marked or missing, and
  whether it is one continuous whole (:mod:`~agent.matters.continuity`; ``bodycam verify``
  reports both).
"""

from agent.matters.catalogue import (
    CARRIERS,
    SHIPPED_CATALOGUE,
    Category,
    ChecklistItem,
    Matter,
    MatterCatalogue,
)
from agent.matters.continuity import Discontinuity
from agent.matters.coverage import (
    Mark,
    MatterChange,
    MatterCoverage,
    RecordingCoverage,
    coverage_for_dir,
    recording_coverage,
)
from agent.matters.quick import QuickList, QuickStep
from agent.matters.render import render_coverage

__all__ = [
    "CARRIERS",
    "SHIPPED_CATALOGUE",
    "Category",
    "ChecklistItem",
    "Discontinuity",
    "Mark",
    "Matter",
    "MatterCatalogue",
    "MatterChange",
    "MatterCoverage",
    "QuickList",
    "QuickStep",
    "RecordingCoverage",
    "coverage_for_dir",
    "recording_coverage",
    "render_coverage",
]
