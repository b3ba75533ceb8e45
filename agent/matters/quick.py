"""Choosing a matter with only the button: cycle through a short list, hear where you are.

Officers categorise recordings when it costs one gesture, so the device keeps a short,
agency-configured quick list (``[matters] quick_list``). Each triple press selects the next
matter of the list and the buzzer answers with N short beeps for the N-th entry, so the
officer knows the choice without looking at a screen. From a matter that is not on the list
(or none), the cycle starts at the first entry.

The list is validated against the catalogue when the agent starts: an unknown code there
would otherwise surface only when an officer cycles to it in the field.

Immutable; safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.matters.catalogue import MatterCatalogue

__all__ = ["QuickList", "QuickStep"]


@dataclass(frozen=True, slots=True)
class QuickStep:
    """The matter a cycle lands on, and its 1-based position (= number of beeps)."""

    code: str
    position: int
    of: int


class QuickList:
    """The codes a triple press cycles through, validated against a catalogue."""

    def __init__(self, codes: Sequence[str], catalogue: MatterCatalogue) -> None:
        self.codes = catalogue.quick_list_valid(codes)

    def __len__(self) -> int:
        return len(self.codes)

    def __bool__(self) -> bool:
        return bool(self.codes)

    def next_after(self, current: str | None) -> QuickStep | None:
        """The step after ``current`` (wrapping), the first if ``current`` is off the list,
        None when the list is empty (the gesture then does nothing)."""
        if not self.codes:
            return None
        norm = current.strip().upper() if current else None
        pos = (self.codes.index(norm) + 1) % len(self.codes) if norm in self.codes else 0
        return QuickStep(self.codes[pos], pos + 1, len(self.codes))

    def position(self, code: str | None) -> int | None:
        """The 1-based position of ``code`` on the list, or None."""
        norm = code.strip().upper() if code else None
        return self.codes.index(norm) + 1 if norm in self.codes else None
