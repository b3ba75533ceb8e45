"""The device's side of handing a credential over (agent/offload/credential.py), against a
recording stand-in for the station client: what is sent, and which refusals hold the segment
back (only the station's own trouble) and which do not (anything about the credential)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.offload.credential import MAX_CREDENTIAL_BYTES, hand_over_credential
from agent.station.api_client import StationRefused


class Station:
    """Records each ``put_credential`` and answers with ``refusal`` when one is set."""

    def __init__(self, refusal: StationRefused | None = None) -> None:
        self.sent: list[tuple[str, int, bytes]] = []
        self.refusal = refusal

    def put_credential(self, device_id: str, device_seq: int, data: bytes) -> dict[str, Any]:
        self.sent.append((device_id, device_seq, data))
        if self.refusal is not None:
            raise self.refusal
        return {"device_seq": device_seq, "c2pa": {"state": "valid"}}


def _segment(tmp_path: Path, credential: bytes | None) -> Path:
    media = tmp_path / "recordings" / "r" / "BC-1_x_00000.mp4.age"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"ciphertext")
    if credential is not None:
        media.with_name("BC-1_x_00000.c2pa").write_bytes(credential)
    return media


def test_the_sidecar_beside_the_segment_is_sent_as_it_is(tmp_path: Path) -> None:
    station = Station()
    media = _segment(tmp_path, b"jumbf" * 100)
    assert hand_over_credential(station, "BC-1", 4, media) is None  # type: ignore[arg-type]
    assert station.sent == [("BC-1", 4, b"jumbf" * 100)]


def test_no_sidecar_means_no_request(tmp_path: Path) -> None:
    station = Station()
    assert hand_over_credential(station, "BC-1", 0, _segment(tmp_path, None)) is None  # type: ignore[arg-type]
    assert station.sent == []


def test_an_oversize_sidecar_is_sent_cut_one_byte_past_the_bound(tmp_path: Path) -> None:
    """The station must see that it is too large (and record it), without the device reading
    or sending a file of any size."""
    station = Station()
    hand_over_credential(station, "BC-1", 0, _segment(tmp_path, b"x" * (1 << 20)))  # type: ignore[arg-type]
    assert len(station.sent[0][2]) == MAX_CREDENTIAL_BYTES + 1


@pytest.mark.parametrize(("status", "code"), [(422, "c2pa-invalid"), (413, "c2pa-too-large"),
                                              (409, "c2pa-conflict"), (404, "http-error"),
                                              (410, "segment-gone")])
def test_a_refused_credential_does_not_hold_the_segment_back(tmp_path: Path, status: int,
                                                             code: str) -> None:
    station = Station(StationRefused(status, code, "why", {}))
    problem = hand_over_credential(station, "BC-1", 2, _segment(tmp_path, b"c"))  # type: ignore[arg-type]
    assert problem is not None and code in problem and "segment 2" in problem


@pytest.mark.parametrize("status", [500, 503, 507])
def test_the_stations_own_trouble_is_raised_so_the_segment_is_retried(tmp_path: Path,
                                                                       status: int) -> None:
    station = Station(StationRefused(status, "store-full", "later", {}))
    with pytest.raises(StationRefused):
        hand_over_credential(station, "BC-1", 2, _segment(tmp_path, b"c"))  # type: ignore[arg-type]
