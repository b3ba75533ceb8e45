"""``bodycam station list``'s C2PA column: a recording's Content Credentials in a word, with a
failed check shown before anything else (a clerk must not read "valid" over a bad one)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from agent.station.desk import RecordingView, SegmentView
from agent.station.deskcli import credential_summary
from agent.station.indexrows import SegmentRow


def _view(*states: str) -> RecordingView:
    segs = [SegmentView(cast(SegmentRow, None), Path("m"), Path("j"), None, "verified",
                        {"state": s}) for s in states]
    return RecordingView("BC-1", "ab" * 16, segs)


@pytest.mark.parametrize(("states", "word"), [
    (("valid", "valid"), "valid"),
    (("absent", "absent"), "absent"),
    (("valid", "absent", "valid"), "valid 2/3"),
    (("valid", "invalid", "absent"), "INVALID 1/3"),
    (("invalid", "invalid"), "INVALID 2/2"),
    ((), "absent"),
])
def test_the_column_says_what_a_clerk_must_know_first(states: tuple[str, ...], word: str) -> None:
    assert credential_summary(_view(*states)) == word
