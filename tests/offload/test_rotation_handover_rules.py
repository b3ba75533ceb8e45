"""Which key rotations the uploader still owes a station, without a station: the offload state
remembers, per station URL, the log indexes of the rotations taken; a refusal is tried again
after ``retry_s`` and stops the later rotations of a chain."""

from __future__ import annotations

from pathlib import Path

from agent.offload.rotation_handover import RotationHandover
from agent.station.api_client import StationRefused

ROTATIONS = [(3, b"r3"), (9, b"r9")]


class Station:
    """Takes every rotation but the ones listed as refused; notes what it was shown."""

    def __init__(self, refuse: tuple[bytes, ...] = ()) -> None:
        self.refuse = refuse
        self.shown: list[bytes] = []

    def present_rotation(self, device_id: str, entry: bytes) -> dict[str, object]:
        self.shown.append(entry)
        if entry in self.refuse:
            raise StationRefused(422, "unknown-old-key", "not a key of this device", {})
        return {"added": True, "fingerprint": "ab" * 32}


def _handover(state: Path, station: str = "https://a") -> RotationHandover:
    return RotationHandover(state, station=station, device_id="BC-1", retry_s=5)


def test_taken_rotations_are_remembered_per_station_across_a_restart(tmp_path: Path) -> None:
    one = _handover(tmp_path)
    assert one.due(ROTATIONS, 0.0) == ROTATIONS
    assert one.present(Station(), [(3, b"r3")], 0.0) is None  # type: ignore[arg-type]
    assert _handover(tmp_path).due(ROTATIONS, 0.0) == [(9, b"r9")]
    assert _handover(tmp_path, "https://b").due(ROTATIONS, 0.0) == ROTATIONS


def test_a_refusal_stops_the_chain_and_waits_retry_s(tmp_path: Path) -> None:
    h = _handover(tmp_path)
    station = Station(refuse=(b"r3",))
    problem = h.present(station, ROTATIONS, 100.0)  # type: ignore[arg-type]
    assert problem is not None and "log index 3" in problem and "unknown-old-key" in problem
    assert station.shown == [b"r3"]  # r9 (later in the chain) was not shown
    assert h.due(ROTATIONS, 104.9) == []
    assert h.due(ROTATIONS, 105.0) == ROTATIONS


def test_an_unreadable_state_file_means_presenting_again(tmp_path: Path) -> None:
    (tmp_path / "offload-rotations.json").write_text("{not json")
    assert _handover(tmp_path).due(ROTATIONS, 0.0) == ROTATIONS


def test_refusals_in_a_row_wait_longer_up_to_an_hour_and_a_success_starts_again(
        tmp_path: Path) -> None:
    h = _handover(tmp_path)
    refusing, now = Station(refuse=(b"r3",)), 0.0
    for wait in (5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600):
        assert h.present(refusing, ROTATIONS, now) is not None  # type: ignore[arg-type]
        assert h.due(ROTATIONS, now + wait - 0.5) == []
        assert h.due(ROTATIONS, now + wait) == ROTATIONS
        now += wait
    assert h.present(Station(), ROTATIONS, now) is None  # type: ignore[arg-type]
    assert h.due(ROTATIONS, now) == []  # all taken
    assert h.present(refusing, [(11, b"r3")], now) is not None  # type: ignore[arg-type]
    assert h.due([(11, b"r3")], now + 5) == [(11, b"r3")]  # the success started it again
