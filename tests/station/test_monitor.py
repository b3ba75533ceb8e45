"""The station's checkpoint monitor on a real mosquitto (the shipped TLS config and ACL): every
checkpoint a device publishes is checked against the held checkpoint; a rewritten history that
the station (as witness) cosigned before is refused and its alarm reaches MQTT, retained; two
station processes on one shared subscription split the checkpoints and raise one alarm per fork.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from agent.station.index import PostgresIndex
from agent.sync.link import MqttLink
from agent.sync.outbox import Outbox
from agent.sync.transport import TlsSettings
from agent.testing import wait_for
from agent.witness import ProofRejected, WitnessClient
from tests.station.conftest import DEVICES, enrol_direct
from tests.station.harness import (
    SimRecorder,
    StationProcess,
    bodycam,
    index_rows,
    station_config,
)
from tests.sync.mqtt_harness import (
    SCHEMA_DIR,
    Broker,
    back_office,
    free_port,
    sample_birth,
    tls_broker_conf,
)

pytestmark = pytest.mark.timeout(120)


def mosquitto(tmp_path: Path, pki: Path) -> Iterator[Broker]:
    """mosquitto with the shipped reference config (TLS, client certificates, ACL); the
    ``broker`` fixture of this module and of others that import it."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed")
    work = tmp_path / "broker"
    work.mkdir()
    port = free_port()
    b = Broker(tls_broker_conf(work, port, pki), "127.0.0.1", port, work)
    b.start()
    yield b
    b.kill()


broker = pytest.fixture(mosquitto, name="broker")


class DebugStation(StationProcess):
    """A station process logging at debug level (each checkpoint the monitor judged)."""

    def start(self, timeout: float = 30.0) -> StationProcess:
        import selectors
        import subprocess
        import sys
        import time

        from tests.station.harness import REPO

        self.data_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.log_path, "ab")  # noqa: SIM115 -- the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "station", "run", "--config", str(self.config),
             "--data-dir", str(self.data_dir), "--log-level", "debug"],
            stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        err.close()
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline, buf = time.monotonic() + timeout, b""
        while b"listening on " not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"station did not start: {self.stderr()}")
            if sel.select(left):
                buf += os.read(self.proc.stdout.fileno(), 4096)
        sel.close()
        self.url = buf.split(b"listening on ", 1)[1].split(b"\n", 1)[0].decode().strip()
        return self


def monitored_station(root: Path, pki: Path, broker: Broker, *, database: str = "",
                      client_id: str = "", store: Path | None = None) -> DebugStation:
    root.mkdir(parents=True, exist_ok=True)
    cfg = station_config(root / "station.toml", pki, database=database, store=store,
                         min_free_bytes=0)
    cfg.write_text(cfg.read_text() + "\n".join([
        "[mqtt]", "enabled = true", f'url = "mqtts://localhost:{broker.port}"',
        f'cafile = "{pki / "ca.crt"}"', f'certfile = "{pki / "backoffice.crt"}"',
        f'keyfile = "{pki / "backoffice.key"}"', 'share_group = "stations"',
        f'client_id = "{client_id}"', ""]))
    return DebugStation(cfg, root / "data")


class Device:
    """A simulated recorder publishing each checkpoint over MQTT with its device certificate,
    the way agent/sync/fleet_sync.py does (proof from the previous published checkpoint)."""

    def __init__(self, rec: SimRecorder, pki: Path, broker: Broker, tmp: Path) -> None:
        self.rec = rec
        self.published = 0
        self.link = MqttLink(device_id=rec.device_id, outbox=Outbox(tmp / "outbox.db"),
                             url=f"mqtts://localhost:{broker.port}",
                             tls=TlsSettings(pki / "ca.crt", pki / f"{rec.device_id}.crt",
                                             pki / f"{rec.device_id}.key"),
                             on_command=lambda _c: None,
                             birth=sample_birth(rec.key), reconnect=(0.1, 0.5))
        self.link.start()

    def append_and_publish(self, n: int = 1) -> None:
        for _ in range(n):
            self.rec.seal(os.urandom(32))
            self.publish()

    def publish(self, rotations: list[bytes] = ()) -> None:  # type: ignore[assignment]
        """The current checkpoint, with a proof from the last one published (and the log's
        key rotations, as fleet_sync sends them)."""
        size = self.rec.log.size
        proof = None
        if self.published:
            proof = {"old_size": self.published, "new_size": size, "hashes": [
                base64.b64encode(h).decode()
                for h in self.rec.log.consistency_proof(self.published, size)]}
        self.link.enqueue_checkpoint(self.rec.log.checkpoint().decode(), proof,
                                     [base64.b64encode(r).decode() for r in rotations])
        self.published = size

    def close(self) -> None:
        self.link.stop()


def held_size(data_dir: Path, device_id: str) -> int:
    rows = [r for r in index_rows(data_dir, "checkpoints") if r[0] == device_id]
    return int(rows[0][1]) if rows else 0


def alarm_schema() -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMA_DIR / "alarm.json").read_text()))


def bo_tls(pki: Path) -> tuple[Path, Path, Path]:
    return (pki / "ca.crt", pki / "backoffice.crt", pki / "backoffice.key")


def witness(station: StationProcess, pki: Path, device: str) -> WitnessClient:
    vkey = json.loads(bodycam("station", "info", "--config", str(station.config), "--data-dir",
                              str(station.data_dir), "--json").stdout)["witness_vkey"]
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{device}.crt"), str(pki / f"{device}.key"))
    return WitnessClient(station.url + "/witness", vkey, ssl_context=ctx)


def test_a_rewritten_history_is_refused_and_its_alarm_reaches_mqtt(
        tmp_path: Path, pki: Path, broker: Broker) -> None:
    """The monitor holds what the device publishes; the station cosigns it as witness; the
    device key then signs a new history: the witness refuses it (422), one alarm is recorded and
    published retained on bodycam/v1/<id>/alarm (schema-valid), and the same fork published
    over MQTT is recognised without a second alarm."""
    station = monitored_station(tmp_path / "st", pki, broker).start()
    rec = SimRecorder(tmp_path / "dev", DEVICES[30], pki)
    enrol_direct(station.data_dir, rec)
    device = Device(rec, pki, broker, tmp_path / "dev")
    twin = SimRecorder(tmp_path / "twin", rec.device_id, pki, key=rec.key)
    try:
        device.append_and_publish(3)
        wait_for(lambda: held_size(station.data_dir, rec.device_id) == 3, 20, "monitor to hold 3")
        w = witness(station, pki, rec.device_id)
        w.add_checkpoint(rec.log.checkpoint(), rec.log.consistency_proof)
        assert w.cosigned_size == 3

        for _ in range(4):
            twin.seal(os.urandom(32))
        with pytest.raises(ProofRejected):
            w.add_checkpoint(twin.log.checkpoint(), twin.log.consistency_proof)
        with back_office("localhost", broker.port, tls=bo_tls(pki),
                         topic=f"bodycam/v1/{rec.device_id}/alarm") as bo:
            bo.wait_for(lambda ms: len(ms) >= 1)
            (msg,) = bo.messages
        assert msg.retain  # a back office that connects later still sees it
        alarm = msg.json()
        alarm_schema().validate(alarm)
        assert (alarm["kind"], alarm["held_size"], alarm["checkpoint_size"]) == ("log-fork", 3, 4)

        forked = Device(twin, pki, broker, tmp_path / "twin")  # the rewritten log published
        try:
            forked.published = 3  # its proof from size 3 cannot verify against the held root
            forked.publish()
            wait_for(lambda: "log-fork of device" in station.stderr(), 20,
                     "the monitor to see the fork")
        finally:
            forked.close()
        alarms = [r for r in index_rows(station.data_dir, "alarms") if r[2] == rec.device_id]
        assert [a[3] for a in alarms] == ["log-fork"]
        assert held_size(station.data_dir, rec.device_id) == 3
    finally:
        device.close()
        twin.close()
        rec.close()
        assert station.stop() == 0, station.stderr()


def test_a_checkpoint_not_signed_by_the_enrolled_key_is_an_alarm(
        tmp_path: Path, pki: Path, broker: Broker) -> None:
    """A checkpoint published under the device's certificate but signed by another key (the
    certificate copied off the unit, the evidence key not) is alarmed and published."""
    station = monitored_station(tmp_path / "st", pki, broker).start()
    rec = SimRecorder(tmp_path / "dev", DEVICES[31], pki)
    enrol_direct(station.data_dir, rec)
    impostor = SimRecorder(tmp_path / "imp", rec.device_id, pki)
    device = Device(impostor, pki, broker, tmp_path / "imp")
    try:
        with back_office("localhost", broker.port, tls=bo_tls(pki),
                         topic=f"bodycam/v1/{rec.device_id}/alarm") as bo:
            bo.wait_subscribed()
            device.append_and_publish(1)
            bo.wait_for(lambda ms: len(ms) >= 1)
            alarm = bo.messages[0].json()
        alarm_schema().validate(alarm)
        assert alarm["kind"] == "checkpoint-signature" and alarm["held_size"] is None
        assert held_size(station.data_dir, rec.device_id) == 0
    finally:
        device.close()
        impostor.close()
        rec.close()
        assert station.stop() == 0, station.stderr()


def _judged(station: StationProcess, device_id: str) -> int:
    return station.stderr().count(f"checkpoint of {device_id}")


def test_a_rotated_devices_checkpoint_carries_its_rotation_and_is_held_without_alarm(
        tmp_path: Path, pki: Path, broker: Broker) -> None:
    """The device rotated its key before its uploader told the station: the checkpoint it
    publishes, signed by the new key, carries the log's rotation entry; the monitor takes it
    (endorsed by the enrolled key, in the custody log) and holds the checkpoint -- no alarm,
    where before a key rotation was alarmed as a forged checkpoint."""
    station = monitored_station(tmp_path / "st", pki, broker).start()
    rec = SimRecorder(tmp_path / "dev", DEVICES[34], pki)
    enrol_direct(station.data_dir, rec)
    device = Device(rec, pki, broker, tmp_path / "dev")
    try:
        device.append_and_publish(2)
        wait_for(lambda: held_size(station.data_dir, rec.device_id) == 2, 20, "2 held")
        entry = rec.rotate()
        rec.seal(os.urandom(32))  # signed, with the log's checkpoint, by the new key
        device.publish(rotations=[entry])
        wait_for(lambda: held_size(station.data_dir, rec.device_id) == rec.log.size, 20,
                 "the new key's checkpoint held")
        assert not [r for r in index_rows(station.data_dir, "alarms") if r[2] == rec.device_id]
        keys = [r for r in index_rows(station.data_dir, "device_keys") if r[0] == rec.device_id]
        assert len(keys) == 1 and rec.key.fingerprint in keys[0]
    finally:
        device.close()
        rec.close()
        assert station.stop() == 0, station.stderr()


def test_two_stations_share_the_checkpoints_and_raise_one_alarm_per_fork(
        tmp_path: Path, pki: Path, broker: Broker, postgres: str) -> None:
    """Two station processes (one PostgreSQL, one shared subscription) each judge a share of
    a device's 12 checkpoints; together they hold the newest. A twin log signed with the same
    key, published alongside, is alarmed exactly once."""
    device_id = DEVICES[32]
    pg = PostgresIndex(postgres)
    try:
        pg._exec("DELETE FROM checkpoints WHERE device_id = %s", (device_id,))
        pg._exec("DELETE FROM log_forks WHERE device_id = %s", (device_id,))
        pg._exec("DELETE FROM alarms WHERE device_id = %s", (device_id,))
    finally:
        pg.close()
    store = tmp_path / "store"
    stations = [monitored_station(tmp_path / name, pki, broker, database=postgres, store=store,
                                  client_id=f"monitor-{name}") for name in ("a", "b")]
    rec = SimRecorder(tmp_path / "dev", device_id, pki)
    bodycam("station", "enrol", str(rec.write_enrolment(tmp_path / "enrol.json")), "--config",
            str(stations[0].config), "--data-dir", str(stations[0].data_dir), check=False)
    for st in stations:
        st.start()
    device = Device(rec, pki, broker, tmp_path / "dev")
    twin = SimRecorder(tmp_path / "twin", device_id, pki, key=rec.key)
    forked: Device | None = None
    try:
        for _ in range(12):
            device.append_and_publish(1)
        wait_for(lambda: _pg_held(postgres, device_id) == rec.log.size, 30, "12 checkpoints held")
        # the newest can be held before an older one's judgement reaches its station's log
        wait_for(lambda: sum(_judged(st, device_id) for st in stations) >= 12, 30,
                 "every checkpoint judged")
        shares = [_judged(st, device_id) for st in stations]
        assert all(n > 0 for n in shares) and sum(shares) >= 12, shares

        forked = Device(twin, pki, broker, tmp_path / "twin")
        forked.append_and_publish(rec.log.size + 2)  # every size: behind, equal (fork), larger
        wait_for(lambda: sum(_judged(st, device_id) for st in stations) >= sum(shares) + len(
            range(rec.log.size + 2)), 30, "the twin's checkpoints judged")
    finally:
        if forked is not None:
            forked.close()
        device.close()
        twin.close()
        rec.close()
        for st in stations:
            st.stop()
    pg = PostgresIndex(postgres)
    try:
        alarms = [a for a in pg.alarms() if a[1] == device_id]
    finally:
        pg.close()
    assert [a[2] for a in alarms] == ["log-fork"], alarms


def _pg_held(url: str, device_id: str) -> int:
    pg = PostgresIndex(url)
    try:
        row = pg.checkpoint(device_id)
    finally:
        pg.close()
    return row.size if row else 0



def test_the_whole_scenario_witness_mqtt_alarm_and_offline_verify(
        tmp_path: Path, pki: Path, broker: Broker) -> None:
    """A real device folder is cosigned by the station; the device key then rewrites its
    history: the station refuses it as witness, the alarm reaches MQTT, and offline
    ``bodycam verify --witness <station witness_vkey>`` on the rewritten folder names the fork."""
    from agent.evidence.keys import DeviceKey
    from tests.station.test_witness_endpoint import record, station_info, submit_folder

    station = monitored_station(tmp_path / "st", pki, broker).start()
    device_id = DEVICES[33]
    data = tmp_path / "device"
    key = DeviceKey.generate(data / "keys" / "device.key")
    enrol_direct(station.data_dir, SimRecorder(tmp_path / "enrol", device_id, pki, key=key))
    try:
        record(data, device_id, 3)
        client = witness(station, pki, device_id)
        (data / "log" / "witnessed").mkdir()
        (data / "log" / "witnessed" / "station.note").write_bytes(submit_folder(client, data))
        (data / "log" / "entries.bin").unlink()  # what the device key alone can do
        (data / "log" / "checkpoint").unlink()
        shutil.rmtree(data / "recordings")
        record(data, device_id, 4)
        with back_office("localhost", broker.port, tls=bo_tls(pki),
                         topic=f"bodycam/v1/{device_id}/alarm") as bo:
            bo.wait_subscribed()
            with pytest.raises(ProofRejected):
                submit_folder(client, data)
            bo.wait_for(lambda ms: len(ms) >= 1)
            assert bo.messages[0].json()["kind"] == "log-fork"
        vkey = tmp_path / "station.vkey"
        vkey.write_text(station_info(station)["witness_vkey"])
        out = bodycam("verify", str(data), "--witness", str(vkey), "--json", check=False)
        assert out.returncode == 1
        assert "witnessed_fork" in {f["code"] for f in json.loads(out.stdout)["findings"]}
    finally:
        assert station.stop() == 0, station.stderr()
