"""A segment goes from a recorder to the station's write-once store and comes back as a
signed receipt; the same segment again gets the same receipt."""

from __future__ import annotations

import base64
import json
import os
import stat

from agent.evidence.manifest import parse_envelope
from tests.station.harness import bodycam, index_rows


def _info(station) -> dict:
    return json.loads(bodycam("station", "info", "--config", str(station.config), "--data-dir",
                              str(station.data_dir), "--json").stdout)


def test_segment_is_stored_write_once_and_receipted(station, recorder):
    """Upload + finalise: 201, a receipt signed by the station's key naming exactly the
    segment; the stored media (0444) and manifest are the device's bytes, laid out as on it."""
    rec = recorder(station)
    seg = rec.seal(os.urandom(300_000))
    info = _info(station)
    key = base64.b64decode(info["receipt_key"])
    with rec.client(station.url, chunk_bytes=64 * 1024, trusted_keys=[key]) as c:
        upload = c.upload_file(rec.device_id, seg.media)
        receipt = c.finalise(rec.device_id, upload, manifest=seg.manifest, entry=seg.entry,
                             leaf_index=seg.index, log=rec.log)
        again = c.receipt(rec.device_id, seg.device_seq)
    m = parse_envelope(seg.manifest)
    assert receipt.station_id == info["station_id"]
    assert receipt.verify([key]) == key
    assert receipt.matches(device_id=rec.device_id, device_seq=seg.device_seq,
                           cipher_sha256=m.manifest["file"]["cipher_sha256"],
                           manifest_sha256=m.sha256) is None
    assert again is not None and again.to_json() == receipt.to_json()
    rel = json.loads(seg.entry)["path"]
    stored = station.data_dir / "store" / rec.device_id / rel
    assert stored.read_bytes() == seg.cipher
    assert stat.S_IMODE(stored.stat().st_mode) == 0o444
    manifest = stored.with_name(stored.name.removesuffix(".mp4.age") + ".manifest.json")
    assert manifest.read_bytes() == seg.manifest
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o444
    assert not list((station.data_dir / "store" / ".incoming").iterdir())
    events = [r for r in index_rows(station.data_dir, "events") if r[2] == rec.device_id]
    assert [r[3] for r in events] == ["segment-stored"]
    assert receipt.sha256 in events[0][4]


def test_the_same_segment_again_gets_the_same_receipt(station, recorder):
    """Idempotence: a second upload of identical bytes (a device that lost the answer) is a
    success with the very receipt already stored, and the store still holds one copy."""
    rec = recorder(station)
    seg = rec.seal(os.urandom(50_000))
    with rec.client(station.url) as c:
        first = c.finalise(rec.device_id, c.upload_file(rec.device_id, seg.media),
                           manifest=seg.manifest, entry=seg.entry, leaf_index=seg.index,
                           log=rec.log)
        second = c.finalise(rec.device_id, c.upload_file(rec.device_id, seg.media),
                            manifest=seg.manifest, entry=seg.entry, leaf_index=seg.index,
                            log=rec.log)
    assert second.to_json() == first.to_json()
    listed = json.loads(bodycam("station", "list", "--config", str(station.config),
                                "--data-dir", str(station.data_dir), "--json").stdout)
    mine = [s for s in listed["segments"] if s["device_id"] == rec.device_id]
    assert len(mine) == 1
    assert mine[0]["state"] == "verified"
    assert mine[0]["cipher_bytes"] == 50_000


def test_segments_of_a_growing_log_each_get_their_receipt(station, recorder):
    """Three segments finalised in turn: the station's witness state follows the device's
    log (consistency proven each time) and its size is what GET /log reports."""
    rec = recorder(station)
    segs = [rec.seal(os.urandom(10_000 + i)) for i in range(3)]
    with rec.client(station.url) as c:
        for s in segs:
            c.finalise(rec.device_id, c.upload_file(rec.device_id, s.media),
                       manifest=s.manifest, entry=s.entry, leaf_index=s.index, log=rec.log)
        assert c.log_state(rec.device_id).size == rec.log.size
        # An older segment finalised after newer ones: proven against the larger held log.
        extra = rec.seal(os.urandom(999))
        later = rec.seal(os.urandom(998))
        c.finalise(rec.device_id, c.upload_file(rec.device_id, later.media),
                   manifest=later.manifest, entry=later.entry, leaf_index=later.index,
                   log=rec.log)
        assert c.receipt(rec.device_id, extra.device_seq) is None
        r = c.finalise(rec.device_id, c.upload_file(rec.device_id, extra.media),
                       manifest=extra.manifest, entry=extra.entry, leaf_index=extra.index,
                       log=rec.log)
    assert r.device_seq == extra.device_seq
