"""One enforcement matter as the catalogue defines it: its category, its checklist, and the
entry the recorder keeps while the matter is active.

Plain immutable values, apart from :mod:`agent.matters.catalogue` which reads and checks the
file: what a matter *is* can be read (and used by the console, the desk and the recorder)
without the loader's validation rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Category", "ChecklistItem", "Matter"]


@dataclass(frozen=True, slots=True)
class Category:
    """A column-one group of the seed's table (行政处罚环节 ...)."""

    id: str
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One thing that must be on the record, which an officer marks when it happens."""

    code: str
    zh: str
    en: str
    required: bool


@dataclass(frozen=True, slots=True)
class Matter:
    """One enforcement matter of the recording list."""

    code: str
    category: str
    name_zh: str
    name_en: str
    carriers: tuple[str, ...]
    place_zh: str
    place_en: str
    record_zh: str
    record_en: str
    checklist: tuple[ChecklistItem, ...]
    #: Days a station keeps a recording under this matter (None: the catalogue's default).
    retention_days: int | None = None

    @property
    def required_items(self) -> tuple[str, ...]:
        """Codes of the checklist items every instance of this matter must show."""
        return tuple(i.code for i in self.checklist if i.required)

    def item(self, code: str) -> ChecklistItem | None:
        """The checklist item ``code``, or None."""
        return next((i for i in self.checklist if i.code == code), None)

    def entry(self) -> dict[str, Any]:
        """The dict the recorder keeps as the active matter (``checklist_codes`` is internal:
        it gates ``mark`` and is dropped from manifests; ``required_items`` stays, so a
        manifest alone says what its recording had to show)."""
        return {
            "code": self.code,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "category": self.category,
            "checklist_codes": [i.code for i in self.checklist],
            "required_items": list(self.required_items),
        }
