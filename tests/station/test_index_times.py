"""Times in the station index keep their precision in PostgreSQL too.

PostgreSQL's REAL is a 4-byte float: at today's epoch its steps are 128 s apart, so a console
session or an upload stored with REAL would expire up to a minute off. The index stores times
as DOUBLE PRECISION, and widens an index made with REAL when it opens it.
"""

from __future__ import annotations

import time
import uuid

import pytest

from agent.station.index import PostgresIndex


def test_a_session_expires_to_the_second_in_postgresql(postgres: str) -> None:
    """A session that expires in 1.5 s is found 1 s later and gone 2 s later."""
    index = PostgresIndex(postgres)
    try:
        token = uuid.uuid4().hex * 2
        now = time.time()
        index.session_add(token, "someone", "csrf", address="127.0.0.1", created=now,
                          expires=now + 1.5)
        assert index.session(token, now + 1.0) is not None
        assert index.session(token, now + 2.0) is None
    finally:
        index.close()


def test_an_index_made_with_real_times_is_widened_when_opened(postgres: str) -> None:
    """Tables made before times were DOUBLE PRECISION are altered in place, once."""
    psycopg = pytest.importorskip("psycopg")
    name = f"widen_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as old:
        old.execute("CREATE TABLE console_sessions (token_sha256 TEXT PRIMARY KEY, "
                    "username TEXT NOT NULL, csrf TEXT NOT NULL, address TEXT NOT NULL, "
                    "created REAL NOT NULL, expires REAL NOT NULL)")
        old.execute("CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, "
                    "length BIGINT, metadata TEXT NOT NULL, state TEXT NOT NULL, "
                    "created REAL NOT NULL, updated REAL NOT NULL)")
    PostgresIndex(url).close()
    with psycopg.connect(url, autocommit=True) as check:
        kinds = {(t, c): k for t, c, k in check.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('console_sessions', 'uploads') AND column_name IN "
            "('created', 'expires', 'updated')").fetchall()}
    assert set(kinds.values()) == {"double precision"}, kinds
    assert len(kinds) == 4
