"""The console's HTTP rules from outside a browser (a client that ignores what a browser
enforces): cookie flags, origin and CSRF checks, the sign-in limit, and what a viewer may
send."""

from __future__ import annotations

import http.cookiejar
import json
import sqlite3
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agent.testing import wait_for
from tests.console.conftest import TILED
from tests.console.harness import ConsoleStation


class Client:
    """An HTTPS client with a cookie jar, trusting the agency CA."""

    def __init__(self, station: ConsoleStation, pki: Path) -> None:
        self.origin = station.console_url.rsplit("/console/", 1)[0]
        self.jar = http.cookiejar.CookieJar()
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                                  urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, path: str, body: Any = None, **headers: str) -> tuple[int, Any, Any]:
        data = None if body is None else json.dumps(body).encode()
        h = {"Content-Type": "application/json", **headers} if data is not None else headers
        req = urllib.request.Request(self.origin + path, data, h)
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null"), r.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw.startswith(b"{") else raw, e.headers

    def sign_in(self, user: str, password: str) -> tuple[int, Any, Any]:
        return self.call("/console/api/login", {"username": user, "password": password},
                         Origin=self.origin)


def test_cookie_is_httponly_secure_strict_and_posts_need_origin_and_csrf(
        station: ConsoleStation, pki: Path) -> None:
    """The session cookie carries HttpOnly, Secure and SameSite=Strict; a POST from another
    origin, without an origin, or without the session's CSRF token is refused 403 even with
    a valid cookie; nothing is readable without signing in."""
    c = Client(station, pki)
    assert c.call("/console/api/fleet")[0] == 401
    assert c.call("/console/api/login", {"username": "alice", "password": "alice-password-1"},
                  Origin="https://evil.example")[0] == 403
    status, me, headers = c.sign_in("alice", "alice-password-1")
    assert status == 200
    cookie = headers["Set-Cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/console/"):
        assert flag in cookie
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert c.call("/console/api/fleet")[0] == 200
    bookmark = "/console/api/units/BC-NOWHERE/bookmark"
    assert c.call(bookmark, {"label": "x"}, Origin=c.origin)[0] == 403  # no CSRF token
    assert c.call(bookmark, {"label": "x"}, Origin=c.origin, **{"X-CSRF-Token": "forged"})[0] \
        == 403
    assert c.call(bookmark, {"label": "x"}, **{"X-CSRF-Token": me["csrf"]})[0] == 403  # no Origin
    assert c.call(bookmark, {"label": "x"}, Origin="https://evil.example",
                  **{"X-CSRF-Token": me["csrf"]})[0] == 403
    status, _, _ = c.call("/console/api/logout", {}, Origin=c.origin,
                          **{"X-CSRF-Token": me["csrf"]})
    assert status == 200
    assert c.call("/console/api/fleet")[0] == 401


def test_sign_in_is_limited_per_user_and_audited(station: ConsoleStation, pki: Path) -> None:
    """After five wrong passwords for one name, even the right one is answered 429 with
    Retry-After for the rest of the window; the refusals are in the audit table."""
    c = Client(station, pki)
    for _ in range(5):
        assert c.sign_in("carol", "not-her-password")[0] == 401
    status, _, headers = c.sign_in("carol", "carol-password-1")
    assert status == 429 and int(headers["Retry-After"]) > 0
    db = sqlite3.connect(station.data_dir / "index.sqlite")
    try:
        rows = db.execute("SELECT outcome FROM console_audit WHERE username = 'carol' AND "
                          "action = 'sign-in'").fetchall()
    finally:
        db.close()
    assert [r[0] for r in rows] == ["refused 401"] * 5 + ["refused 429"]


def test_malformed_requests_get_a_clear_refusal_never_a_500(station: ConsoleStation,
                                                            pki: Path) -> None:
    """Odd ids, bodies that are not JSON objects, oversized bodies and unknown actions are
    each refused with a 4xx and a JSON reason."""
    c = Client(station, pki)
    status, me, _ = c.sign_in("alice", "alice-password-1")
    assert status == 200
    ok = {"Origin": c.origin, "X-CSRF-Token": me["csrf"]}
    assert c.call("/console/api/units/bad%20id")[0] == 404
    assert c.call("/console/api/units/" + "x" * 65)[0] == 404
    assert c.call("/console/api/units/BC-CON-2/delete", {}, **ok)[0] == 404
    assert c.call("/console/api/units/BC-CON-2/bookmark", [1, 2], **ok)[0] == 400
    assert c.call("/console/api/units/BC-CON-2/bookmark", {"label": "x" * 50_000}, **ok)[0] \
        == 413
    req = urllib.request.Request(c.origin + "/console/api/units/BC-CON-2/start", b"start",
                                 {"Content-Type": "text/plain", **ok})
    try:
        c.opener.open(req, timeout=10)
        raise AssertionError("a text/plain action was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 415
    status, body, _ = c.call("/console/api/login", {"username": ["a"], "password": 1},
                             Origin=c.origin)
    assert status == 400 and "error" in body


def test_a_command_the_broker_refuses_is_reported_not_sent(pki: Path, broker: Any,
                                                           tmp_path: Path) -> None:
    """A console wrongly given a unit's certificate (not a back-office identity) cannot write
    ``cmd/``: the broker's PUBACK reason code is surfaced as 503 "not sent", and the audit says
    so, instead of the dispatcher believing the unit was told."""
    st = ConsoleStation(tmp_path, pki, broker.port)
    conf = st.write_config()
    conf.write_text(conf.read_text().replace("backoffice.crt", f"{TILED}.crt")
                    .replace("backoffice.key", f"{TILED}.key"))
    st.add_user("alice", "dispatcher", "alice-password-1")
    st.start()
    try:
        c = Client(st, pki)
        status, me, _ = c.sign_in("alice", "alice-password-1")
        assert status == 200
        # the refusal to test is the broker's, not "not connected yet" (a loaded machine)
        wait_for(lambda: c.call("/console/api/me")[1]["broker_connected"], timeout=20)
        status, body, _ = c.call("/console/api/units/BC-CON-2/start", {}, Origin=c.origin,
                                 **{"X-CSRF-Token": me["csrf"]})
        assert status == 503 and "refused" in body["error"]
    finally:
        st.stop()
    db = sqlite3.connect(st.data_dir / "index.sqlite")
    try:
        (outcome,) = db.execute("SELECT outcome FROM console_audit WHERE action = 'start'"
                                ).fetchone()
    finally:
        db.close()
    assert outcome.startswith("not sent: the broker refused")
