"""Key rotations and retired keys over MQTT, on a real mosquitto (the shipped TLS config and
ACL) and a real ``bodycam station run`` with its checkpoint monitor: a second successor of a
retired key, carried in a checkpoint message, is the same alarm as on the endpoint
(``retired-old-key``); a checkpoint the retired key signed over more than its span is alarmed
``checkpoint-retired-key`` and not held, while the rotated device's own checkpoints are."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from agent.evidence.canonical import canonical_json
from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.key_rotation import rotation_entry
from agent.evidence.keys import KeyRotation, rotation_message
from agent.evidence.log import origin_for
from agent.testing import wait_for
from tests.station.conftest import DEVICES, enrol_direct
from tests.station.harness import SimRecorder, index_rows
from tests.station.test_monitor import (
    Device,
    alarm_schema,
    bo_tls,
    held_size,
    monitored_station,
    mosquitto,
)
from tests.sync.mqtt_harness import Broker, back_office

broker = pytest.fixture(mosquitto, name="broker")


def _alarms(data_dir: Path, device_id: str) -> list[str]:
    return [r[3] for r in index_rows(data_dir, "alarms") if r[2] == device_id]


def test_a_second_successor_of_a_retired_key_over_mqtt_is_the_endpoints_alarm(
        tmp_path: Path, pki: Path, broker: Broker) -> None:
    """The device rotated A → B (taken from its checkpoint message); then a checkpoint signed
    by C arrives under the device's certificate carrying A's endorsement of C (whoever holds
    the retired A made it), twice: one ``retired-old-key`` alarm, C is not taken, the held
    checkpoint stays the device's."""
    station = monitored_station(tmp_path / "st", pki, broker).start()
    rec = SimRecorder(tmp_path / "dev", DEVICES[36], pki)
    enrol_direct(station.data_dir, rec)
    device = Device(rec, pki, broker, tmp_path / "dev")
    retired = rec.key
    thief = SimRecorder(tmp_path / "thief", rec.device_id, pki)
    forged = canonical_json(rotation_entry(KeyRotation(
        retired.public_bytes, thief.key.public_bytes,
        retired.sign(rotation_message(retired.public_bytes, thief.key.public_bytes))),
        utc="2026-11-30T09:00:00.000000Z"))
    intruder = Device(thief, pki, broker, tmp_path / "thief")
    try:
        device.append_and_publish(1)
        entry = rec.rotate()
        rec.seal(os.urandom(32))
        device.publish(rotations=[entry])
        wait_for(lambda: held_size(station.data_dir, rec.device_id) == rec.log.size, 20,
                 "the rotated device's checkpoint held")
        with back_office("localhost", broker.port, tls=bo_tls(pki),
                         topic=f"bodycam/v1/{rec.device_id}/alarm") as bo:
            bo.wait_subscribed()
            for _ in range(2):
                thief.seal(os.urandom(32))
                intruder.publish(rotations=[forged])
            wait_for(lambda: _alarms(station.data_dir, rec.device_id).count(
                "checkpoint-signature") == 2, 20, "both intruding checkpoints judged")
            bo.wait_for(lambda ms: any(m.json()["kind"] == "retired-old-key" for m in ms))
            fork = next(m.json() for m in bo.messages if m.json()["kind"] == "retired-old-key")
        alarm_schema().validate(fork)  # published as what it is, as on the endpoint
        assert _alarms(station.data_dir, rec.device_id).count("retired-old-key") == 1
        keys = [r[1] for r in index_rows(station.data_dir, "device_keys")
                if r[0] == rec.device_id]
        assert keys == [rec.key.fingerprint]
        assert held_size(station.data_dir, rec.device_id) == rec.log.size
    finally:
        device.close()
        intruder.close()
        thief.close()
        rec.close()
        assert station.stop() == 0, station.stderr()


def test_a_retired_keys_checkpoint_past_its_span_over_mqtt_is_alarmed_not_held(
        tmp_path: Path, pki: Path, broker: Broker) -> None:
    """The rotation at r is presented with its position; the retired key then signs the
    device's own (consistent) log of more than r + 1 entries and it is published: alarm
    ``checkpoint-retired-key`` (published as that, schema-valid), not held;
    the new key's checkpoint of the same log is held."""
    station = monitored_station(tmp_path / "st", pki, broker).start()
    rec = SimRecorder(tmp_path / "dev", DEVICES[37], pki)
    enrol_direct(station.data_dir, rec)
    device = Device(rec, pki, broker, tmp_path / "dev")
    try:
        device.append_and_publish(2)
        wait_for(lambda: held_size(station.data_dir, rec.device_id) == 2, 20, "2 held")
        old = rec.key
        entry = rec.rotate()
        r = rec.log.size - 1
        with rec.client(station.url) as c:
            assert c.present_rotation(rec.device_id, entry, leaf_index=r,
                                      log=rec.log)["log_index"] == r
        for _ in range(2):
            rec.seal(os.urandom(32))
        size = rec.log.size
        assert size > r + 1
        note = sign_checkpoint(Checkpoint(origin_for(rec.device_id), size, rec.log.root), old)
        proof = {"old_size": 2, "new_size": size, "hashes": [
            base64.b64encode(h).decode() for h in rec.log.consistency_proof(2, size)]}
        with back_office("localhost", broker.port, tls=bo_tls(pki),
                         topic=f"bodycam/v1/{rec.device_id}/alarm") as bo:
            bo.wait_subscribed()
            device.link.enqueue_checkpoint(note.decode(), proof, [])
            bo.wait_for(lambda ms: len(ms) >= 1)
            alarm = bo.messages[0].json()
        alarm_schema().validate(alarm)
        assert alarm["kind"] == "checkpoint-retired-key" and "retired" in alarm["detail"]
        assert _alarms(station.data_dir, rec.device_id) == ["checkpoint-retired-key"]
        assert held_size(station.data_dir, rec.device_id) == 2
        device.publish()  # the new key's checkpoint, proof from 2
        wait_for(lambda: held_size(station.data_dir, rec.device_id) == size, 20,
                 "the new key's checkpoint held")
        assert _alarms(station.data_dir, rec.device_id) == ["checkpoint-retired-key"]
    finally:
        device.close()
        rec.close()
        assert station.stop() == 0, station.stderr()

