"""The fleet console: a browser view of the fleet served by the collection station.

Parts, one job each:

* :mod:`.passwords` — memory-hard password hashes (scrypt);
* :mod:`.accounts` — users and roles, sign-in with rate limits, server-side sessions;
* :mod:`.fleetstate` — the latest state of every unit and its bounded history, from MQTT;
* :mod:`.feed` — the back-office MQTT connection: subscribe, fold, publish commands;
* :mod:`.actions` — what a dispatcher may ask a unit to do, as audited MQTT commands;
* :mod:`.web` — the aiohttp routes, Server-Sent Events and static page under ``/console/``;
* :mod:`.listener` — the HTTPS listener beside the device port (browsers have no client
  certificate, so the mutual-TLS port cannot serve them).
"""

from __future__ import annotations

__all__: list[str] = []
