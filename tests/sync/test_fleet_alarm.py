"""``bodycam fleet watch`` shows a station's evidence alarm beside the device until a person
clears the retained alarm (an empty retained message)."""

from __future__ import annotations

import json

from agent.station.fleetwatch import FleetView, render_table

ALARM = {"device_id": "BC-0001", "kind": "log-fork", "detail": "monitor: fork at 3",
         "utc": "2026-11-30T02:00:00.000000Z", "station_id": "st-1", "held_size": 3,
         "held_root": "A" * 43 + "=", "checkpoint_size": 4}


def test_an_alarm_marks_the_device_until_it_is_cleared() -> None:
    view = FleetView()
    view.apply("bodycam/v1/BC-0002/status", b'{"state": "online", "session": 1}', now=1.0)
    event = view.apply("bodycam/v1/BC-0001/alarm", json.dumps(ALARM).encode(), now=2.0)
    assert event == {"event": "alarm", "device_id": "BC-0001", "kind": "log-fork",
                     "station_id": "st-1", "detail": "monitor: fork at 3"}
    table = render_table(view, now=3.0)
    assert "BC-0001 ALARM:log-fork" in table
    assert "BC-0002 ALARM" not in table
    assert view.apply("bodycam/v1/BC-0001/alarm", b"", now=4.0) == {
        "event": "alarm-cleared", "device_id": "BC-0001"}
    assert "ALARM" not in render_table(view, now=5.0)


def test_a_malformed_alarm_is_named_not_shown() -> None:
    view = FleetView()
    assert view.apply("bodycam/v1/BC-0001/alarm", b"\xff", now=1.0)["event"] == "malformed"
    assert "ALARM" not in render_table(view, now=2.0)
