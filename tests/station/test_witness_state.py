"""The station's witness state is the index's held checkpoint, with the witness contract on
both backends: compare-and-set wins once, never moves from a head it was not given, survives a
reopen; and two station processes on one PostgreSQL racing forks of one log cosign exactly one."""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.station.index import CheckpointRow, Index, PostgresIndex, SqliteIndex
from agent.station.witness_endpoint import HeldCheckpoints
from agent.witness import VerifierKey, WitnessClient, WitnessRefusal
from tests.station.harness import SimRecorder, StationProcess, bodycam, station_config

ORIGIN = "bodycam/v1/BC-ST-40"
A, B, C = (1, b"\x01" * 32), (2, b"\x02" * 32), (2, b"\x03" * 32)


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, or the session's PostgreSQL with this test's device row cleared."""
    if request.param == "sqlite":
        return str(tmp_path / "index.sqlite")
    url = str(request.getfixturevalue("postgres"))
    pg = PostgresIndex(url)
    try:
        pg._exec("DELETE FROM checkpoints WHERE device_id = 'BC-ST-40'")
        pg._exec("DELETE FROM log_forks WHERE device_id = 'BC-ST-40'")
    finally:
        pg.close()
    return url


def _open(url: str) -> Index:
    return PostgresIndex(url) if url.startswith("postgresql") else SqliteIndex(Path(url))


@pytest.fixture
def indexes(index_url: str) -> Iterator[tuple[Index, Index]]:
    """Two connections to one index, as two station processes hold."""
    one, two = _open(index_url), _open(index_url)
    yield one, two
    one.close()
    two.close()


def test_compare_and_set_is_the_witness_contract(indexes: tuple[Index, Index]) -> None:
    """First write from nothing wins once; a write from a head that is no longer held fails
    and changes nothing; the other connection sees every committed head."""
    one, two = indexes
    s1, s2 = HeldCheckpoints(one, b"note A\n"), HeldCheckpoints(two, b"note B\n")
    assert s1.get(ORIGIN) is None
    assert s1.compare_and_set(ORIGIN, None, A)
    assert not s2.compare_and_set(ORIGIN, None, B)
    assert s2.get(ORIGIN) == A
    assert s2.compare_and_set(ORIGIN, A, B)
    assert not s1.compare_and_set(ORIGIN, A, C)  # lost the race: C is never held
    assert s1.get(ORIGIN) == B
    held = one.checkpoint("BC-ST-40")
    assert held is not None and held.note == "note B\n"
    assert not s1.compare_and_set("bodycam/v1/../x", None, A)  # not a device origin


def test_the_held_head_survives_a_reopen(index_url: str) -> None:
    """What a witness cosigned is durable: a new process reads it back."""
    first = _open(index_url)
    assert HeldCheckpoints(first, b"n\n").compare_and_set(ORIGIN, None, A)
    first.close()
    again = _open(index_url)
    try:
        assert HeldCheckpoints(again, b"").get(ORIGIN) == A
        assert again.fork_alarm("t", "BC-ST-40", CheckpointRow(1, "AQ==", ""), kind="log-fork",
                                detail="x")
        assert not again.fork_alarm("t", "BC-ST-40", CheckpointRow(1, "AQ==", ""),
                                    kind="log-fork", detail="y")
    finally:
        again.close()


def _client(station: StationProcess, pki: Path, device: str, vkey: str) -> WitnessClient:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{device}.crt"), str(pki / f"{device}.key"))
    return WitnessClient(station.url + "/witness", vkey, ssl_context=ctx)


def test_two_stations_on_one_postgresql_cosign_one_of_racing_forks(
        postgres: str, pki: Path, tmp_path: Path) -> None:
    """Eight signed logs of one device key, all of size 2 with different roots, sent at once
    to two station processes sharing PostgreSQL: exactly one is cosigned, the others are
    refused (409 or 422), and the alarm for the fork is raised once."""
    device = "BC-ST-39"
    store = tmp_path / "store"
    stations = []
    for name in ("a", "b"):
        cfg = station_config(tmp_path / f"{name}.toml", pki, database=postgres, store=store)
        stations.append(StationProcess(cfg, tmp_path / name))
    base = SimRecorder(tmp_path / "log0", device, pki)
    forks = [base, *[SimRecorder(tmp_path / f"log{i}", device, pki, key=base.key) for i in range(1, 8)]]
    try:
        enrol = base.write_enrolment(tmp_path / "enrol.json")
        bodycam("station", "enrol", str(enrol), "--config", str(stations[0].config),
                "--data-dir", str(stations[0].data_dir))
        for st in stations:
            st.start()
        vkey = next(line.split(": ", 1)[1] for line in bodycam(
            "station", "info", "--config", str(stations[0].config), "--data-dir",
            str(stations[0].data_dir)).stdout.splitlines() if line.startswith("witness_vkey"))
        # Separate data dirs: two witness keys over one shared state.
        vkey_b = next(line.split(": ", 1)[1] for line in bodycam(
            "station", "info", "--config", str(stations[1].config), "--data-dir",
            str(stations[1].data_dir)).stdout.splitlines() if line.startswith("witness_vkey"))
        for rec in forks:
            for _ in range(2):
                rec.seal(os.urandom(64))
        results: list[Any] = [None] * len(forks)
        go = threading.Barrier(len(forks))

        def send(i: int) -> None:
            st = stations[i % 2]
            client = _client(st, pki, device, vkey if i % 2 == 0 else vkey_b)
            go.wait()
            try:
                results[i] = client.add_checkpoint(forks[i].log.checkpoint(),
                                                   forks[i].log.consistency_proof)
            except WitnessRefusal as exc:
                results[i] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(forks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        cosigned = [r for r in results if not isinstance(r, WitnessRefusal)]
        assert len(cosigned) == 1, results
        assert all(getattr(r, "status", None) in (409, 422) for r in results if r not in cosigned)
        pg = PostgresIndex(postgres)
        try:
            assert [a[2] for a in pg.alarms() if a[1] == device].count("log-fork") == 1
            held = pg.checkpoint(device)
            assert held is not None and held.size == 2
        finally:
            pg.close()
    finally:
        for st in stations:
            if st.proc is not None:
                st.stop()
        for rec in forks:
            rec.close()
    assert VerifierKey.parse(vkey)
