"""``bodycam station``: configuration errors name the key (exit 2), enrolment refuses records
that disagree with themselves, ``info`` gives what a device must be told, the lab switch for
plain HTTP works and is loud."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from agent.station.api_client import StationClient, StationRefused
from tests.station.conftest import enrol_direct
from tests.station.harness import StationProcess, bodycam


def test_config_errors_name_the_key_and_exit_2(tmp_path):
    """Unknown key, wrong type, missing TLS files: exit 2 and the message names the key."""
    cases = {"[station]\nport = 'x'\n": "station.port",
             "[limits]\nmax_upload_bytes = 0\n": "limits.max_upload_bytes",
             "[station]\ncolour = 1\n": "station.colour",
             "[station]\ndatabase = 'mysql://x'\n": "station.database",
             "[station]\nport = 8443\n": "tls.cafile"}
    for text, key in cases.items():
        cfg = tmp_path / "s.toml"
        cfg.write_text(text)
        done = bodycam("station", "info", "--config", str(cfg), "--data-dir",
                       str(tmp_path / "d"), check=False)
        assert done.returncode == 2, (text, done.stderr)
        assert key in done.stderr, (text, done.stderr)
    done = bodycam("station", "run", "--data-dir", str(tmp_path / "d"), check=False)
    assert done.returncode == 2
    assert "--config" in done.stderr


def test_enrol_checks_the_record_and_never_replaces_a_key(tmp_path, recorder, pki):
    """A record whose fingerprint is not its key's is refused (2); a second record for the
    same id with another key is refused (1); the same record again is harmless."""
    rec = recorder()
    data = tmp_path / "station"
    good = rec.write_enrolment(tmp_path / "good.json")
    out = bodycam("station", "enrol", "--data-dir", str(data), str(good))
    assert f"{rec.device_id}: enrolled" in out.stdout
    assert "TLS key pinned" in out.stdout
    assert "already enrolled" in bodycam("station", "enrol", "--data-dir", str(data),
                                         str(good)).stdout
    doc = rec.enrolment()
    doc["fingerprint_sha256"] = "0" * 64
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    done = bodycam("station", "enrol", "--data-dir", str(data), str(bad), check=False)
    assert done.returncode == 2
    assert "fingerprint_sha256" in done.stderr
    from tests.station.harness import SimRecorder

    other = SimRecorder(tmp_path / "other", rec.device_id, pki)
    try:
        done = bodycam("station", "enrol", "--data-dir", str(data),
                       str(other.write_enrolment(tmp_path / "other.json")), check=False)
    finally:
        other.close()
    assert done.returncode == 1
    assert "already registered with other keys" in done.stderr


def test_info_tells_what_a_device_is_configured_with(station, pki):
    """info --json: station id, URL, the raw Ed25519 receipt key (base64, 32 bytes) and the
    SHA-256 of the CA certificate, as openssl computes it."""
    info = json.loads(bodycam("station", "info", "--config", str(station.config),
                              "--data-dir", str(station.data_dir), "--json").stdout)
    assert len(base64.b64decode(info["receipt_key"], validate=True)) == 32
    assert info["station_id"].startswith("st-")
    fp = subprocess.run(["openssl", "x509", "-in", str(pki / "ca.crt"), "-noout",
                         "-fingerprint", "-sha256"], capture_output=True, text=True,
                        check=True).stdout
    assert info["tls_ca_sha256"] == fp.split("=", 1)[1].strip().replace(":", "").lower()
    with StationClient(station.url, cafile=str(pki / "ca.crt"),
                       certfile=str(pki / "BC-ROGUE.crt"), keyfile=str(pki / "BC-ROGUE.key")) as c:
        assert c.station_info() == {"station_id": info["station_id"],
                                    "receipt_key": info["receipt_key"]}


def test_plain_http_only_with_the_lab_switch_and_loudly(tmp_path, recorder):
    """insecure_http = true serves plain HTTP (still only to enrolled devices) and says so at
    error-catching volume in its log."""
    import os

    cfg = tmp_path / "lab.toml"
    cfg.write_text("[station]\nlisten = '127.0.0.1'\nport = 0\ninsecure_http = true\n"
                   "[limits]\nmin_free_bytes = 0\n")
    st = StationProcess(cfg, tmp_path / "data").start()
    try:
        assert st.url.startswith("http://")
        assert "PLAIN HTTP, NO CLIENT IDENTITY" in st.stderr()
        rec = recorder()
        seg = rec.seal(os.urandom(1000))
        with StationClient(st.url) as c:
            with pytest.raises(StationRefused, match="unregistered"):
                c.create_upload(rec.device_id, 10)
            enrol_direct(st.data_dir, rec)
            upload = c.upload_file(rec.device_id, seg.media)
            r = c.finalise(rec.device_id, upload, manifest=seg.manifest, entry=seg.entry,
                           leaf_index=seg.index, log=rec.log)
        assert r.device_seq == seg.device_seq
    finally:
        assert st.stop() == 0


def test_list_check_finds_a_stored_file_changed_behind_the_stations_back(station, recorder):
    """list --check re-hashes the store against the index: an altered media file is
    ``changed``, a removed manifest ``missing-from-store``, and the exit status is 1."""
    import os

    rec = recorder(station)
    segs = [rec.seal(os.urandom(2000)) for _ in range(3)]
    with rec.client(station.url) as c:
        for s in segs:
            c.finalise(rec.device_id, c.upload_file(rec.device_id, s.media), manifest=s.manifest,
                       entry=s.entry, leaf_index=s.index, log=rec.log)
    args = ("station", "list", "--config", str(station.config), "--data-dir",
            str(station.data_dir), "--json", "--check")
    assert {s["state"] for s in json.loads(bodycam(*args).stdout)["segments"]} == {"verified"}
    store = station.data_dir / "store" / rec.device_id
    media = sorted(store.rglob("*.mp4.age"))
    media[0].chmod(0o644)
    media[0].write_bytes(b"x" + media[0].read_bytes()[1:])
    sorted(store.rglob("*.manifest.json"))[1].unlink()
    done = bodycam(*args, check=False)
    assert done.returncode == 1
    states = {s["path"].rsplit("/", 1)[1]: s["state"]
              for s in json.loads(done.stdout)["segments"] if s["device_id"] == rec.device_id}
    assert sorted(states.values()) == ["changed", "missing-from-store", "verified"]
    assert states[media[0].name] == "changed"
