"""The store's delete guard, rule by rule: the one check between a receipt and a deletion.

:func:`eviction_fields` decides against the store's own index (a real store, real receipts
from a test station): only the sealed file of its manifest, of a segment not open, with a
logged receipt for exactly that manifest, may go -- and the words say which rule refused.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.canonical import canonical_json
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import parse_envelope, sign_manifest
from agent.evidence.retention_guard import (
    RetentionViolation,
    checked_origin,
    eviction_fields,
    warn_legacy_acks,
)
from agent.evidence.store import EvidenceStore
from hw.errors import EvidenceError, ReceiptRejected
from tests.tools.receipts import Station, make_station

ORIGIN = {"via": "mqtt", "command_id": "ack-1", "issuer": "station:ST-1"}


@pytest.fixture
def acked(data_dir: Path, agency: AgencyKey, tmp_path: Path) -> tuple[EvidenceStore, Path, int]:
    """A store with segment 0 sealed and receipted; its media file; the ack's log index."""
    station: Station = make_station(tmp_path / "station")
    store = open_store(data_dir, agency, station_keys=[station.public])
    signed = write_recording(store, segments=2)
    index = store.accept_receipt(station.receipt(signed[0]), origin=ORIGIN)
    media = next((data_dir / "recordings").glob("*/*_00000.mp4.age"))
    return store, media, index


def _fields(store: EvidenceStore, media: Path, open_seqs: set[int]) -> dict[str, object]:
    return eviction_fields(media, index=store._index, open_seqs=open_seqs,
                           rel=lambda p: f"rel:{p.name}")


def test_a_receipted_sealed_segment_gives_exactly_the_eviction_fields(
        acked: tuple[EvidenceStore, Path, int]) -> None:
    store, media, index = acked
    fields = _fields(store, media, set())
    assert set(fields) == {"device_seq", "path", "manifest_sha256", "cipher_sha256",
                           "ack_index", "receipt_sha256"}
    assert (fields["device_seq"], fields["path"], fields["ack_index"]) == (
        0, f"rel:{media.name}", index)
    store.close()


def test_an_open_segment_is_never_evicted_even_with_a_receipt(
        acked: tuple[EvidenceStore, Path, int]) -> None:
    """Open and receipted cannot both be true in a sane store; if they were (a reused
    sequence number), the open file is the one being written: refused."""
    store, media, _ = acked
    with pytest.raises(RetentionViolation) as refused:
        _fields(store, media, {0})
    assert str(refused.value) == f"{media}: not the sealed file of its manifest"
    store.close()


def test_a_copy_under_another_name_is_not_the_sealed_file(
        acked: tuple[EvidenceStore, Path, int], tmp_path: Path) -> None:
    store, media, _ = acked
    other = media.with_name(media.name.replace("_00000.", "_00009."))
    shutil.copyfile(media, other)
    manifest = media.with_name(media.name.removesuffix(".mp4.age") + ".manifest.json")
    shutil.copyfile(manifest, other.with_name(other.name.removesuffix(".mp4.age")
                                              + ".manifest.json"))
    with pytest.raises(RetentionViolation, match="not the sealed file of its manifest"):
        _fields(store, other, set())
    manifest.unlink()
    with pytest.raises(RetentionViolation, match=r"no readable sealed manifest \("):
        _fields(store, media, set())
    store.close()


def test_the_origin_logged_with_a_receipt_is_bounded_at_exactly_1024_bytes() -> None:
    base = {"via": "mqtt", "note": ""}
    pad = 1024 - len(canonical_json(base))
    exact = {**base, "note": "x" * pad}
    assert len(canonical_json(exact)) == 1024 and checked_origin(exact) == exact
    with pytest.raises(EvidenceError) as refused:
        checked_origin({**base, "note": "x" * (pad + 1)})
    assert str(refused.value) == "origin larger than 1024 bytes"


def test_no_station_key_means_no_receipt_and_says_so(data_dir: Path, agency: AgencyKey,
                                                     tmp_path: Path) -> None:
    station = make_station(tmp_path / "station")
    store = open_store(data_dir, agency)
    [signed] = write_recording(store, segments=1)
    with pytest.raises(ReceiptRejected) as refused:
        store.accept_receipt(station.receipt(signed), origin=ORIGIN)
    assert str(refused.value) == ("no station keys are configured ([offload] station_keys): "
                                  "no receipt can be trusted, so none is accepted")
    store.close()


def test_a_legacy_acks_file_is_reported_as_ignored(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "acks.json").write_text("[0, 1]")
    with caplog.at_level(logging.WARNING, logger="agent.evidence.retention_guard"):
        warn_legacy_acks(tmp_path)
    assert caplog.messages == [
        f"{tmp_path / 'state' / 'acks.json'} is ignored: a list of sequence numbers proves "
        "nothing; only station receipts in the evidence log make a segment evictable"]


def test_a_manifest_other_than_the_receipted_one_is_refused(
        acked: tuple[EvidenceStore, Path, int], data_dir: Path) -> None:
    """The same segment re-signed with another content (the device key could sign anything):
    the receipt names the original manifest, so this one permits nothing."""
    store, media, _ = acked
    sidecar = media.with_name(media.name.removesuffix(".mp4.age") + ".manifest.json")
    original = parse_envelope(sidecar.read_bytes())
    key = DeviceKey.load(data_dir / "keys" / "device.key")
    sidecar.write_bytes(sign_manifest({**original.manifest, "officer_id": "X-0"}, key).envelope())
    with pytest.raises(RetentionViolation) as refused:
        _fields(store, media, set())
    assert str(refused.value) == f"{media}: manifest differs from the one segment 0's receipt names"
    store.close()
