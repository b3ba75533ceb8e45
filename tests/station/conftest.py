"""Fixtures of the station suite: one agency CA per session, a real station per module, a
real PostgreSQL per session (skipped, with the reason, only when ``initdb`` is absent)."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.station.enrolment import parse_enrolment
from agent.station.index import SqliteIndex
from agent.testing import wait_for
from tests.station.harness import SimRecorder, StationProcess, make_pki, station_config

DEVICES = [f"BC-ST-{i:02d}" for i in range(1, 41)]
ROGUE = "BC-ROGUE"
_free = itertools.count()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agency's test CA: server certificate and a client certificate per device id."""
    return make_pki(tmp_path_factory.mktemp("pki"), [*DEVICES, ROGUE])


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[StationProcess]:
    """A station with mutual TLS and default limits, shared by one test module."""
    root = tmp_path_factory.mktemp("station")
    cfg = station_config(root / "station.toml", pki, max_upload_bytes=8 << 20,
                         min_free_bytes=0)
    proc = StationProcess(cfg, root / "data").start()
    yield proc
    assert proc.stop() == 0, proc.stderr()


@pytest.fixture
def recorder(tmp_path: Path, pki: Path) -> Iterator[Callable[..., SimRecorder]]:
    """Make a simulated recorder with a fresh device id; enrol it in a station by default."""
    made: list[SimRecorder] = []

    def make(station: StationProcess | None = None, *, enrol: bool = True) -> SimRecorder:
        device_id = DEVICES[next(_free) % len(DEVICES)]
        rec = SimRecorder(tmp_path / device_id, device_id, pki)
        made.append(rec)
        if station is not None and enrol:
            enrol_direct(station.data_dir, rec)
        return rec

    yield make
    for rec in made:
        rec.close()


def enrol_direct(data_dir: Path, rec: SimRecorder) -> None:
    """Register a recorder in a station's SQLite index (the CLI path has its own test)."""
    index = SqliteIndex(data_dir / "index.sqlite")
    try:
        index.enrol(parse_enrolment(rec.enrolment()), "2026-11-30T00:00:00.000000Z")
    finally:
        index.close()


def _initdb() -> str | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob(
        "/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away PostgreSQL server on a free loopback port; its connection URL."""
    initdb = _initdb()
    if initdb is None:
        pytest.skip("PostgreSQL's initdb is not installed (scripts/setup.sh installs postgresql)")
    bindir = Path(os.path.realpath(initdb)).parent
    # Not under pytest's 0700 base: the server may run as another account (see below).
    root = Path(tempfile.mkdtemp(prefix="bodycam-station-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    user = pwd.getpwuid(os.getuid())
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own account
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        os.chown(root, user.pw_uid, user.pw_gid)
        os.chown(sock, user.pw_uid, user.pw_gid)
        prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                  "--clear-groups", "--"]
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "station",
                    "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
    port = _free_port()
    log = root / "pg.log"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                    "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start"], check=True, capture_output=True, timeout=60)
    url = f"postgresql://station@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        wait_for(lambda: _pg_up(psycopg, url), 20, "PostgreSQL to accept connections")
        yield url
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _pg_up(psycopg: object, url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()  # type: ignore[attr-defined]
    except Exception:
        return False
    return True
