"""Faults lose nothing: a cut link resumes from the durable offset, a stalled or abandoned
upload is bounded, a full store gives no receipt, a killed station resumes after restart."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from agent.station.api_client import StationRefused
from agent.testing import wait_for
from tests.station.harness import StationProcess, index_rows, station_config, tls_socket

MiB = 1 << 20


def _patch_head(upload: str, offset: int, length: int) -> bytes:
    return (f"PATCH {upload} HTTP/1.1\r\nHost: station\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _finalise(c, rec, seg, upload):
    return c.finalise(rec.device_id, upload, manifest=seg.manifest, entry=seg.entry,
                      leaf_index=seg.index, log=rec.log)


@pytest.fixture
def own_station(tmp_path, pki):
    """A station of the test's own, with limits passed as keywords."""
    procs: list[StationProcess] = []

    def start(store: Path | None = None, **limits) -> StationProcess:
        cfg = station_config(tmp_path / f"station{len(procs)}.toml", pki, store=store,
                             **{"min_free_bytes": 0, **limits})
        proc = StationProcess(cfg, tmp_path / "data").start()
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.proc and p.proc.poll() is None:
            p.stop()


def test_cut_link_resumes_from_the_durable_offset(station, recorder, pki):
    """The link dies mid-PATCH: HEAD gives the bytes that arrived (on disk), and the upload
    carries on from there — not from zero — to a verified, receipted segment."""
    rec = recorder(station)
    seg = rec.seal(os.urandom(3 * MiB))
    with rec.client(station.url) as c:
        upload = c.create_upload(rec.device_id, len(seg.cipher))
        part = station.data_dir / "store" / ".incoming" / (upload.rsplit("/", 1)[1] + ".part")
        s = tls_socket(station.url, pki, rec.device_id)
        s.sendall(_patch_head(upload, 0, len(seg.cipher)) + seg.cipher[:MiB])
        wait_for(lambda: part.stat().st_size >= MiB // 2, what="bytes on the station's disk")
        s.close()  # unread TLS tickets make this a reset: the link dies mid-body

        def settled() -> int:  # the station has fsynced and answers the same offset twice
            first = c.status(upload)
            return first.offset if c.status(upload) == first and first.offset else 0

        offset = wait_for(settled, what="the received prefix")
        assert MiB // 2 <= offset <= MiB
        c.upload_file(rec.device_id, seg.media, upload=upload)
        receipt = _finalise(c, rec, seg, upload)
    assert receipt.device_seq == seg.device_seq


def test_live_segment_declares_its_length_at_the_end(station, recorder):
    """creation-defer-length: a segment still being written is streamed in pieces and its
    length declared with the last PATCH; HEAD says the length is deferred until then."""
    rec = recorder(station)
    seg = rec.seal(os.urandom(200_000))
    with rec.client(station.url) as c:
        upload = c.create_upload(rec.device_id, None)
        assert c.status(upload).length is None
        offset = c.patch(upload, 0, seg.cipher[:70_000])
        offset = c.patch(upload, offset, seg.cipher[70_000:150_000])
        assert c.status(upload).length is None
        offset = c.patch(upload, offset, seg.cipher[150_000:], length=len(seg.cipher))
        assert c.status(upload).offset == c.status(upload).length == len(seg.cipher)
        assert _finalise(c, rec, seg, upload).device_seq == seg.device_seq


def test_a_stalled_body_times_out_keeping_what_arrived(own_station, recorder, pki):
    """A body that stops flowing is answered 408 after body_timeout_s with the durable offset;
    the bytes that arrived are kept."""
    st = own_station(body_timeout_s=0.5)
    rec = recorder(st)
    with rec.client(st.url) as c:
        upload = c.create_upload(rec.device_id, 1000)
        s = tls_socket(st.url, pki, rec.device_id)
        s.sendall(_patch_head(upload, 0, 1000) + b"z" * 100)
        answer = s.recv(4096)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"Upload-Offset: 100" in answer
        assert c.status(upload).offset == 100


def test_an_abandoned_upload_expires_into_quarantine(own_station, recorder):
    """An upload idle past idle_expiry_s is quarantined (bytes kept), answers 410 and can
    never be finalised; an event records it."""
    st = own_station(idle_expiry_s=0.3, expiry_check_s=0.05)
    rec = recorder(st)
    seg = rec.seal(os.urandom(5000))
    with rec.client(st.url) as c:
        upload = c.create_upload(rec.device_id, 5000)
        c.patch(upload, 0, seg.cipher[:2000])

        def gone() -> bool:
            try:
                c.status(upload)
            except StationRefused as exc:
                return exc.status == 410
            return False

        wait_for(gone, what="the upload to expire")
        with pytest.raises(StationRefused) as info:
            _finalise(c, rec, seg, upload)
        assert info.value.status == 410
    quarantined = list((st.data_dir / "store" / ".quarantine").iterdir())
    assert [q.read_bytes() for q in quarantined] == [seg.cipher[:2000]]
    assert any(r[3] == "upload-expired" for r in index_rows(st.data_dir, "events"))


def test_unfinished_uploads_per_device_are_bounded(own_station, recorder):
    """max_uploads_per_device open uploads, then 429 until one is finished."""
    st = own_station(max_uploads_per_device=2)
    rec = recorder(st)
    with rec.client(st.url) as c:
        c.create_upload(rec.device_id, 10)
        c.create_upload(rec.device_id, 10)
        with pytest.raises(StationRefused) as info:
            c.create_upload(rec.device_id, 10)
        assert (info.value.status, info.value.code) == (429, "too-many-uploads")


def test_reserve_below_free_space_refuses_with_507(own_station, recorder):
    """When the store's free space is under the reserve, uploads get 507 and nothing else."""
    st = own_station(min_free_bytes=1 << 50)
    rec = recorder(st)
    with rec.client(st.url) as c, pytest.raises(StationRefused) as info:
        c.create_upload(rec.device_id, 10)
    assert (info.value.status, info.value.code) == (507, "store-full")


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs to fill ({done.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def test_full_store_gives_no_receipt_and_resumes_when_space_returns(own_station, recorder,
                                                                    tmp_path):
    """A real ENOSPC (a 2 MiB tmpfs): the PATCH is answered 507 with the durable offset, no
    receipt exists; once the file system is grown, the same upload resumes and completes."""
    with _tmpfs(tmp_path / "small", "2m") as mnt:
        st = own_station(store=mnt / "store")
        rec = recorder(st)
        seg = rec.seal(os.urandom(3 * MiB))
        with rec.client(st.url, chunk_bytes=512 * 1024) as c:
            with pytest.raises(StationRefused) as info:
                c.upload_file(rec.device_id, seg.media)
            assert (info.value.status, info.value.code) == (507, "store-full")
            assert c.receipt(rec.device_id, seg.device_seq) is None
            upload = index_rows(st.data_dir, "uploads")[0][0]
            upload = f"/v1/devices/{rec.device_id}/uploads/{upload}"
            held = c.status(upload).offset
            assert 0 < held <= 2 * MiB
            subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
            c.upload_file(rec.device_id, seg.media, upload=upload)
            assert _finalise(c, rec, seg, upload).device_seq == seg.device_seq
        stored = list((mnt / "store" / rec.device_id).rglob("*.mp4.age"))
        assert [p.read_bytes() for p in stored] == [seg.cipher]
        st.stop()


def test_station_killed_mid_write_resumes_after_restart(own_station, recorder, pki):
    """SIGKILL while a body streams in: after restart nothing partial is in the store, the
    listing is empty, HEAD gives the bytes on disk, and the upload resumes to a receipt."""
    st = own_station()
    rec = recorder(st)
    seg = rec.seal(os.urandom(4 * MiB))
    with rec.client(st.url) as c:
        upload = c.create_upload(rec.device_id, len(seg.cipher))
    part = st.data_dir / "store" / ".incoming" / (upload.rsplit("/", 1)[1] + ".part")
    s = tls_socket(st.url, pki, rec.device_id)
    s.sendall(_patch_head(upload, 0, len(seg.cipher)) + seg.cipher[:MiB])
    wait_for(lambda: part.stat().st_size >= MiB // 2, what="bytes on the station's disk")
    st.kill()
    s.close()
    st.start()
    finals = [p for p in (st.data_dir / "store").rglob("*") if ".incoming" not in p.parts
              and p.is_file()]
    assert finals == []
    assert index_rows(st.data_dir, "segments") == []
    with rec.client(st.url) as c:
        offset = c.status(upload).offset
        assert offset == part.stat().st_size
        assert seg.cipher[:offset] == part.read_bytes()
        c.upload_file(rec.device_id, seg.media, upload=upload)
        assert _finalise(c, rec, seg, upload).device_seq == seg.device_seq
    stored = list((st.data_dir / "store" / rec.device_id).rglob("*.mp4.age"))
    assert [p.read_bytes() for p in stored] == [seg.cipher]


def test_a_checksummed_body_counts_whole_or_not_at_all(own_station, recorder, pki):
    """A PATCH with Upload-Checksum that stalls half way: 408, and not one of its bytes is
    counted (a checksummed body is written only once its digest matches)."""
    import base64
    import hashlib

    st = own_station(body_timeout_s=0.5)
    rec = recorder(st)
    body = os.urandom(2000)
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    with rec.client(st.url) as c:
        upload = c.create_upload(rec.device_id, 3000)
        c.patch(upload, 0, b"k" * 1000)
        s = tls_socket(st.url, pki, rec.device_id)
        head = _patch_head(upload, 1000, len(body)).replace(
            b"\r\n\r\n", f"\r\nUpload-Checksum: sha256 {digest}\r\n\r\n".encode())
        s.sendall(head + body[:1500])
        answer = s.recv(4096)
        s.close()
        assert answer.startswith(b"HTTP/1.1 408")
        assert c.status(upload).offset == 1000


def test_sigterm_lets_a_request_in_flight_end_durably(own_station, recorder, pki):
    """SIGTERM while a body streams in: the station stops cleanly (exit 0), and after a
    restart HEAD gives the bytes that had arrived."""
    st = own_station(body_timeout_s=2)
    rec = recorder(st)
    seg = rec.seal(os.urandom(2 * MiB))
    with rec.client(st.url) as c:
        upload = c.create_upload(rec.device_id, len(seg.cipher))
    part = st.data_dir / "store" / ".incoming" / (upload.rsplit("/", 1)[1] + ".part")
    s = tls_socket(st.url, pki, rec.device_id)
    s.sendall(_patch_head(upload, 0, len(seg.cipher)) + seg.cipher[:MiB])
    wait_for(lambda: part.stat().st_size >= MiB // 2, what="bytes on the station's disk")
    assert st.stop() == 0, st.stderr()
    s.close()
    on_disk = part.stat().st_size
    st.start()
    with rec.client(st.url) as c:
        assert c.status(upload).offset == on_disk
        assert part.read_bytes() == seg.cipher[:on_disk]


def test_store_full_at_finalise_gives_no_receipt_until_space_returns(own_station, recorder,
                                                                     tmp_path):
    """The bytes are in, but the store fills before the manifest can be written: 507, no
    receipt, nothing listed; once space returns, the same finalise succeeds."""
    with _tmpfs(tmp_path / "small", "4m") as mnt:
        st = own_station(store=mnt / "store")
        rec = recorder(st)
        seg = rec.seal(os.urandom(MiB))
        filler = mnt / "filler"
        with rec.client(st.url) as c:
            upload = c.upload_file(rec.device_id, seg.media)
            with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
                while True:  # until ENOSPC
                    f.write(b"\0" * 65536)
            with pytest.raises(StationRefused) as info:
                _finalise(c, rec, seg, upload)
            assert (info.value.status, info.value.code) == (507, "store-full")
            assert c.receipt(rec.device_id, seg.device_seq) is None
            assert index_rows(st.data_dir, "segments") == []
            filler.unlink()
            assert _finalise(c, rec, seg, upload).device_seq == seg.device_seq
        st.stop()
