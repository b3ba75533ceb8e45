"""Acknowledgement is a verified station receipt in the log; a bare ack permits nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.canonical import parse_canonical
from agent.evidence.receipt import Receipt
from agent.evidence.store import EvidenceStore, RetentionViolation
from hw.errors import ReceiptRejected
from tests.tools.receipts import Station, make_station

ORIGIN = {"via": "mqtt", "command_id": "ack-1", "issuer": "station:ST-1"}


@pytest.fixture
def station(tmp_path: Path) -> Station:
    return make_station(tmp_path / "station")


def entries(store: EvidenceStore) -> list[dict]:
    return [parse_canonical(data) for _, data in store.log.entries()]


def forged(receipt: Receipt, **body: object) -> Receipt:
    """The same signature over a body with some fields changed (what a forger can make)."""
    return Receipt({**receipt.body, **body}, dict(receipt.signature))


def test_a_receipt_is_logged_and_makes_exactly_its_segment_evictable(
        data_dir: Path, agency: AgencyKey, station: Station) -> None:
    """A valid receipt appends one ``acknowledged`` entry quoting it; eviction cites that entry;
    a second valid receipt for the same segment adds nothing."""
    store = open_store(data_dir, agency, station_keys=[station.public])
    signed = write_recording(store, segments=2)
    receipt = station.receipt(signed[0])
    index = store.accept_receipt(receipt, origin=ORIGIN)
    ack = entries(store)[index]
    assert ack == {"kind": "event", "type": "acknowledged", "utc": ack["utc"], "device_seq": 0,
                   "cipher_sha256": signed[0].manifest["file"]["cipher_sha256"],
                   "manifest_sha256": signed[0].sha256, "receipt": receipt.to_json(),
                   "receipt_sha256": receipt.sha256, "origin": ORIGIN}
    size = store.log.size
    again = station.receipt(signed[0], utc="2026-11-27T12:00:00.000000Z")
    assert store.accept_receipt(again, origin=ORIGIN) == index and store.log.size == size
    assert store.acknowledged(0) and not store.acknowledged(1)

    media = next((data_dir / "recordings").glob("*/*_00000.mp4.age"))
    store.evict(media)
    eviction = entries(store)[-1]
    assert eviction["type"] == "eviction" and eviction["device_seq"] == 0
    assert (eviction["ack_index"], eviction["receipt_sha256"]) == (index, receipt.sha256)
    assert (eviction["manifest_sha256"], eviction["cipher_sha256"]) == (
        ack["manifest_sha256"], ack["cipher_sha256"])
    with pytest.raises(RetentionViolation, match="not acknowledged"):
        store.evict(next((data_dir / "recordings").glob("*/*_00001.mp4.age")))
    store.close()


def test_pre_acknowledging_a_future_segment_is_refused_without_a_trace(
        data_dir: Path, agency: AgencyKey, station: Station) -> None:
    """The old hole: an ack for device_seq 0-999 with 3 segments recorded. Even a validly
    signed receipt for a segment not yet sealed is refused, the log is unchanged, and the
    segment recorded later under that number is not evictable."""
    store = open_store(data_dir, agency, station_keys=[station.public])
    signed = write_recording(store, segments=3)
    size = store.log.size
    for seq in (3, 4, 999):
        early = station.receipt(signed[0], device_seq=seq)
        with pytest.raises(ReceiptRejected, match=f"segment {seq} is not sealed"):
            store.accept_receipt(early, origin=ORIGIN)
    assert store.log.size == size
    later = write_recording(store, segments=1)[0]
    assert later.manifest["device_seq"] == 3 and not store.acknowledged(3)
    store.close()


def test_an_open_segment_cannot_be_acknowledged(data_dir: Path, agency: AgencyKey,
                                                station: Station) -> None:
    """A segment still being written has no final hash: refused as still recording."""
    from evbench import segment_info

    store = open_store(data_dir, agency, station_keys=[station.public])
    [signed] = write_recording(store, segments=1)
    seg = store.open_segment(segment_info("cd" * 16, 0))
    with pytest.raises(ReceiptRejected, match="still being recorded"):
        store.accept_receipt(station.receipt(signed, device_seq=seg.device_seq), origin=ORIGIN)
    store.abandon(seg)
    store.close()


@pytest.mark.parametrize(("tamper", "reason"), [
    (lambda st, s: st.receipt(s, cipher_sha256="0" * 64), "cipher_sha256 does not match"),
    (lambda st, s: st.receipt(s, manifest_sha256="1" * 64), "manifest_sha256 does not match"),
    (lambda st, s: st.receipt(s, device_id="BC-9999"), "for device 'BC-9999'"),
    (lambda st, s: forged(st.receipt(s), device_seq=1), "signature does not verify"),
    (lambda st, s: Receipt(st.receipt(s).body, {**st.receipt(s).signature, "sig": "AAAA"}),
     "signature does not verify"),
    (lambda st, s: Receipt(st.receipt(s).body, {**st.receipt(s).signature, "sig": "%%"}),
     "not base64"),
], ids=["wrong-cipher", "wrong-manifest", "other-device", "forged-body", "bad-signature",
        "garbled-signature"])
def test_a_receipt_that_does_not_prove_the_segment_is_refused(
        data_dir: Path, agency: AgencyKey, station: Station, tamper, reason: str) -> None:
    """Wrong hash, another device, a body the signature does not cover: refused, named, and
    nothing is logged or made evictable."""
    store = open_store(data_dir, agency, station_keys=[station.public])
    signed = write_recording(store, segments=2)
    size = store.log.size
    with pytest.raises(ReceiptRejected, match=reason):
        store.accept_receipt(tamper(station, signed[0]), origin=ORIGIN)
    assert store.log.size == size and not store.acknowledged(0) and not store.acknowledged(1)
    store.close()


def test_only_configured_station_keys_are_trusted(data_dir: Path, agency: AgencyKey,
                                                  station: Station, tmp_path: Path) -> None:
    """A receipt from an untrusted key is refused; with no keys configured every receipt is
    refused, saying why."""
    rogue = make_station(tmp_path / "rogue", "ST-ROGUE")
    store = open_store(data_dir, agency, station_keys=[station.public])
    [signed] = write_recording(store, segments=1)
    with pytest.raises(ReceiptRejected, match="not a trusted station key"):
        store.accept_receipt(rogue.receipt(signed), origin=ORIGIN)
    store.close()
    store = open_store(data_dir, agency)
    with pytest.raises(ReceiptRejected, match="no station keys are configured"):
        store.accept_receipt(station.receipt(signed), origin=ORIGIN)
    assert not store.acknowledged(0)
    store.close()


def test_the_registry_is_the_log_and_an_edited_acks_file_proves_nothing(
        data_dir: Path, agency: AgencyKey, station: Station,
        caplog: pytest.LogCaptureFixture) -> None:
    """Acknowledgements survive a restart because they are in the log; a hand-written
    state/acks.json naming every segment makes none evictable and is reported."""
    store = open_store(data_dir, agency, station_keys=[station.public])
    signed = write_recording(store, segments=3)
    index = store.accept_receipt(station.receipt(signed[1]), origin=ORIGIN)
    store.close()
    (data_dir / "state" / "acks.json").write_text('{"acknowledged":[0,1,2,3,4,5]}')
    with caplog.at_level(logging.WARNING, logger="agent.evidence.retention_guard"):
        store = open_store(data_dir, agency, station_keys=[station.public])
    assert "acks.json is ignored" in caplog.text
    assert [store.acknowledged(s) for s in range(4)] == [False, True, False, False]
    ack = store.acknowledgement(1)
    assert ack is not None and ack.ack_index == index
    for media in sorted((data_dir / "recordings").glob("*/*.mp4.age")):
        if "_00001." not in media.name:
            with pytest.raises(RetentionViolation):
                store.evict(media)
            assert media.exists()
    store.close()


def test_origin_must_be_loggable(data_dir: Path, agency: AgencyKey, station: Station) -> None:
    """An origin the log cannot hold exactly (a float) is refused before anything is written."""
    from hw.errors import EvidenceError

    store = open_store(data_dir, agency, station_keys=[station.public])
    [signed] = write_recording(store, segments=1)
    with pytest.raises(EvidenceError, match="origin"):
        store.accept_receipt(station.receipt(signed), origin={"via": "ctl", "uid": 0.5})
    assert not store.acknowledged(0)
    store.close()
