"""``POST /v1/devices/<device>/key-rotation``: a device hands over a key rotation from its log.

After ``bodycam keys init --rotate`` (or :meth:`EvidenceStore.rotate_key`) the device signs
manifests and checkpoints with a key the station never enrolled; until the station takes the
rotation, every upload signed by the new key is refused and the device never gets another
receipt. The device therefore presents each ``key_rotation`` entry of its log (docs/
STATION-API.md §4b) before its segments::

    {"entry": "<base64 of the entry's exact canonical bytes>",
     "leaf_index": r, "inclusion": [...], "checkpoint": "<signed note>",
     "consistency": {"old_size", "new_size", "hashes"}}          (the position: optional)

Who may present: the device itself, identified like every device endpoint (:mod:`.server`:
client certificate naming the device, pinned TLS key, enrolled). What authorises the new key
is not the caller but the endorsement by a key the device already has (:mod:`.devicekeys`):
a stolen TLS identity cannot add a key the device's evidence key did not endorse.

Steps: parse the body (400), check the entry (422: ``bad-rotation``, ``unknown-old-key``,
``unendorsed-rotation``, ``forged-endorsement`` and ``retired-old-key`` -- the last two
alarms: someone signs with a key that is not, or no longer, the device's), check the position
if the body carries one (:mod:`.rotation_position`: 422 ``bad-checkpoint``, ``not-in-log``;
409 ``stale-log-state``, ``log-inconsistent`` -- an alarm), then append the act to the
station's custody log (:mod:`.stationlog`) *before* the index learns the key (a rotation that
cannot be logged adds nothing: 500 ``custody-log-failed``), store the key (``INSERT … ON
CONFLICT DO NOTHING``) and record a ``key-rotation`` event; a proven position is stored once
(``rotation_positions``, a ``key-rotation-position`` event), also for a key the station took
before without one. From then on the old key signs nothing after the rotation
(:mod:`.keyspans`). 201 when the key was added, 200 when the device already had it --
presenting a rotation again is no error.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
from typing import Any

from aiohttp import web

from agent.evidence.canonical import canonical_json, parse_canonical
from agent.evidence.keys import fingerprint
from hw.errors import EvidenceError

from .devicekeys import MAX_ROTATION_ENTRY_BYTES, Successor, check_rotation
from .finalise import read_body
from .refusal import Refused
from .rotation_position import Position, check_position, parse_position
from .service import StationService, utc_now

__all__ = ["CUSTODY_KIND", "MAX_ROTATION_BODY", "parse_presentation", "rotation_routes",
           "take_rotation"]

log = logging.getLogger("bodycam.station")

#: The body: a small JSON object around one entry of at most MAX_ROTATION_ENTRY_BYTES.
MAX_ROTATION_BODY = 2 * MAX_ROTATION_ENTRY_BYTES
#: The kind of the station log's entry recording a key the station took.
CUSTODY_KIND = "device-key-rotation"


def parse_presentation(body: bytes) -> tuple[bytes, Position | None]:
    """The entry bytes a presentation carries and its position, if it has one; 400
    ``bad-request`` naming what is wrong."""
    try:
        doc = parse_canonical(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, "bad-request", f"the body is not JSON ({exc})") from None
    value = doc.get("entry") if isinstance(doc, dict) else None
    if not isinstance(value, str) or not value:
        raise Refused(400, "bad-request", "the body must be {\"entry\": \"<base64 of the "
                      "key_rotation entry's bytes>\"}")
    try:
        entry = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "bad-request", "'entry' is not base64") from None
    return entry, parse_position(doc)


def take_rotation(svc: StationService, device_id: str, successor: Successor, *,
                  via: str = "device", log_index: int | None = None) -> bool:
    """Log and store a checked successor key (blocking); True if this call added it. ``via``
    says who presented it: ``device`` (the endpoint) or the person at ``bodycam station
    keys``; ``log_index`` is the rotation's proven position, stored once."""
    added = _take_key(svc, device_id, successor, via, log_index)
    if log_index is not None:
        utc = utc_now()
        if svc.index.add_rotation_position(device_id, successor.fingerprint, log_index, utc):
            svc.index.event(utc, device_id, "key-rotation-position",
                            f"the rotation to key {successor.fingerprint} is at log entry "
                            f"{log_index} (proven): key {successor.endorsed_by} signs nothing "
                            "after it")
    return added


def _take_key(svc: StationService, device_id: str, successor: Successor, via: str,
              log_index: int | None) -> bool:
    if successor.known:
        return False
    utc = utc_now()
    try:
        svc.custody_log.append(CUSTODY_KIND, {
            "device_id": device_id, "old_fingerprint": successor.endorsed_by,
            "new_fingerprint": successor.fingerprint, "new_key": successor.public_b64,
            "entry": successor.entry.decode("utf-8"),
            "entry_sha256": hashlib.sha256(successor.entry).hexdigest(), "via": via,
            "log_index": log_index, "utc": utc})
    except (EvidenceError, OSError) as exc:
        raise Refused(500, "custody-log-failed", f"the station's custody log could not record "
                      f"the rotation ({exc}); nothing was added, retry later") from None
    added = svc.index.add_device_key(device_id, successor, utc)
    if added:
        svc.index.event(utc, device_id, "key-rotation",
                        f"key {successor.fingerprint} endorsed by key {successor.endorsed_by} "
                        f"taken (via {via}): the device's evidence signed by it now verifies")
        log.info("device %s rotated to key %s (endorsed by %s)", device_id,
                 successor.fingerprint[:16], successor.endorsed_by[:16])
    return added


async def present(svc: StationService, request: web.Request) -> web.Response:
    """The handler (module docstring); the device was identified before it runs."""
    device = request["device"]
    body = await read_body(request, MAX_ROTATION_BODY, svc.cfg.limits.body_timeout_s)
    entry, position = parse_presentation(body)
    successor = check_rotation(entry, device.keys)
    log_index = None
    if position is not None:
        held = await svc.db(svc.index.checkpoint, device.device_id)
        log_index = check_position(position, entry, successor, device, held)
    added = await svc.db(functools.partial(take_rotation, log_index=log_index), svc,
                         device.device_id, successor)
    keys = [*device.keys, successor.public_key] if added else list(device.keys)
    stored = await svc.db(svc.index.rotation_positions, device.device_id)
    answer: dict[str, Any] = {"device_id": device.device_id, "added": added,
                              "fingerprint": successor.fingerprint,
                              "endorsed_by": successor.endorsed_by,
                              "keys": [fingerprint(k) for k in keys],
                              "log_index": stored.get(successor.fingerprint)}
    return web.Response(status=201 if added else 200, body=canonical_json(answer) + b"\n",
                        content_type="application/json")


def rotation_routes(svc: StationService) -> list[Any]:
    """The aiohttp route of the endpoint."""
    async def handler(request: web.Request) -> web.Response:
        return await present(svc, request)

    return [web.post("/v1/devices/{device_id}/key-rotation", handler)]
