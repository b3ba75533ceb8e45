"""The desk's index rows behave the same on SQLite and PostgreSQL: kept proofs are kept once
and chain checkpoints together, a hold is taken once and released once, a deletion is
recorded once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.station.index import Index, KeptConsistency, KeptInclusion, PostgresIndex, SqliteIndex
from agent.station.proofkeep import consistency_chain
from tests.station.conftest import postgres  # noqa: F401 -- the session's PostgreSQL server


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    if request.param == "sqlite":
        idx: Index = SqliteIndex(tmp_path / "index.sqlite")
    else:  # one server for the session: each test uses ids of its own
        idx = PostgresIndex(request.getfixturevalue("postgres"))
    yield idx
    idx.close()


def _edge(dev: str, old: int, new: int) -> KeptConsistency:
    return KeptConsistency(dev, old, f"r{old}", new, f"r{new}", ("aGFzaA==",), f"n{old}",
                           f"n{new}")


def test_kept_proofs_round_trip_once_and_chain(index):
    """The first inclusion proof kept for a segment stays; consistency proofs are kept once
    each and lead from any kept checkpoint to the newest along the kept edges only."""
    dev = f"BC-{uuid.uuid4().hex[:8]}"
    first = KeptInclusion(dev, 7, '{"kind":"segment"}', 12, ("YQ==", "Yg=="), "note-13")
    index.keep_inclusion(first)
    index.keep_inclusion(KeptInclusion(dev, 7, "{}", 1, (), "other"))
    assert index.kept_inclusion(dev, 7) == first
    assert index.kept_inclusion(dev, 8) is None
    for old, new in ((4, 5), (5, 9), (4, 5), (2, 3)):
        index.keep_consistency(_edge(dev, old, new))
    kept = index.kept_consistency(dev)
    assert [(k.old_size, k.new_size) for k in kept] == [(2, 3), (4, 5), (5, 9)]
    chain = consistency_chain(kept, (4, "r4"), (9, "r9"))
    assert chain is not None and [(c.old_size, c.new_size) for c in chain] == [(4, 5), (5, 9)]
    assert consistency_chain(kept, (9, "r9"), (9, "r9")) == []
    assert consistency_chain(kept, (2, "r2"), (9, "r9")) is None
    assert consistency_chain(kept, (4, "forked"), (9, "r9")) is None


def test_holds_and_deletions_are_taken_once(index):
    rid, dev = uuid.uuid4().hex, f"BC-{uuid.uuid4().hex[:8]}"
    assert index.hold(rid, "case 1", "legal", "2026-11-30T00:00:00Z")
    assert not index.hold(rid, "case 2", "someone", "2026-11-30T00:00:01Z")
    assert index.holds()[rid] == ("case 1", "legal", "2026-11-30T00:00:00Z")
    assert index.release(rid)
    assert not index.release(rid)
    assert rid not in index.holds()
    assert index.record_deletion(dev, 3, "2027-01-01T00:00:00Z", "retention", "clerk")
    assert not index.record_deletion(dev, 3, "2027-01-02T00:00:00Z", "again", "x")
    assert index.deletions()[(dev, 3)] == ("2027-01-01T00:00:00Z", "retention", "clerk")
