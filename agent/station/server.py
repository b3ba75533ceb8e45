"""The station's HTTPS service (aiohttp): mutual TLS, identity, refusals, expiry, shutdown.

Every ``/v1/devices/<device>/…`` request passes :func:`_identify` first:

* the device id in the URL must be a device id (anything else, ``..`` included, is 404);
* with TLS, the client certificate the agency CA issued must name that device (CN), and if
  the enrolment pinned a TLS key, the certificate must carry that key — otherwise 403;
* the device must be registered (``bodycam station enrol``) — otherwise 403.

Every refusal is answered as JSON ``{"error": code, "message": …}``, recorded in the index's
``events`` (and ``alarms`` for tampering); an unexpected exception is a 500 with the same
shape, never a traceback to the client. SIGTERM/SIGINT stop accepting, let running requests
end (their bodies are fsynced as far as received) and close the index.

Plain HTTP exists only behind ``[station] insecure_http = true``, logged loudly at start: it
has no client identity, so anyone who can reach the port can upload for any registered device.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from cryptography import x509

from agent.evidence.canonical import canonical_json
from agent.evidence.ids import is_device_id
from hw.errors import ConfigError

from .enrolment import Enrolment, spki_sha256
from .finalise import api_routes
from .refusal import Refused
from .rotation_endpoint import rotation_routes
from .service import StationService, utc_now
from .tus import TUS_VERSION, tus_routes
from .witness_endpoint import StationWitness, load_witness_cosigner, witness_routes

__all__ = ["build_app", "serve", "ssl_context"]

log = logging.getLogger("bodycam.station")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ssl_context(cafile: str, certfile: str, keyfile: str) -> ssl.SSLContext:
    """Server TLS that requires a client certificate from the agency CA."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cafile)
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the station's TLS files ({exc})", key="tls") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _common_name(peercert: Any) -> str | None:
    if not isinstance(peercert, dict):
        return None
    names = [v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"]
    return names[0] if len(names) == 1 else None


async def _identify(svc: StationService, request: web.Request, device_id: str) -> Enrolment:
    if not is_device_id(device_id):
        raise Refused(404, "bad-device-id", "not a device id")
    if not svc.cfg.station.insecure_http:
        cn = _common_name(request.transport.get_extra_info("peercert")
                          if request.transport else None)
        if cn != device_id:
            raise Refused(403, "identity-mismatch", f"the client certificate names "
                          f"{str(cn)[:64]!r}, not {device_id}")
    device = await svc.db(svc.index.device, device_id)
    if device is None:
        raise Refused(403, "unregistered", f"device {device_id} is not enrolled at this station")
    if device.tls_key_sha256 and not svc.cfg.station.insecure_http:
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        pin = spki_sha256(x509.load_der_x509_certificate(der).public_key()) if der else None
        if pin != device.tls_key_sha256:
            raise Refused(403, "tls-key-mismatch", "the client certificate carries another key "
                          "than the one enrolled for this device")
    return device


def _error(exc: Refused) -> web.Response:
    headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **exc.headers}
    if exc.status == 412:
        headers["Tus-Version"] = TUS_VERSION
    body = canonical_json({"error": exc.code, "message": exc.message}) + b"\n"
    return web.Response(status=exc.status, body=body, headers=headers,
                        content_type="application/json")


def build_app(svc: StationService) -> web.Application:
    """The aiohttp application of one station process."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        device_id = request.match_info.get("device_id")
        known = device_id if device_id is not None and is_device_id(device_id) else None
        try:
            if device_id is not None:
                request["device"] = await _identify(svc, request, device_id)
            return await handler(request)
        except Refused as exc:
            await svc.refused(known, exc)
            return _error(exc)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            return _error(Refused(500, "internal", "internal error; nothing was stored"))

    app = web.Application(middlewares=[guard])
    app.add_routes([*tus_routes(svc), *api_routes(svc), *rotation_routes(svc)])
    witness = StationWitness(svc, load_witness_cosigner(svc.data_dir, svc.station_id))
    app.add_routes(witness_routes(witness))
    if svc.cfg.mqtt.enabled:  # the checkpoint monitor (agent/station/monitor.py)
        from .monitor import monitor_context  # only a station watching MQTT needs paho

        app.cleanup_ctx.append(monitor_context(svc, witness.listeners))
        if svc.cfg.group.enabled:  # group activation (agent/station/group.py)
            from .group import group_context

            app.cleanup_ctx.append(group_context(svc))
    app.cleanup_ctx.append(_expiry(svc))
    return app


def _expiry(svc: StationService) -> Callable[[web.Application], Any]:
    async def ctx(app: web.Application) -> Any:
        task = asyncio.create_task(_expire_loop(svc))
        yield
        task.cancel()
    return ctx


async def _expire_loop(svc: StationService) -> None:
    limits = svc.cfg.limits
    while True:
        await asyncio.sleep(limits.expiry_check_s)
        try:
            await svc.db(expire_idle, svc, time.time() - limits.idle_expiry_s)
        except Exception:  # the loop must outlive one bad pass
            log.exception("idle-upload expiry pass failed")


def expire_idle(svc: StationService, before: float) -> int:
    """Quarantine uploads idle since ``before`` (never one being written); how many."""
    n = 0
    for row in svc.index.idle_uploads(before):
        try:
            with svc.incoming.writer(row.upload_id):
                if not svc.index.move_upload(row.upload_id, "open", "expired", time.time()):
                    continue
                where = svc.incoming.quarantine(row.upload_id)
        except Refused:
            continue  # being written (busy) or already gone
        svc.index.event(utc_now(), row.device_id, "upload-expired",
                        f"upload {row.upload_id} idle; partial bytes kept at {where}")
        log.warning("upload %s of %s expired; partial bytes quarantined at %s", row.upload_id,
                    row.device_id, where)
        n += 1
    return n


async def serve(svc: StationService, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT; ``on_ready`` gets the base URL once listening."""
    st = svc.cfg.station
    ctx = None
    if st.insecure_http:
        log.warning("!!! PLAIN HTTP, NO CLIENT IDENTITY: [station] insecure_http = true. Anyone "
                    "who reaches this port can upload for any enrolled device. Lab use only !!!")
    else:
        ctx = ssl_context(svc.cfg.tls.cafile, svc.cfg.tls.certfile, svc.cfg.tls.keyfile)
    runner = web.AppRunner(build_app(svc), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, st.listen, st.port, ssl_context=ctx, shutdown_timeout=10.0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"{'http' if ctx is None else 'https'}://{host}:{port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("station %s listening on %s (store %s, index %s)", svc.station_id, url,
             svc.store.root, "postgresql" if st.database else "sqlite")
    console = None
    if svc.cfg.console.enabled:
        from .console.listener import start_console  # only a station with a console needs it

        console = await start_console(svc)
        print(f"bodycam station: console on {console.url}", flush=True)
    if on_ready:
        on_ready(url)
    try:
        await stop.wait()
        log.info("station stopping: finishing requests in flight")
    finally:
        if console is not None:
            await console.stop()
        await runner.cleanup()
