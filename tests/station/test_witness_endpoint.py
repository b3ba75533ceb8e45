"""The station is the devices' C2SP witness (``POST /witness/add-checkpoint``): it cosigns a
registered device's checkpoints with its own key, shares one held checkpoint per device with
the upload path, refuses a rewritten history with one alarm, and a device folder whose history
was rewritten after the station cosigned it fails ``bodycam verify --witness`` offline."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.evidence.keys import DeviceKey
from agent.evidence.log import replay_entries
from agent.evidence.merkle import consistency_proof, leaf_hash
from agent.evidence.store import EvidenceStore
from agent.witness import (
    OldSizeConflict,
    ProofRejected,
    UnknownOrigin,
    VerifierKey,
    WitnessClient,
    add_cosignatures,
    verified_cosignatures,
)
from tests.evidence.evbench import write_recording
from tests.station.conftest import enrol_direct
from tests.station.harness import SimRecorder, StationProcess, bodycam, index_rows


def station_info(station: StationProcess) -> dict[str, Any]:
    out = bodycam("station", "info", "--config", str(station.config), "--data-dir",
                  str(station.data_dir), "--json").stdout
    return dict(json.loads(out))


def witness_client(station: StationProcess, pki: Path, device: str) -> WitnessClient:
    """The device's witness client, speaking TLS with its agency certificate."""
    info = station_info(station)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{device}.crt"), str(pki / f"{device}.key"))
    # The test config listens on port 0, so info's URL names the port asked for, not the one
    # the process got: the prefix is info's, the address the running station's.
    return WitnessClient(station.url + "/witness", info["witness_vkey"], ssl_context=ctx)


def folder_leaves(data_dir: Path) -> list[bytes]:
    return [leaf_hash(r) for r in replay_entries(
        (data_dir / "log" / "entries.bin").read_bytes()).records]


def submit_folder(client: WitnessClient, data_dir: Path) -> bytes:
    """Submit the folder's checkpoint as the device's witness pool does; the cosigned note."""
    text = (data_dir / "log" / "checkpoint").read_bytes()
    leaves = folder_leaves(data_dir)
    cosig = client.add_checkpoint(text, lambda old: consistency_proof(leaves, old) if old else [])
    return add_cosignatures(text, [cosig])


def record(data_dir: Path, device_id: str, segments: int) -> None:
    store = EvidenceStore(data_dir, key=DeviceKey.load(data_dir / "keys" / "device.key"),
                          recipients=[], encrypt=False, device_id=device_id)
    write_recording(store, segments=segments, size=2_000, recording_id=uuid.uuid4().hex)
    store.close()


def alarms(station: StationProcess, device_id: str) -> list[str]:
    return [r[3] for r in index_rows(station.data_dir, "alarms") if r[2] == device_id]


def test_info_names_the_witness_key_and_url(station: StationProcess) -> None:
    """``station info --json`` gives a cosignature/v1 vkey named after the station, and the
    submission URL; the key file is 0600 and stable across calls."""
    first, again = station_info(station), station_info(station)
    vkey = VerifierKey.parse(first["witness_vkey"])
    assert vkey.key_type == 0x04 and vkey.name == f"{first['station_id']}/witness"
    assert first["witness_vkey"] == again["witness_vkey"]
    assert first["witness_url"].endswith("/witness")
    assert (station.data_dir / "keys" / "witness.key").stat().st_mode & 0o777 == 0o600


def test_witness_and_upload_share_the_held_checkpoint(station: StationProcess, recorder: Any,
                                                      pki: Path) -> None:
    """A checkpoint the witness cosigned is the one ``GET /log`` answers; an upload proves
    from it and advances it; the witness then asks for a proof from the upload's size."""
    rec: SimRecorder = recorder(station)
    client = witness_client(station, pki, rec.device_id)
    for _ in range(2):
        rec.seal(os.urandom(100))
    text = rec.log.checkpoint()
    cosig = client.add_checkpoint(text, rec.log.consistency_proof)
    assert verified_cosignatures(add_cosignatures(text, [cosig]), [client.vkey])
    with rec.client(station.url) as c:
        assert c.log_state(rec.device_id).size == rec.log.size
        seg = rec.seal(os.urandom(300))
        c.finalise(rec.device_id, c.upload_file(rec.device_id, seg.media), manifest=seg.manifest,
                   entry=seg.entry, leaf_index=seg.index, log=rec.log)
        assert c.log_state(rec.device_id).size == rec.log.size
    rec.seal(os.urandom(100))
    fresh = witness_client(station, pki, rec.device_id)  # knows nothing: learns the size by 409
    fresh.add_checkpoint(rec.log.checkpoint(), rec.log.consistency_proof)
    assert fresh.cosigned_size == rec.log.size
    assert alarms(station, rec.device_id) == []


def test_an_unregistered_log_is_not_witnessed(station: StationProcess, recorder: Any,
                                              pki: Path) -> None:
    """A log of a device that is not enrolled is 404, whoever asks."""
    rec: SimRecorder = recorder(station, enrol=False)
    rec.seal(b"x" * 10)
    with pytest.raises(UnknownOrigin):
        witness_client(station, pki, rec.device_id).add_checkpoint(
            rec.log.checkpoint(), rec.log.consistency_proof)


def test_a_history_rewritten_after_the_station_cosigned_it(station: StationProcess, pki: Path,
                                                           recorder: Any, tmp_path: Path) -> None:
    """The device key re-signs a new history after the station cosigned three segments: the
    station refuses it (422) with exactly one alarm however often it is sent, and offline
    ``bodycam verify --witness <station vkey>`` on the rewritten folder names the fork."""
    rec: SimRecorder = recorder()
    data = tmp_path / "device"
    key = DeviceKey.generate(data / "keys" / "device.key")
    enrol_direct(station.data_dir, SimRecorder(tmp_path / "enrol", rec.device_id, pki, key=key))
    record(data, rec.device_id, 3)
    client = witness_client(station, pki, rec.device_id)
    note = submit_folder(client, data)
    (data / "log" / "witnessed").mkdir()
    (data / "log" / "witnessed" / "station.note").write_bytes(note)

    (data / "log" / "entries.bin").unlink()  # what the device key alone can do
    (data / "log" / "checkpoint").unlink()
    shutil.rmtree(data / "recordings")
    record(data, rec.device_id, 4)
    for _ in range(2):
        with pytest.raises(ProofRejected):
            submit_folder(client, data)
    assert alarms(station, rec.device_id) == ["log-fork"]
    assert "ALARM log-fork" in station.stderr()

    vkey_file = tmp_path / "station.vkey"
    vkey_file.write_text(station_info(station)["witness_vkey"])
    plain = bodycam("verify", str(data), check=False)
    assert plain.returncode == 0, plain.stdout + plain.stderr  # the device key alone: looks fine
    out = bodycam("verify", str(data), "--witness", str(vkey_file), "--json", check=False)
    assert out.returncode == 1
    codes = {f["code"] for f in json.loads(out.stdout)["findings"]}
    assert "witnessed_fork" in codes, out.stdout


def test_a_smaller_checkpoint_is_answered_with_the_held_size(station: StationProcess,
                                                             recorder: Any, pki: Path,
                                                             tmp_path: Path) -> None:
    """After size 3 was cosigned, a validly signed log of size 1 is told the held size (409)
    and recorded as an event — not yet provably a rollback, so no alarm."""
    rec: SimRecorder = recorder(station)
    for _ in range(3):
        rec.seal(os.urandom(50))
    witness_client(station, pki, rec.device_id).add_checkpoint(
        rec.log.checkpoint(), rec.log.consistency_proof)
    twin = SimRecorder(tmp_path / "twin", rec.device_id, pki, key=rec.key)
    try:
        twin.seal(os.urandom(50))
        with pytest.raises(OldSizeConflict) as info:
            witness_client(station, pki, rec.device_id).add_checkpoint(
                twin.log.checkpoint(), twin.log.consistency_proof)
    finally:
        twin.close()
    assert info.value.witness_size == 3
    assert alarms(station, rec.device_id) == []
    kinds = [r[3] for r in index_rows(station.data_dir, "events") if r[2] == rec.device_id]
    assert "checkpoint-behind" in kinds


@pytest.mark.parametrize("body", [b"", b"\xff\xfe garbage", b"old 1\n\nnot a note\n",
                                  b"old 99999999999999999999999\n\n", b"x" * 200_000],
                         ids=["empty", "binary", "no-note", "huge-size", "oversize"])
def test_malformed_submissions_are_refused_plainly(station: StationProcess, pki: Path,
                                                   body: bytes) -> None:
    """Whatever the body, the answer is a 4xx (never a 5xx or a traceback) and nothing is held."""
    import http.client
    from urllib.parse import urlsplit

    before = index_rows(station.data_dir, "checkpoints")
    parts = urlsplit(station.url)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "BC-ROGUE.crt"), str(pki / "BC-ROGUE.key"))
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=10)
    try:
        conn.request("POST", "/witness/add-checkpoint", body=body)
        resp = conn.getresponse()
        reply = resp.read()
    finally:
        conn.close()
    assert 400 <= resp.status < 500, (resp.status, reply)
    assert b"Traceback" not in reply
    assert index_rows(station.data_dir, "checkpoints") == before
