"""The console's rules as instant tests: passwords, sign-in limits, sessions, roles and the
commands an action becomes, and how MQTT messages fold into a unit."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent.matters.catalogue import MatterCatalogue
from agent.station.console.accounts import Accounts, LoginLimiter, Session
from agent.station.console.actions import Refusal, plan
from agent.station.console.fleetstate import SERIES_POINTS, TRACK_POINTS, FleetState
from agent.station.console.passwords import hash_password, verify_password
from agent.station.index import SqliteIndex
from hw.errors import ConfigError

DISPATCHER = Session("alice", "dispatcher", "csrf", time.time() + 60)
VIEWER = Session("bob", "viewer", "csrf", time.time() + 60)


@pytest.fixture(scope="module")
def catalogue() -> MatterCatalogue:
    return MatterCatalogue.load()


def test_password_hash_is_salted_scrypt_and_rejects_near_misses() -> None:
    """The same password hashes differently each time; only the exact password verifies; a
    corrupt or foreign hash is a plain mismatch, never an exception."""
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a != b and a.startswith("scrypt$15$8$1$")
    assert verify_password("correct horse battery", a)
    assert not verify_password("correct horse batterY", a)
    assert not verify_password("x", None)
    for bad in ("", "scrypt$", "md5$1$2$3$4$5", a.replace("$15$", "$40$"), a[:-4] + "!!!!"):
        assert not verify_password("correct horse battery", bad)


def test_limiter_slows_one_account_from_many_addresses_and_one_address_on_many() -> None:
    """Five failures lock the name for the window whatever the address; twenty lock the
    address whatever the name; the window slides; a success clears only the name."""
    lim = LoginLimiter(per_user=5, per_address=20, window_s=300)
    for i in range(5):
        assert lim.retry_after("alice", f"10.0.0.{i}", 100.0) == 0
        lim.failed("alice", f"10.0.0.{i}", 100.0)
    assert lim.retry_after("alice", "10.9.9.9", 101.0) == pytest.approx(299.0)
    assert lim.retry_after("carol", "10.9.9.9", 101.0) == 0
    assert lim.retry_after("alice", "10.9.9.9", 400.1) == 0
    for i in range(20):
        lim.failed(f"user{i}", "192.0.2.1", 500.0)
    assert lim.retry_after("dave", "192.0.2.1", 500.0) > 0
    lim.succeeded("user1")
    assert lim.retry_after("user1", "192.0.2.7", 500.0) == 0


def test_accounts_sessions_expire_and_end_on_password_or_role_change(tmp_path: Path) -> None:
    """A session works until it expires; a password or role change signs the user out
    everywhere; the index keeps the token's hash, never the token."""
    index = SqliteIndex(tmp_path / "index.sqlite")
    acc = Accounts(index, session_s=60)
    acc.add("alice", "long-enough-password", "dispatcher")
    with pytest.raises(ConfigError):
        acc.add("alice", "long-enough-password", "viewer")
    for name, pw, role in (("Alice!", "long-enough-password", "viewer"),
                           ("eve", "short", "viewer"), ("eve", "long-enough-password", "root")):
        with pytest.raises(ConfigError):
            acc.add(name, pw, role)
    assert acc.sign_in("alice", "wrong-password-here", "127.0.0.1") is None
    assert acc.sign_in("nobody", "long-enough-password", "127.0.0.1") is None
    token, session = acc.sign_in("alice", "long-enough-password", "127.0.0.1") or ("", None)
    assert session is not None and session.role == "dispatcher"
    assert acc.session(token) == session
    stored = index._rows("SELECT token_sha256 FROM console_sessions")
    assert token not in json.dumps(stored)
    acc.set_role("alice", "viewer")
    assert acc.session(token) is None
    token, _ = acc.sign_in("alice", "long-enough-password", "127.0.0.1") or ("", None)
    assert acc.session(token) is not None and acc.session(token).role == "viewer"  # type: ignore[union-attr]
    index.session_end(None, time.time() + 61)  # the clock passes the expiry
    assert acc.session(token) is None
    index.close()


def test_viewer_may_not_act_and_a_dispatchers_commands_name_the_user(
        catalogue: MatterCatalogue) -> None:
    """A viewer's every action is refused (403); a dispatcher's become commands whose issuer
    is console:<user>; stop needs a typed reason that reaches the evidence as a bookmark; a
    matter must be in the catalogue."""
    for action in ("start", "stop", "bookmark", "matter"):
        with pytest.raises(Refusal) as exc:
            plan(VIEWER, "BC-1", action, {"reason": "long enough", "label": "x", "code": "XCJC"},
                 catalogue)
        assert exc.value.status == 403
    cmds, detail = plan(DISPATCHER, "BC-1", "start", {}, catalogue)
    doc = json.loads(cmds[0].payload)
    assert (cmds[0].topic, doc["issuer"], doc["args"]) == ("bodycam/v1/BC-1/cmd/start",
                                                          "console:alice", {})
    for body in ({}, {"reason": "no"}, {"reason": "   \t  "}, {"reason": "a\nb c d e"},
                 {"reason": "x" * 161}):
        with pytest.raises(Refusal) as exc:
            plan(DISPATCHER, "BC-1", "stop", body, catalogue)
        assert exc.value.status == 400
    cmds, detail = plan(DISPATCHER, "BC-1", "stop", {"reason": "scene cleared"}, catalogue)
    assert [c.name for c in cmds] == ["stop"]  # the reason travels with the stop itself
    assert json.loads(cmds[0].payload)["args"] == {"reason": "scene cleared"}
    assert detail == "stop: scene cleared"
    code = catalogue.codes[0]
    cmds, _ = plan(DISPATCHER, "BC-1", "matter", {"code": code}, catalogue)
    assert json.loads(cmds[0].payload)["args"] == {"code": code}
    with pytest.raises(Refusal):
        plan(DISPATCHER, "BC-1", "matter", {"code": "NOT-A-CODE"}, catalogue)
    with pytest.raises(Refusal):
        plan(DISPATCHER, "../x", "start", {}, catalogue)
    with pytest.raises(Refusal):
        plan(DISPATCHER, "BC-1", "config_set", {}, catalogue)


def _tele(fleet: FleetState, now: float, **doc: object) -> None:
    fleet.apply("bodycam/v1/BC-1/telemetry", json.dumps({"device_id": "BC-1", **doc}).encode(),
                now)


def test_fleet_folds_messages_bounds_history_and_projects_time_left() -> None:
    """Telemetry gives the position, fix age and a series; state says who and whether it
    records; the newest of the two decides 'recording'; an older session's Last Will is
    ignored; history is bounded; without the device's own estimate, battery time left is the
    trend of the last half hour; junk is counted, not kept."""
    f = FleetState()
    t0 = 1_000_000.0
    for i in range(4000):
        _tele(f, t0 + 60 * i, battery_pct=max(0, 100 - i // 10), gps_lat_e7=312_304_160 + i,
              gps_lon_e7=1_214_737_010, gps_age_s=2, storage_free_bytes=10**10)
    unit = f.units["BC-1"]
    assert len(unit.track) == TRACK_POINTS and len(unit.series) == SERIES_POINTS
    now = t0 + 60 * 3999
    row = unit.row(now + 10)
    assert row["position"] == [pytest.approx(31.2304160 + 3999e-7), pytest.approx(121.473701)]
    assert row["gps_fix_age_s"] == pytest.approx(12)
    # 1 % every 10 minutes from 100 - 399 // 10 = 61 % would be 610 min; it is clamped at 0
    assert unit.row(now)["battery_left_s"] is None or unit.row(now)["battery_left_s"] >= 0
    g = FleetState()
    for i in range(31):
        _tele(g, t0 + 60 * i, battery_pct=80 - i // 10)
    left = g.units["BC-1"].row(t0 + 1800)["battery_left_s"]
    assert left == pytest.approx(77 * 600, rel=0.25)
    _tele(g, t0 + 1900, battery_pct=50, battery_runtime_s=1234)
    assert g.units["BC-1"].row(t0 + 1900)["battery_left_s"] == 1234

    g.apply("bodycam/v1/BC-1/state", b'{"state": "recording", "officer_id": "P-7"}', t0 + 2000)
    assert g.rows(t0)[0]["recording"] and g.rows(t0)[0]["officer_id"] == "P-7"
    _tele(g, t0 + 2001, recording=False)
    assert not g.rows(t0)[0]["recording"]
    g.apply("bodycam/v1/BC-1/status", b'{"state": "online", "session": 5}', t0)
    g.apply("bodycam/v1/BC-1/status", b'{"state": "offline", "session": 4}', t0)
    assert g.units["BC-1"].online is True
    before = g.malformed
    for topic, payload in (("bodycam/v1/BC-1/telemetry", b"\xff"),
                           ("bodycam/v1/BC-1/state", b"[1]"),
                           ("bodycam/v1/BC-1/alarm", b"x" * 70_000),
                           ("bodycam/v1/BC-1/telemetry", b'{"battery_pct": NaN}')):
        g.apply(topic, payload, t0)
    assert g.malformed == before + 3  # NaN parses as null: a value left out, not junk
    assert g.apply("other/BC-1/telemetry", b"{}", t0) is None
    assert g.apply("bodycam/v1/BC-1/cmd/start", b"{}", t0) is None
    g.apply("bodycam/v1/BC-1/alarm", b'{"kind": "log-fork", "detail": "<b>x</b>"}', t0)
    assert g.rows(t0)[0]["last_alarm"]["kind"] == "log-fork"


def test_console_configuration_names_the_missing_broker_and_bad_tiles() -> None:
    """An enabled console needs a broker (its own or [mqtt]'s); a tile URL must be http(s)
    with {z}/{x}/{y}; the lab bench's plaintext broker needs the explicit switch."""
    from agent.station.station_config import parse_station_config

    lab = {"station": {"insecure_http": True}}
    with pytest.raises(ConfigError, match=r"console\.broker"):
        parse_station_config({**lab, "console": {"enabled": True}})
    cfg = parse_station_config({**lab, "console": {"enabled": True},
                                "mqtt": {"url": "mqtt://127.0.0.1:1883",
                                         "allow_plaintext": True}})
    assert cfg.console.enabled and cfg.console.broker == ""
    with pytest.raises(ConfigError, match=r"console\.broker"):
        parse_station_config({**lab, "console": {"enabled": True,
                                                 "broker": "mqtt://127.0.0.1:1883"}})
    with pytest.raises(ConfigError, match=r"console\.tile_url"):
        parse_station_config({**lab, "console": {"enabled": True, "broker": "mqtt://h:1",
                                                 "allow_plaintext": True,
                                                 "tile_url": "file:///etc/passwd"}})


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_users_sessions_and_audit_on_both_index_backends(backend: str, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    """The console's tables behave the same in SQLite and PostgreSQL: a taken name is refused,
    a session is found by its token's hash until signed out, the audit reads back newest
    first and per unit."""
    from agent.station.index import PostgresIndex

    if backend == "sqlite":
        index: SqliteIndex | PostgresIndex = SqliteIndex(tmp_path / "index.sqlite")
    else:
        index = PostgresIndex(request.getfixturevalue("postgres"))
    name = f"u{time.time_ns() % 10**9}"
    try:
        assert index.user_add(name, "scrypt$…", "viewer", "2026-11-30T00:00:00Z")
        assert not index.user_add(name, "scrypt$…", "admin", "2026-11-30T00:00:00Z")
        assert index.user_update(name, "role", "dispatcher", "2026-11-30T00:00:01Z")
        assert not index.user_update(name + "x", "role", "admin", "2026-11-30T00:00:01Z")
        assert (name, "dispatcher") in [(u[0], u[2]) for u in index.users()]
        index.session_add("ab" * 32, name, "tok", address="127.0.0.1", created=1.0,
                          expires=time.time() + 60)
        assert index.session("ab" * 32, time.time())[:2] == (name, "tok")  # type: ignore[index]
        assert index.session_end("ab" * 32, time.time()) >= 1
        assert index.session("ab" * 32, time.time()) is None
        for i, dev in enumerate(("BC-A", "BC-B", "BC-A")):
            index.audit(f"2026-11-30T00:00:0{i}Z", name, "start", address="::1", device_id=dev,
                        detail=f"act {i}", outcome="sent")
        mine = [r for r in index.audit_log("BC-A") if r[1] == name]
        assert [r[5] for r in mine] == ["act 2", "act 0"]
    finally:
        index.close()
