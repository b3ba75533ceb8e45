"""Bad input gets a clear refusal and loses nothing: wrong identity, unregistered device,
forged or mismatched evidence, path traversal, tus misuse, client deletion."""

from __future__ import annotations

import json
import os

import pytest

from agent.evidence.keys import DeviceKey
from agent.station.api_client import StationRefused, StationUnreachable
from tests.station.conftest import ROGUE
from tests.station.harness import index_rows, tls_socket


def _refused(fn, *args, **kw) -> StationRefused:
    with pytest.raises(StationRefused) as info:
        fn(*args, **kw)
    return info.value


def _events(station, device_id: str) -> list[str]:
    return [r[3] for r in index_rows(station.data_dir, "events") if r[2] == device_id]


def test_certificate_of_another_device_is_refused(station, recorder):
    """Device A's certificate cannot upload as device B: 403 identity-mismatch, recorded."""
    a, b = recorder(station), recorder(station)
    with a.client(station.url) as c:
        exc = _refused(c.create_upload, b.device_id, 10)
    assert (exc.status, exc.code) == (403, "identity-mismatch")
    assert "identity-mismatch" in _events(station, b.device_id)


def test_unregistered_device_is_refused(station, recorder, pki):
    """A certificate from the agency CA alone is not enough: no enrolment, 403 unregistered."""
    rec = recorder(station, enrol=False)
    with rec.client(station.url) as c:
        exc = _refused(c.create_upload, rec.device_id, 10)
    assert (exc.status, exc.code) == (403, "unregistered")
    assert "unregistered" in _events(station, rec.device_id)
    with rec.client(station.url, device=ROGUE) as c:
        assert _refused(c.log_state, ROGUE).code == "unregistered"


def test_client_without_certificate_cannot_connect(station, pki):
    """Mutual TLS: without a client certificate the handshake fails; nothing is served."""
    from agent.station.api_client import StationClient

    with StationClient(station.url, cafile=str(pki / "ca.crt")) as c, \
            pytest.raises(StationUnreachable):
        c.station_info()


def test_tls_key_other_than_the_enrolled_one_is_refused(station, recorder, tmp_path, pki):
    """A certificate the CA issued for the right name but another key: 403 tls-key-mismatch."""
    import subprocess

    rec = recorder(station)
    other = tmp_path / "other"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{other}.key", "-subj",
                    f"/CN={rec.device_id}", "-out", f"{other}.csr"], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", f"{other}.csr", "-CA", str(pki / "ca.crt"),
                    "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "1",
                    "-out", f"{other}.crt"], check=True, capture_output=True)
    from agent.station.api_client import StationClient

    with StationClient(station.url, cafile=str(pki / "ca.crt"), certfile=f"{other}.crt",
                       keyfile=f"{other}.key") as c:
        exc = _refused(c.create_upload, rec.device_id, 10)
    assert (exc.status, exc.code) == (403, "tls-key-mismatch")


def _upload_and_finalise(c, rec, seg):
    upload = c.upload_file(rec.device_id, seg.media)
    return upload, lambda **kw: c.finalise(rec.device_id, upload, **{
        "manifest": seg.manifest, "entry": seg.entry, "leaf_index": seg.index, "log": rec.log,
        **kw})


def test_manifest_signed_by_another_key_is_refused(station, recorder):
    """A manifest not signed by the enrolled key: 422 bad-manifest, no receipt, nothing stored,
    the upload kept (the device can still finalise it correctly)."""
    rec = recorder(station)
    seg = rec.seal(os.urandom(5000), key=DeviceKey.generate(rec.root / "k2" / "device.key"))
    with rec.client(station.url) as c:
        upload, finalise = _upload_and_finalise(c, rec, seg)
        exc = _refused(finalise)
        assert (exc.status, exc.code) == (422, "bad-manifest")
        assert c.receipt(rec.device_id, seg.device_seq) is None
        assert c.status(upload).offset == 5000
    assert not (station.data_dir / "store" / rec.device_id).exists()


def test_bytes_that_are_not_the_manifests_are_refused(station, recorder):
    """Ciphertext whose SHA-256 or size differs from the signed manifest: 422 cipher-mismatch."""
    rec = recorder(station)
    seg = rec.seal(os.urandom(4000))
    seg.media.write_bytes(os.urandom(4000))  # same size, other bytes
    short = rec.seal(os.urandom(4000))
    short.media.write_bytes(short.cipher[:3000])
    with rec.client(station.url) as c:
        for s in (seg, short):
            _upload, finalise = _upload_and_finalise(c, rec, s)
            exc = _refused(finalise)
            assert (exc.status, exc.code) == (422, "cipher-mismatch")
            assert c.receipt(rec.device_id, s.device_seq) is None


def test_entry_of_another_segment_is_refused(station, recorder):
    """The log entry must be the one of exactly this manifest: 422 entry-mismatch."""
    rec = recorder(station)
    one, two = rec.seal(os.urandom(1000)), rec.seal(os.urandom(1000))
    with rec.client(station.url) as c:
        _upload, finalise = _upload_and_finalise(c, rec, one)
        exc = _refused(finalise, entry=two.entry, leaf_index=two.index)
        assert (exc.status, exc.code) == (422, "entry-mismatch")
        exc = _refused(finalise, leaf_index=two.index)  # right entry, wrong place in the log
        assert (exc.status, exc.code) == (422, "not-in-log")


def test_media_name_with_path_traversal_is_refused(station, recorder):
    """A signed manifest naming ``../`` is refused by shape (422); nothing is written outside
    the store, nor anywhere in it."""
    rec = recorder(station)
    seg = rec.seal(os.urandom(100), name="x.mp4.age")
    evil = json.loads(seg.manifest)
    evil["manifest"]["file"]["name"] = "../../../../tmp/evil.mp4.age"
    from agent.evidence.manifest import sign_manifest

    forged = sign_manifest(evil["manifest"], rec.key).envelope()
    with rec.client(station.url) as c:
        _upload, finalise = _upload_and_finalise(c, rec, seg)
        exc = _refused(finalise, manifest=forged)
        assert exc.status == 422
    assert not (station.data_dir / "store" / rec.device_id).exists()


@pytest.mark.parametrize("path", [
    "/v1/devices/..%2F..%2Fetc/log",
    "/v1/devices/BC-ST-01/uploads/..%2F..%2Findex.sqlite",
    "/v1/devices/BC-ST-01/uploads/../../../index.sqlite",
])
def test_traversal_in_urls_finds_nothing(station, recorder, pki, path):
    """Device and upload ids are checked before they name anything: 4xx, never a file."""
    rec = recorder(station)
    s = tls_socket(station.url, pki, rec.device_id)
    method = "GET" if path.endswith("/log") else "HEAD"
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
              "Connection: close\r\n\r\n".encode())
    status = int(s.recv(100).split(b" ")[1])
    s.close()
    assert status in (403, 404)


def test_tus_misuse_gets_tus_answers(station, recorder):
    """Wrong version 412, wrong offset 409, bad checksum 460 (body discarded), DELETE 403."""
    rec = recorder(station)
    with rec.client(station.url) as c:
        upload = c.create_upload(rec.device_id, 100)
        c.patch(upload, 0, b"a" * 40)
        exc = _refused(c.patch, upload, 10, b"b" * 10)
        assert (exc.status, exc.code, exc.headers["upload-offset"]) == (409, "offset-mismatch",
                                                                          "40")
        conn = c._connection()
        conn.request("PATCH", upload, body=b"c" * 10, headers={
            "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "40", "Upload-Checksum": "sha256 " + "A" * 43 + "="})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 460
        assert c.status(upload).offset == 40
        conn.request("DELETE", upload, headers={"Tus-Resumable": "1.0.0"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 403
        conn.request("HEAD", upload, headers={"Tus-Resumable": "0.2.2"})
        resp = conn.getresponse()
        resp.read()
        assert (resp.status, resp.getheader("Tus-Version")) == (412, "1.0.0")
        assert c.status(upload).offset == 40


def test_upload_larger_than_the_limit_is_refused(station, recorder):
    """Upload-Length above the station's maximum: 413 at creation; a deferred upload is cut
    at the maximum (413) with the bytes below it kept."""
    rec = recorder(station)
    with rec.client(station.url) as c:
        assert _refused(c.create_upload, rec.device_id, (8 << 20) + 1).status == 413
        upload = c.create_upload(rec.device_id, None)
        c.patch(upload, 0, b"x" * (4 << 20))
        exc = _refused(c.patch, upload, 4 << 20, b"y" * ((4 << 20) + 1))
        assert exc.status == 413
        assert c.status(upload).offset == 4 << 20
