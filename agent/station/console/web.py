"""The console's HTTP surface under ``/console/``: page, sign-in, fleet API, SSE, actions.

Security rules, each enforced here for every route:

* every ``/console/api/`` route except ``login`` needs a live session (cookie ``bc_session``:
  HttpOnly, Secure, SameSite=Strict, Path=/console/);
* every state-changing request (POST) must come from the console's own origin (``Origin``
  header) and, once signed in, carry the session's CSRF token in ``X-CSRF-Token``;
* sign-in is rate-limited per user name and per address (:class:`~.accounts.LoginLimiter`);
* every sign-in, sign-out, action and refusal of an action is in the index's audit table;
* responses carry a strict Content-Security-Policy: the page loads nothing from elsewhere
  (map tiles from the configured tile server are the one exception).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web

from agent.matters.catalogue import MatterCatalogue
from agent.sync.topics import check_device_id
from hw.errors import ConfigError

from ..service import StationService, utc_now
from .accounts import Accounts, LoginLimiter, Session, may_act
from .actions import Dispatcher, Refusal
from .stream import Hub

__all__ = ["COOKIE", "Console", "console_app"]

log = logging.getLogger("bodycam.station.console")

COOKIE: Final = "bc_session"
STATIC: Final = Path(__file__).parent / "static"
_STATIC_FILES: Final = {"console.js": "text/javascript", "console.css": "text/css",
                        "map.js": "text/javascript", "charts.js": "text/javascript"}
_MAX_BODY: Final = 16 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Console:
    """Everything the console's handlers use."""

    svc: StationService
    accounts: Accounts
    limiter: LoginLimiter
    hub: Hub
    dispatcher: Dispatcher
    catalogue: MatterCatalogue
    tile_url: str
    secure_cookie: bool = True
    # Whether the console's MQTT feed is connected: while it is not, every action fails with
    # 503 "not connected", so the page and scripts can say so before a dispatcher tries.
    broker_connected: Callable[[], bool] = lambda: False


def _address(request: web.Request) -> str:
    return request.remote or "-"


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             headers={"Cache-Control": "no-store"})


def _csp(tile_url: str) -> str:
    img = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url)
        img += f" {parts.scheme}://{parts.netloc}"
    return (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def console_app(c: Console) -> web.Application:
    """The ``/console/`` application."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.method not in ("GET", "HEAD"):
                _same_origin(request)
            if request.path.startswith("/console/api/") and request.path != "/console/api/login":
                session = await _session(c, request)
                if session is None:
                    return _json_error(401, "not signed in")
                request["session"] = session
                if request.method not in ("GET", "HEAD"):
                    token = request.headers.get("X-CSRF-Token", "")
                    if not hmac.compare_digest(token.encode(), session.csrf.encode()):
                        return _json_error(403, "missing or wrong CSRF token")
            resp = await handler(request)
        except Refusal as exc:
            resp = _json_error(exc.status, exc.message)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("console: internal error on %s %s", request.method, request.path)
            resp = _json_error(500, "internal error")
        if not resp.prepared:
            resp.headers.setdefault("Content-Security-Policy", _csp(c.tile_url))
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            resp.headers.setdefault("Referrer-Policy", "no-referrer")
            resp.headers.setdefault("X-Frame-Options", "DENY")
            if c.secure_cookie:
                resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return resp

    h = _Handlers(c)
    app = web.Application(middlewares=[guard], client_max_size=_MAX_BODY)
    app.add_routes([
        web.get("/console", h.redirect), web.get("/console/", h.page),
        web.get("/console/static/{name}", h.static),
        web.post("/console/api/login", h.login), web.post("/console/api/logout", h.logout),
        web.get("/console/api/me", h.me), web.get("/console/api/fleet", h.fleet),
        web.get("/console/api/matters", h.matters), web.get("/console/api/tracks", h.tracks),
        web.get("/console/api/units/{device_id}", h.unit),
        web.post("/console/api/units/{device_id}/{action}", h.act),
        web.get("/console/api/stream", h.stream),
    ])
    return app


def _same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    own = f"{request.scheme}://{request.host}"
    if origin is None or origin != own:
        raise Refusal(403, "cross-origin request refused")


async def _session(c: Console, request: web.Request) -> Session | None:
    token = request.cookies.get(COOKIE, "")
    return await c.svc.db(c.accounts.session, token) if token else None


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Refusal(415, "send application/json")
    try:
        doc = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "not JSON") from None
    if not isinstance(doc, dict):
        raise Refusal(400, "a JSON object is expected")
    return doc


class _Handlers:
    def __init__(self, c: Console) -> None:
        self.c = c

    async def redirect(self, _r: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    async def page(self, _r: web.Request) -> web.StreamResponse:
        return web.Response(body=(STATIC / "index.html").read_bytes(),
                            content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = _STATIC_FILES.get(name)
        if kind is None:
            raise Refusal(404, "no such file")
        return web.Response(body=(STATIC / name).read_bytes(), content_type=kind,
                            charset="utf-8", headers={"Cache-Control": "no-cache"})

    async def login(self, request: web.Request) -> web.StreamResponse:
        c, address = self.c, _address(request)
        body = await _body(request)
        user, password = body.get("username"), body.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or len(user) > 64 \
                or len(password) > 1024:
            raise Refusal(400, "username and password are needed")
        wait = c.limiter.retry_after(user, address, time.monotonic())
        if wait > 0:
            await c.svc.db(_audit, c, user, address, "sign-in", "too many failed attempts",
                           "refused 429")
            return web.json_response({"error": "too many failed attempts; wait"}, status=429,
                                     headers={"Retry-After": str(int(wait) + 1)})
        found = await c.svc.db(c.accounts.sign_in, user, password, address)
        if found is None:
            c.limiter.failed(user, address, time.monotonic())
            await c.svc.db(_audit, c, user, address, "sign-in", "wrong user name or password",
                           "refused 401")
            return _json_error(401, "wrong user name or password")
        c.limiter.succeeded(user)
        token, session = found
        await c.svc.db(_audit, c, user, address, "sign-in", f"role {session.role}", "ok")
        resp = web.json_response(self._me(session), headers={"Cache-Control": "no-store"})
        resp.set_cookie(COOKIE, token, path="/console/", httponly=True, secure=c.secure_cookie,
                        samesite="Strict", max_age=int(c.accounts.session_s))
        return resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session: Session = request["session"]
        await self.c.svc.db(self.c.accounts.sign_out, request.cookies.get(COOKIE, ""))
        await self.c.svc.db(_audit, self.c, session.username, _address(request), "sign-out",
                            "", "ok")
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/console/")
        return resp

    def _me(self, s: Session) -> dict[str, Any]:
        return {"username": s.username, "role": s.role, "csrf": s.csrf,
                "may_act": may_act(s.role), "tile_url": self.c.tile_url,
                "expires": s.expires, "broker_connected": self.c.broker_connected()}

    async def me(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._me(request["session"]),
                                 headers={"Cache-Control": "no-store"})

    async def fleet(self, _r: web.Request) -> web.StreamResponse:
        return web.json_response(self.c.hub.fleet.rows(time.time()),
                                 headers={"Cache-Control": "no-store"})

    async def tracks(self, _r: web.Request) -> web.StreamResponse:
        return web.json_response(self.c.hub.fleet.tracks(time.time()),
                                 headers={"Cache-Control": "no-store"})

    async def matters(self, _r: web.Request) -> web.StreamResponse:
        return web.json_response([{"code": m.code, "name": m.name_en, "name_zh": m.name_zh}
                                  for m in self.c.catalogue])

    async def unit(self, request: web.Request) -> web.StreamResponse:
        device_id = request.match_info["device_id"]
        try:
            check_device_id(device_id)  # the topic rule: any id a unit can publish under
        except ConfigError:
            raise Refusal(404, "not a device id") from None
        unit = self.c.hub.fleet.units.get(device_id)
        doc: dict[str, Any] = unit.detail(time.time()) if unit else {"device_id": device_id}
        doc.update(await self.c.svc.db(_station_records, self.c.svc, device_id))
        return web.json_response(doc, headers={"Cache-Control": "no-store"})

    async def act(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        result = await self.c.svc.db(self.c.dispatcher.act, request["session"],
                                     _address(request), request.match_info["device_id"],
                                     request.match_info["action"], body)
        return web.json_response(result, headers={"Cache-Control": "no-store"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        session: Session = request["session"]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q = self.c.hub.subscribe()
        try:
            while time.time() < session.expires:
                try:
                    msg = await asyncio.wait_for(q.get(), 15.0)
                except TimeoutError:  # quiet: is the sign-in still good (sign-out, role)?
                    if await _session(self.c, request) != session:
                        break
                    msg = b": keep-alive\n\n"
                if msg is None:
                    break
                await resp.write(msg)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.c.hub.unsubscribe(q)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp


def _audit(c: Console, user: str, address: str, action: str, detail: str,  # noqa: PLR0917 -- one row
           outcome: str) -> None:
    c.svc.index.audit(utc_now(), user, action, address=address, device_id=None, detail=detail,
                      outcome=outcome)


def _station_records(svc: StationService, device_id: str) -> dict[str, Any]:
    """The unit's stored recordings with their receipts, station alarms and console audit."""
    recordings = []
    for s in svc.index.segments():
        if s.device_id != device_id:
            continue
        media = svc.store.root / s.device_id / s.path
        try:
            receipt = json.loads(s.receipt)
        except ValueError:
            receipt = None
        recordings.append({
            "device_seq": s.device_seq, "recording_id": s.recording_id, "seq": s.seq,
            "bytes": s.cipher_bytes, "stored_utc": s.stored_utc,
            "cipher_sha256": s.cipher_sha256, "receipt": receipt,
            "state": "verified at ingest, receipt signed" if media.is_file()
            else "missing from store"})
    alarms = [{"at": a[0], "kind": a[2], "detail": a[3]} for a in svc.index.alarms()
              if a[1] == device_id]
    audit = [{"at": r[0], "user": r[1], "action": r[3], "detail": r[5], "outcome": r[6]}
             for r in svc.index.audit_log(device_id, 50)]
    return {"recordings": recordings[-200:], "station_alarms": alarms[-50:], "audit": audit}
