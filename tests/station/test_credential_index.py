"""The index's record of segment C2PA credentials, on SQLite and on a real PostgreSQL: an
invalid state is replaced by a later valid one, a valid one is final, no row reads absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.station.index import CredentialRow, Index, PostgresIndex, SqliteIndex


def _rules(index: Index) -> None:
    assert index.credential("BC-1", 0) is None
    bad = index.record_credential(CredentialRow("BC-1", 0, "invalid", "garbage", "aa" * 32,
                                                4000, "2026-11-30T10:00:00.000000Z"))
    assert (bad.state, bad.reason) == ("invalid", "garbage")
    worse = index.record_credential(CredentialRow("BC-1", 0, "invalid", "forged", "bb" * 32,
                                                  4100, "2026-11-30T10:00:01.000000Z"))
    assert (worse.state, worse.reason, worse.bytes) == ("invalid", "forged", 4100)
    good = index.record_credential(CredentialRow("BC-1", 0, "valid", "checked", "cc" * 32,
                                                 3762, "2026-11-30T10:00:02.000000Z"))
    assert (good.state, good.sha256) == ("valid", "cc" * 32)
    kept = index.record_credential(CredentialRow("BC-1", 0, "invalid", "late garbage",
                                                 "dd" * 32, 10, "2026-11-30T10:00:03.000000Z"))
    assert kept == good  # a valid credential is final
    assert index.credentials() == {("BC-1", 0): good}
    assert good.to_json()["state"] == "valid" and index.credential("BC-1", 1) is None


def test_credential_states_on_sqlite(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.sqlite")
    try:
        _rules(index)
    finally:
        index.close()


def test_credential_states_on_postgresql(postgres: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    url = postgres.rsplit("/", 1)[0] + "/credentials"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS credentials")
        conn.execute("CREATE DATABASE credentials")
    index = PostgresIndex(url)
    try:
        _rules(index)
    finally:
        index.close()
