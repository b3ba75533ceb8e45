"""The fleet console in a real browser (Debian's chromium driven by Playwright), against a
real station, a real TLS mosquitto with the shipped ACL, one real agent on simulated hardware
and two simulated units publishing with their own device certificates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.testing import running_agent, small_config, wait_for
from tests.console.conftest import FORKED, TILED, UNITS
from tests.console.harness import CHROMIUM, ConsoleStation, SimUnit, backoffice_publish
from tests.sync.mqtt_harness import Broker

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")

REAL = UNITS[0]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def fleet(pki: Path, broker: Broker, station: ConsoleStation,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real agent (walking the simulator's route in Shanghai) and two simulated units
    near it, all online and reporting."""
    cfg = small_config(
        device={"id": REAL, "officer_id": "P-1001"},
        gps={"source": "serial"}, sim={"gps_route": "walk"},
        mqtt={"enabled": True, "url": f"mqtts://localhost:{broker.port}", "telemetry_s": 1,
              "cafile": str(pki / "ca.crt"), "certfile": str(pki / f"{REAL}.crt"),
              "keyfile": str(pki / f"{REAL}.key")})
    sims = [SimUnit(UNITS[1], pki, broker.port, 31.2290, 121.4720, officer="P-1002").connect(),
            SimUnit(UNITS[2], pki, broker.port, 31.2325, 121.4760, officer="P-1003").connect()]
    for _ in range(3):
        for s in sims:
            s.telemetry()
    with running_agent(cfg, tmp_path_factory.mktemp("agent")) as agent:
        wait_for(lambda: agent.commands.sync.link.stats().commands_ready)
        yield {"agent": agent, "sims": sims}
    for s in sims:
        s.close()


def _page(browser: Any, station: ConsoleStation, user: str, password: str) -> Any:
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    page.goto(station.console_url)
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_selector("#app:not([hidden])")
    return page


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _row(device: str) -> str:
    return f'#fleet tr[data-device="{device}"]'


def test_dispatcher_sees_the_fleet_live_and_starts_and_stops_a_recording(  # noqa: PLR0917 -- fixtures
        browser: Any, station: ConsoleStation, fleet: dict[str, Any], pki: Path,
        broker: Broker, tmp_path: Path) -> None:
    """Three units appear live in the table and on the map; a recording started from the
    console shows on the page within 2 s; a stop needs a typed reason; an alarm published on
    the unit's alarm topic appears; every act is in the audit table with the user."""
    agent = fleet["agent"]
    page = _page(browser, station, "alice", "alice-password-1")
    for device in UNITS:
        page.wait_for_selector(_row(device), timeout=15_000)
    # each unit's marker on the map (the real agent's simulated GPS walk included)
    for device in UNITS:
        page.wait_for_selector(f'#map g.unit[data-device="{device}"]', timeout=15_000)
    assert page.locator("#map g.unit").count() == 3
    assert "P-1002" in page.inner_text(_row(UNITS[1]))
    _shot(page, tmp_path, "fleet")

    page.click(_row(REAL))
    page.wait_for_selector("#unit:not([hidden])")
    assert agent.recorder.state != "recording"
    page.click('#actions button[data-action="start"]')
    page.wait_for_selector("#confirm[open]")
    assert REAL in page.inner_text("#confirm-text")
    clicked = time.monotonic()
    page.click("#confirm-ok")
    page.wait_for_selector(f'{_row(REAL)} .rec', timeout=2_000)
    shown_s = time.monotonic() - clicked
    print(f"start → REC on the page: {shown_s:.3f} s")
    assert agent.recorder.state == "recording"

    # a matter from the catalogue: the unit acknowledges it and records under it
    code = page.eval_on_selector("#matter-code", "s => s.options[1].value")
    page.select_option("#matter-code", code)
    page.click('#actions button[data-action="matter"]')
    page.wait_for_selector("#confirm[open]")
    page.click("#confirm-ok")
    page.wait_for_selector(f'#toast:has-text("{REAL}: matter succeeded (by alice)")',
                           timeout=5_000)
    assert agent.commands.matter_for_manifest()["code"] == code

    # stop: refused without a reason (nothing sent), then confirmed with one
    page.click('#actions button[data-action="stop"]')
    assert "reason" in page.inner_text("#toast")
    assert agent.recorder.state == "recording"
    page.fill("#stop-reason", "incident over, suspect in custody")
    page.click('#actions button[data-action="stop"]')
    page.wait_for_selector("#confirm[open]")
    assert "suspect in custody" in page.inner_text("#confirm-text")
    page.click("#confirm-ok")
    page.wait_for_selector(f'{_row(REAL)} .rec', state="detached", timeout=10_000)
    wait_for(lambda: agent.recorder.state == "standby")
    # the unit's next state snapshot (sent on the stop) names the matter
    page.wait_for_selector(f'{_row(REAL)} td:has-text("{code}")', timeout=5_000)

    # a forked log, as the station's checkpoint monitor reports it
    backoffice_publish(pki, broker.port, f"bodycam/v1/{UNITS[2]}/alarm",
                       {"device_id": UNITS[2], "kind": "log-fork", "utc": "2026-11-30T02:00:00Z",
                        "detail": "checkpoint of size 9 is not an extension of the held one"},
                       retain=True)
    page.wait_for_selector(f'#alarms .alarm[data-device="{UNITS[2]}"]', timeout=5_000)
    page.wait_for_selector(f'{_row(UNITS[2])} [data-field="alarms"]:has-text("log-fork")',
                           timeout=2_000)
    page.wait_for_selector('#unit-audit li:has-text("stop: incident over")', timeout=10_000)
    _shot(page, tmp_path, "unit-after-stop")

    audit = station.cli("list", "--json")  # the station is still healthy for its own CLI
    assert audit.returncode in (0, 1), audit.stderr
    log = page.evaluate("fetch('/console/api/units/" + REAL + "').then(r => r.json())")
    acts = [(a["user"], a["action"], a["outcome"]) for a in log["audit"]]
    assert ("alice", "start", "sent") in acts and ("alice", "stop", "sent") in acts
    assert ("alice", "matter-ack", "succeeded") in acts
    assert any(a["action"] == "stop" and "suspect in custody" in a["detail"] for a in log["audit"])
    assert shown_s < 2.0


def test_a_viewer_cannot_start_or_stop(browser: Any, station: ConsoleStation,
                                       fleet: dict[str, Any], tmp_path: Path) -> None:
    """A viewer sees the fleet but no actions; the API refuses the viewer's start and stop
    (with a valid session and CSRF token), audits the refusals, and the unit does not move."""
    agent = fleet["agent"]
    page = _page(browser, station, "bob", "bob-password-12")
    page.wait_for_selector(_row(REAL), timeout=15_000)
    page.click(_row(REAL))
    page.wait_for_selector("#unit:not([hidden])")
    assert not page.is_visible('#actions button[data-action="start"]')
    before = agent.recorder.state
    statuses = page.evaluate("""async (dev) => {
        const me = await (await fetch('/console/api/me')).json();
        const out = [];
        for (const [action, body] of [['start', {}], ['stop', {reason: 'viewer tries'}]]) {
            const r = await fetch(`/console/api/units/${dev}/${action}`, {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
                body: JSON.stringify(body)});
            out.push(r.status);
        }
        return out;
    }""", REAL)
    assert statuses == [403, 403]
    assert agent.recorder.state == before
    log = page.evaluate("fetch('/console/api/units/" + REAL + "').then(r => r.json())")
    refused = [a for a in log["audit"] if a["user"] == "bob"]
    assert {a["action"] for a in refused} == {"start", "stop"}
    assert all(a["outcome"] == "refused 403" for a in refused)
    _shot(page, tmp_path, "viewer")


def test_station_info_gives_the_console_url(station: ConsoleStation) -> None:
    """``bodycam station info --json`` names the console's URL (the port it serves on)."""
    r = station.cli("info", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["console_url"] == station.console_url


def test_a_log_fork_seen_by_the_station_monitor_appears_on_the_page(
        browser: Any, station: ConsoleStation, pki: Path, broker: Broker,
        tmp_path: Path) -> None:
    """The station's own checkpoint monitor (not a stand-in) holds an enrolled unit's
    published checkpoints; the unit's key then publishes a rewritten history whose proof
    cannot extend the held one: the monitor's alarm reaches the open page as a banner and in
    the unit's row, and the unit view lists it."""
    from tests.station.conftest import enrol_direct
    from tests.station.harness import SimRecorder
    from tests.station.test_monitor import Device, held_size

    page = _page(browser, station, "alice", "alice-password-1")
    rec = SimRecorder(tmp_path / "dev", FORKED, pki)
    twin = SimRecorder(tmp_path / "twin", FORKED, pki, key=rec.key)
    enrol_direct(station.data_dir, rec)
    device = Device(rec, pki, broker, tmp_path / "dev")
    try:
        seg = rec.seal(b"\x01" * 4096)
        device.publish()
        device.append_and_publish(2)
        page.wait_for_selector(_row(FORKED), timeout=15_000)  # its status and birth
        wait_for(lambda: held_size(station.data_dir, FORKED) == 3)  # the monitor holds it
        with rec.client(station.url) as c:  # the unit offloads one segment: stored, receipted
            c.finalise(FORKED, c.upload_file(FORKED, seg.media), manifest=seg.manifest,
                       entry=seg.entry, leaf_index=seg.index, log=rec.log)
    finally:
        device.close()
    for _ in range(4):
        twin.seal(b"\x00" * 32)
    forked = Device(twin, pki, broker, tmp_path / "twin")
    try:
        forked.published = 3  # a proof from size 3 of another history
        forked.publish()
        page.wait_for_selector(f'#alarms .alarm[data-device="{FORKED}"]', timeout=20_000)
    finally:
        forked.close()
        rec.close()
        twin.close()
    assert "log-fork" in page.inner_text(f'#alarms .alarm[data-device="{FORKED}"]')
    page.wait_for_selector(f'{_row(FORKED)} [data-field="alarms"]:has-text("log-fork")',
                           timeout=2_000)
    page.click(_row(FORKED))
    page.wait_for_selector('#unit-alarms li:has-text("log-fork")', timeout=5_000)
    assert page.locator("#unit-alarms li").count() == 1  # MQTT and index name it once
    row = page.inner_text("#recordings tbody tr")  # the stored segment with its receipt
    assert "signed" in row and "verified at ingest" in row and "4096" in row
    _shot(page, tmp_path, "monitor-fork")


# A 1x1 red PNG: what the agency's tile server answers for every tile here.
_TILE = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                      "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a3a1d1f10000"
                      "000049454e44ae426082")


@pytest.fixture
def tile_server(pki: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTPS tile server on loopback (the station's test certificate) logging each path."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    paths: list[str] = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(_TILE)))
            self.end_headers()
            self.wfile.write(_TILE)

        def log_message(self, *_a: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki / "server.crt"), str(pki / "server.key"))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/tiles/{{z}}/{{x}}/{{y}}.png", paths
    httpd.shutdown()


def test_with_a_tile_server_the_map_draws_the_agencys_tiles(
        browser: Any, pki: Path, broker: Broker, tile_server: tuple[str, list[str]],
        tmp_path: Path) -> None:
    """With ``tile_url`` configured the map is the agency's tiles (fetched by the browser from
    that server, allowed by the page's CSP) under the units, instead of the plain grid."""
    url, paths = tile_server
    st = ConsoleStation(tmp_path / "tiles", pki, broker.port)
    st.root.mkdir()
    st.write_config(tile_url=url)
    st.add_user("alice", "dispatcher", "alice-password-1")
    unit = SimUnit(TILED, pki, broker.port, 31.2290, 121.4720).connect()
    st.start()
    try:
        page = _page(browser, st, "alice", "alice-password-1")
        page.wait_for_selector(_row(TILED), timeout=15_000)  # its retained state: subscribed
        unit.telemetry()
        page.wait_for_selector(f'#map g.unit[data-device="{TILED}"]', timeout=5_000)
        page.wait_for_selector("#map image", state="attached", timeout=5_000)
        assert page.locator("#map line.grid").count() == 0
        hrefs = page.eval_on_selector_all("#map image", "els => els.map(e => e.getAttribute('href'))")
        assert hrefs and all(h.startswith(url.split("{z}")[0]) for h in hrefs)
        wanted = {h[len(url.split("/tiles/")[0]):] for h in hrefs}
        wait_for(lambda: wanted <= set(paths), timeout=10)  # the browser fetched each one
        zooms = {h.split("/")[2] for h in wanted}
        assert len(zooms) == 1 and 10 <= int(zooms.pop()) <= 18  # one zoom, street level
        _shot(page, tmp_path, "tiles")
    finally:
        unit.close()
        st.stop()
