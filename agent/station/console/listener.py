"""The console's own listener beside the device port, and its running parts.

Devices reach the station over mutual TLS (a client certificate is required at the
handshake); a browser has none, so the console listens on ``[console] port`` with the same
server certificate and no client-certificate request. Identity there is the user's sign-in.
With ``[station] insecure_http`` (lab benches) the console is plain HTTP too and its cookie
loses the Secure flag — loudly logged like the device port.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from aiohttp import web

from agent.matters.catalogue import MatterCatalogue
from hw.errors import ConfigError

from ..service import StationService, utc_now
from .accounts import Accounts, LoginLimiter
from .actions import Dispatcher
from .feed import Feed
from .stream import Hub, sse
from .web import Console, console_app

__all__ = ["RunningConsole", "start_console"]

log = logging.getLogger("bodycam.station.console")


def _server_tls(svc: StationService) -> ssl.SSLContext:
    tls = svc.cfg.tls
    try:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls.certfile, tls.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the station's TLS files ({exc})", key="tls") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_NONE  # browsers: the user signs in instead
    return ctx


@dataclass
class RunningConsole:
    """The console's listener, MQTT feed and flush task, stopped together."""

    url: str
    runner: web.AppRunner
    feed: Feed
    hub: Hub
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Close the pages, the listener and the MQTT connection."""
        self.hub.close()
        self.task.cancel()
        await self.runner.cleanup()
        await asyncio.to_thread(self.feed.stop)


async def start_console(svc: StationService) -> RunningConsole:
    """Start the console for a station that has ``[console] enabled = true``."""
    cfg = svc.cfg.console
    loop = asyncio.get_running_loop()
    catalogue = MatterCatalogue.load()
    holder: list[Dispatcher] = []

    def on_ack(doc: dict[str, object], _device: str) -> None:
        if holder and isinstance(doc.get("id"), str) and doc["id"] in holder[0].pending:
            loop.run_in_executor(None, _finish_ack, holder[0], hub, loop, doc)

    hub = Hub(on_ack=on_ack)
    feed = Feed(cfg if cfg.broker else svc.cfg.mqtt, loop, hub.ingest)
    dispatcher = Dispatcher(svc.index, feed.publish, catalogue, utc_now)
    holder.append(dispatcher)
    console = Console(svc, Accounts(svc.index, session_s=cfg.session_s), LoginLimiter(), hub,
                      dispatcher, catalogue, cfg.tile_url,
                      secure_cookie=not svc.cfg.station.insecure_http,
                      broker_connected=feed.connected.is_set)
    ctx = None if svc.cfg.station.insecure_http else _server_tls(svc)
    if ctx is None:
        log.warning("!!! CONSOLE OVER PLAIN HTTP: [station] insecure_http = true. Passwords "
                    "and session cookies cross the network in clear. Lab use only !!!")
    feed.start()
    runner = web.AppRunner(console_app(console), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, svc.cfg.station.listen, cfg.port, ssl_context=ctx,
                       shutdown_timeout=2.0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"{'http' if ctx is None else 'https'}://{host}:{port}/console/"
    log.info("console on %s (broker %s:%d)", url, feed.address.host, feed.address.port)
    return RunningConsole(url, runner, feed, hub, asyncio.create_task(hub.run()))


def _finish_ack(d: Dispatcher, hub: Hub, loop: asyncio.AbstractEventLoop,
                doc: dict[str, object]) -> None:
    done = d.acknowledged(dict(doc))
    if done is not None:
        user, device, name, status = done
        msg = sse("ack", {"user": user, "device_id": device, "command": name,
                          "status": status, "reason": doc.get("reason")})
        loop.call_soon_threadsafe(hub.broadcast, msg)
