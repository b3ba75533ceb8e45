"""Group activation's rule and its message handling, without a broker (instant)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.station.group import ISSUER, Fix, GroupActivation, Unit, command_id, haversine_m, pick
from agent.station.station_config import GroupConfig, GroupTeam, parse_station_config
from agent.sync.command_messages import iso_utc, parse_command
from hw.errors import ConfigError

RULE = {"radius_m": 100.0, "max_fix_age_s": 30.0, "cooldown_s": 60.0}
HERE = (312_304_160, 1_214_737_010)  # 31.230416 N, 121.473701 E
NORTH_50M = (HERE[0] + 4_497, HERE[1])  # 1e-7 degree of latitude is ~1.112 cm
NORTH_500M = (HERE[0] + 44_966, HERE[1])


def unit(pos: tuple[int, int] | None, *, age: float = 1.0, at: float = 0.0,
         recording: bool = False, commanded: float | None = None) -> Unit:
    return Unit(Fix(pos[0], pos[1], age, at) if pos else None, recording, commanded)


def test_haversine_matches_known_distances():
    assert haversine_m(*HERE, *HERE) == 0.0
    assert haversine_m(*HERE, *NORTH_50M) == pytest.approx(50.0, abs=0.1)
    assert haversine_m(*HERE, *NORTH_500M) == pytest.approx(500.0, abs=0.5)
    # one degree of longitude on the equator
    assert haversine_m(0, 0, 0, 10_000_000) == pytest.approx(111_195, rel=1e-3)


def test_only_fresh_idle_near_team_mates_are_started():
    units = {"A": unit(HERE), "B": unit(NORTH_50M), "C": unit(NORTH_500M),
             "D": unit(NORTH_50M, recording=True), "E": unit(NORTH_50M, age=40.0),
             "F": unit(None), "G": unit(NORTH_50M, commanded=5.0), "X": unit(HERE)}
    teams = {"alpha": ["A", "B", "C", "D", "E", "F", "G"], "other": ["X"]}
    assert pick("A", units, teams, 10.0, **RULE) == ["B"]
    # the cooldown ends; a fix ages while nothing new arrives
    assert pick("A", units, teams, 70.0, **RULE) == []  # A's own fix is 71 s old now
    units["A"] = unit(HERE, at=70.0)
    units["G"] = unit(NORTH_50M, at=65.0, commanded=5.0)
    assert pick("A", units, teams, 70.0, **RULE) == ["G"]  # B's fix aged out, G's cooldown over


def test_no_position_no_team_or_a_start_the_station_caused_activates_nobody():
    units = {"A": unit(HERE), "B": unit(HERE)}
    assert pick("A", units, {"t": ["B", "C"]}, 0.0, **RULE) == []  # A in no team
    assert pick("A", {"A": unit(None), "B": unit(HERE)}, {"t": ["A", "B"]}, 0.0, **RULE) == []
    units["A"] = unit(HERE, commanded=0.0)  # A's start was the station's: no cascade
    assert pick("A", units, {"t": ["A", "B"]}, 1.0, **RULE) == []
    assert pick("Z", units, {"t": ["A", "B"]}, 1.0, **RULE) == []  # never heard of


pos = st.tuples(st.integers(-899_999_999, 899_999_999), st.integers(-1_799_999_999, 1_799_999_999))


@given(st.dictionaries(st.sampled_from("ABCDEFGH"), st.tuples(
    st.one_of(st.none(), pos), st.floats(0, 100), st.booleans(),
    st.one_of(st.none(), st.floats(0, 200)))), st.lists(st.sets(st.sampled_from("ABCDEFGH")),
                                                         max_size=3),
       st.sampled_from("ABCDEFGH"), st.floats(0, 200))
def test_the_rule_never_picks_the_origin_a_recorder_or_a_far_or_stale_unit(raw, teams, origin,
                                                                            now):
    units = {d: unit(p, age=a, recording=r, commanded=c) for d, (p, a, r, c) in raw.items()}
    named = {str(i): sorted(t) for i, t in enumerate(teams)}
    picked = pick(origin, units, named, now, **RULE)
    assert len(picked) == len(set(picked))
    me = units.get(origin)
    for d in picked:
        u = units[d]
        assert d != origin and not u.recording and u.fix is not None and me is not None
        assert me.fix is not None
        assert any(origin in t and d in t for t in teams)
        assert u.fix.age_at(now) <= RULE["max_fix_age_s"]
        assert haversine_m(me.fix.lat_e7, me.fix.lon_e7, u.fix.lat_e7, u.fix.lon_e7) <= 100.0
        assert u.commanded_at is None or now - u.commanded_at >= RULE["cooldown_s"]


def test_command_id_names_the_cause_and_is_a_valid_command_id():
    cid = command_id("BC-0001", "0123456789abcdef0123456789abcdef")
    assert re.fullmatch(r"grp\.BC-0001\.0123456789ab\.[0-9a-f]{6}", cid)
    assert len(command_id("x" * 64, "y" * 40)) <= 64


def test_messages_drive_the_view_and_commands_pass_the_devices_strict_parser():
    sent: list[tuple[str, bytes]] = []
    recorded: list[tuple[str, str, str, str]] = []
    now = [100.0]
    cfg = GroupConfig(enabled=True, radius_m=100, max_fix_age_s=30, cooldown_s=60,
                      teams=[GroupTeam("alpha", ["A", "B", "C"])])
    g = GroupActivation(cfg, lambda t, p: sent.append((t, p)),
                        lambda *r: recorded.append(r), clock=lambda: now[0])

    def tele(dev: str, p: tuple[int, int], **kw: object) -> None:
        doc = {"gps_fix": True, "gps_lat_e7": p[0], "gps_lon_e7": p[1], "gps_age_s": 1, **kw}
        g.message(f"bodycam/v1/{dev}/telemetry", json.dumps(doc).encode())

    tele("A", HERE)
    tele("B", NORTH_50M, recording=False)
    tele("C", NORTH_500M)
    for junk in (b"\xff", b"[]", b"{", b"x" * 70_000):  # adversarial input changes nothing
        assert g.message("bodycam/v1/B/telemetry", junk) == []
    assert g.message("bodycam/v1/bad id/event", b"{}") == []
    queued = iso_utc(datetime.now(UTC))
    event = {"device_id": "A", "seq": 1, "queued_at": queued,
             "event": {"type": "recording_started", "recording_id": "r" * 32}}
    for late in ("2020-01-01T00:00:00Z", "2026-11-30T03:00:00", "yesterday", None):
        old = {**event, "queued_at": late}  # delivered late from an outbox: history
        assert g.message("bodycam/v1/A/event", json.dumps(old).encode()) == []
    assert not sent
    assert g.message("bodycam/v1/A/event", json.dumps(event).encode()) == ["B"]
    [(topic, payload)] = sent
    assert topic == "bodycam/v1/B/cmd/start"
    req = parse_command("start", payload, now=datetime.now(UTC))
    assert not hasattr(req, "reason"), req
    assert req.issuer == ISSUER and req.id.startswith("grp.A.rrrrrrrrrrrr.")  # type: ignore[union-attr]
    assert [(r[1], r[2]) for r in recorded] == [("B", "group-activation"),
                                               ("A", "group-activation-caused")]
    assert "A started recording " + "r" * 32 in recorded[0][3]
    # B's own start (the station's) cascades to nobody; a second start of A within the
    # cooldown does not command B again
    assert g.message("bodycam/v1/B/event", json.dumps(event).encode()) == []
    g.message("bodycam/v1/B/state", b'{"state": "standby"}')
    assert g.message("bodycam/v1/A/event", json.dumps(event).encode()) == []
    now[0] = 200.0  # past the cooldown, but every fix is stale now
    assert g.message("bodycam/v1/A/event", json.dumps(event).encode()) == []
    tele("A", HERE)
    tele("B", NORTH_50M)
    assert g.message("bodycam/v1/A/event", json.dumps(event).encode()) == ["B"]


BASE = {"station": {"insecure_http": True},
        "mqtt": {"enabled": True, "url": "mqtt://127.0.0.1:1", "allow_plaintext": True}}


def test_group_config_is_off_by_default_and_checked():
    assert parse_station_config(BASE).group == GroupConfig()
    assert not GroupConfig().enabled
    cfg = parse_station_config({**BASE, "group": {
        "enabled": True, "radius_m": 50, "teams": [{"name": "alpha", "devices": ["A", "B"]}]}})
    assert cfg.group.teams == [GroupTeam("alpha", ["A", "B"])] and cfg.group.radius_m == 50.0
    for bad, key in (({"teams": [{"name": "a"}]}, "group.teams[0]"),
                     ({"teams": [{"name": "a", "devices": ["bad id"]}]}, "devices[0]"),
                     ({"teams": [{"name": "a", "devices": ["A"], "x": 1}]}, "group.teams[0].x"),
                     ({"teams": {"a": 1}}, "group.teams"), ({"radius_m": 0}, "group.radius_m"),
                     ({"cooldown": 1}, "group.cooldown")):
        with pytest.raises(ConfigError, match=re.escape(key)):
            parse_station_config({**BASE, "group": bad})
    with pytest.raises(ConfigError, match=r"group\.enabled"):
        parse_station_config({"station": {"insecure_http": True}, "group": {"enabled": True}})
