"""When the retained ``state`` message is republished: on any change a fleet manager sees.

The real :class:`FleetSync` (not started; no broker) with its link's two publish calls
recorded -- the rule under test is FleetSync's, not the link's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import parse_config
from agent.evidence.keys import DeviceKey
from agent.evidence.store import EvidenceStore
from agent.ports import HardwareFacts
from agent.sync.fleet_sync import FleetSync


def _sync(data: Path) -> tuple[FleetSync, list[dict[str, Any]], list[dict[str, Any]]]:
    key = DeviceKey.generate(data / "keys" / "device.key")
    store = EvidenceStore(data, key=key, recipients=[], encrypt=False, device_id="BC-0001")
    cfg = parse_config({"device": {"id": "BC-0001"},
                        "mqtt": {"enabled": True, "url": "mqtt://127.0.0.1:1",
                                 "allow_plaintext": True, "telemetry_s": 60}})
    sync = FleetSync(cfg.mqtt, device=cfg.device, officer_id="", data_dir=data, store=store,
                     key=key, hardware=HardwareFacts("sim", None, ()), submit=lambda r: None)
    states: list[dict[str, Any]] = []
    telemetry: list[dict[str, Any]] = []
    sync.link.publish_state = states.append  # type: ignore[method-assign]
    sync.link.publish_telemetry = telemetry.append  # type: ignore[method-assign]
    return sync, states, telemetry


SNAP: dict[str, Any] = {"state": "standby", "recording_id": None, "fault": None,
                        "officer_id": "A1234", "profile": "body", "battery_level": "ok",
                        "storage_level": "ok", "segments_sealed": 3, "log_size": 7,
                        "matter": {"code": "XCJC", "source": "default"}}


def test_a_matter_chosen_on_the_unit_is_republished_at_once(tmp_path: Path) -> None:
    """A matter picked with the button while in standby (no recording state change) reaches
    the retained state at the next tick, not at the next press."""
    sync, states, _ = _sync(tmp_path)
    sync.tick(0.0, dict(SNAP))
    sync.tick(1.0, dict(SNAP))
    assert len(states) == 1
    sync.tick(2.0, {**SNAP, "matter": {"code": "JTWF", "source": "button"}})
    assert len(states) == 2 and states[-1]["matter"]["code"] == "JTWF"


def test_an_officer_or_profile_change_is_republished(tmp_path: Path) -> None:
    """Who wears the unit and how it is used are on the fleet table too."""
    sync, states, _ = _sync(tmp_path)
    sync.tick(0.0, dict(SNAP))
    sync.tick(1.0, {**SNAP, "officer_id": "B777"})
    sync.tick(2.0, {**SNAP, "officer_id": "B777", "profile": "fixed"})
    assert [s["officer_id"] for s in states] == ["A1234", "B777", "B777"]
    assert states[-1]["profile"] == "fixed"


def test_segment_counters_alone_wait_for_the_next_change(tmp_path: Path) -> None:
    """A sealed segment moves the counters every minute of recording; that alone does not
    republish (telemetry carries them on its period), the next real change carries them."""
    sync, states, telemetry = _sync(tmp_path)
    sync.tick(0.0, dict(SNAP))
    sync.tick(1.0, {**SNAP, "segments_sealed": 4, "log_size": 8})
    assert len(states) == 1 and len(telemetry) == 1
    sync.tick(2.0, {**SNAP, "segments_sealed": 4, "log_size": 8, "state": "recording"})
    assert len(states) == 2 and states[-1]["segments_sealed"] == 4
