"""Finalising a segment: verify everything, store it once, answer with the signed receipt.

``POST /v1/devices/<device>/segments`` (docs/STATION-API.md §4). Steps, in order; a failure
at any step answers a refusal and promises nothing:

1. parse the request and run :func:`.ingest.check_segment` (signatures, shape, entry,
   inclusion) against the device's keys (enrolled, and endorsed successors);
2. a segment already stored under ``(device, device_seq)`` with other hashes is a conflict
   (409, alarm); with the same hashes the request carries on and ends idempotently;
3. lock the upload (no PATCH may run meanwhile), check it is complete, hash its bytes from
   disk and compare with the hash computed while receiving and with the manifest;
4. check consistency with the held checkpoint and advance it (compare-and-swap);
5. place the bytes and the manifest in the write-once store (fsynced);
6. insert the segment row *with* a freshly signed receipt (``ON CONFLICT DO NOTHING``) and
   answer whichever receipt the index holds — so every caller, on any station process, gets
   the same receipt for the same segment;
7. only then mark the upload stored and drop its partial name.

``PUT /v1/devices/<device>/segments/<device_seq>/c2pa`` (§4a) then hands over the segment's
device-signed C2PA credential, if the device has one (:mod:`.segmentcredential`); receipts and
finalise answers carry the segment's credential state (``c2pa``: valid, invalid, absent).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from typing import Any

from aiohttp import web

from agent.evidence.canonical import canonical_json
from agent.evidence.receipt import issue_receipt
from hw.errors import StorageFull

from .index import ABSENT_CREDENTIAL, CheckpointRow, CredentialRow, SegmentRow
from .ingest import (
    MAX_FINALISE_BYTES,
    MAX_SIDECAR_BYTES,
    Verified,
    check_cipher,
    check_consistency,
    check_segment,
    parse_finalise,
)
from .proofkeep import keep_consistency, keep_inclusion
from .refusal import Refused
from .segmentcredential import accept_credential, record_too_large
from .service import StationService, utc_now
from .uploads import sha256_file

__all__ = ["api_routes"]


def _json(status: int, doc: Any) -> web.Response:
    return web.Response(status=status, body=canonical_json(doc) + b"\n",
                        content_type="application/json")


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, refused (413) past ``limit`` bytes or (408) past ``timeout``."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Refused(413, "too-large", f"the body is larger than {limit} bytes")
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(1 << 16):
                buf += chunk
                if len(buf) > limit:
                    raise Refused(413, "too-large", f"the body is larger than {limit} bytes")
    except TimeoutError:
        raise Refused(408, "body-timeout", "the request body took too long") from None
    return bytes(buf)


class ApiHandlers:
    """The JSON endpoints: finalise, log state, receipts, station info."""

    def __init__(self, svc: StationService) -> None:
        self.svc = svc

    async def station(self, request: web.Request) -> web.Response:
        """Who this station is: id and receipt key (what a device is configured to trust)."""
        return _json(200, {"station_id": self.svc.station_id,
                           "receipt_key": self.svc.receipt_key})

    async def log_state(self, request: web.Request) -> web.Response:
        """The newest checkpoint the station holds for the device (size 0 if none)."""
        held = await self.svc.db(self.svc.index.checkpoint, request.match_info["device_id"])
        return _json(200, {"size": held.size if held else 0, "root": held.root if held else None,
                           "checkpoint": held.note if held else None})

    async def _stored(self, request: web.Request) -> SegmentRow:
        seq = request.match_info["device_seq"]
        if not seq.isdigit() or len(seq) > 19:
            raise Refused(404, "no-such-segment", "device_seq must be a non-negative integer")
        row = await self.svc.db(self.svc.index.segment, request.match_info["device_id"], int(seq))
        if row is None:
            raise Refused(404, "no-such-segment", "the station holds no such segment")
        return row

    async def receipt(self, request: web.Request) -> web.Response:
        """A stored segment's receipt, fetched again, with its credential state."""
        row = await self._stored(request)
        return _json(200, await self._answer(row))

    async def _answer(self, row: SegmentRow) -> dict[str, Any]:
        held = await self.svc.db(self.svc.index.credential, row.device_id, row.device_seq)
        return _answer(row, held)

    async def credential(self, request: web.Request) -> web.Response:
        """A stored segment's device C2PA credential (§4a): checked, kept, its state indexed."""
        svc = self.svc
        row = await self._stored(request)
        if await svc.db(svc.index.deleted, row.device_id, row.device_seq):
            raise Refused(410, "segment-gone", f"device_seq {row.device_seq} was deleted at the "
                          "end of retention: there is nothing to attach a credential to")
        try:
            body = await read_body(request, MAX_SIDECAR_BYTES, svc.cfg.limits.body_timeout_s)
        except Refused as exc:
            if exc.status == 413:
                await svc.db(record_too_large, svc, row, request.content_length,
                             MAX_SIDECAR_BYTES)
                raise Refused(413, "c2pa-too-large", f"a Content Credential is at most "
                              f"{MAX_SIDECAR_BYTES} bytes; the segment stays stored with its "
                              "receipt") from None
            raise
        held = await svc.db(svc.index.credential, row.device_id, row.device_seq)
        if held is not None and held.state == "valid":
            if held.sha256 == hashlib.sha256(body).hexdigest():
                return _json(200, _credential_answer(held))
            raise Refused(409, "c2pa-conflict", "another valid credential is already held for "
                          "this segment; it is kept")
        stored, new = await svc.db(accept_credential, svc, row, body)
        return _json(201 if new else 200, _credential_answer(stored))

    async def finalise(self, request: web.Request) -> web.Response:
        """Verify, store, receipt (module steps)."""
        svc = self.svc
        device = request["device"]
        body = await read_body(request, MAX_FINALISE_BYTES, svc.cfg.limits.body_timeout_s)
        req = parse_finalise(body)
        svc.incoming.path(req.upload_id)  # refuses what is not an upload id
        row = await svc.db(svc.index.upload, req.upload_id)
        if row is None or row.device_id != device.device_id:
            raise Refused(404, "no-such-upload", "no such upload for this device")
        v = check_segment(req, device)
        existing = await svc.db(svc.index.segment, device.device_id, v.device_seq)
        if existing is not None:
            _same_segment(existing, v)
        if row.state == "stored" and existing is not None:
            return _json(200, await self._answer(existing))
        if row.state != "open":
            raise Refused(410, "upload-gone", f"the upload was {row.state}: start a new upload")
        stored, new = await svc.db(self._verify_and_store, req, v, row.upload_id, row.length)
        return _json(201 if new else 200, await self._answer(stored))

    def _verify_and_store(self, req: Any, v: Verified, upload_id: str,
                          length: int | None) -> tuple[SegmentRow, bool]:
        """Steps 3–7, in a worker thread, holding the upload's write lock."""
        svc = self.svc
        device_id = v.manifest.manifest["device_id"]
        with svc.incoming.writer(upload_id):
            size = svc.incoming.size(upload_id)
            if size is None or length is None or size != length:
                raise Refused(409, "upload-incomplete", f"the upload holds {size} of "
                              f"{length if length is not None else 'an undeclared number of'} "
                              "bytes")
            disk_sha, disk_size = sha256_file(svc.incoming.path(upload_id))
            running = svc.incoming.running_sha256(upload_id, size)
            if disk_size != size or (running is not None and running != disk_sha):
                raise Refused(500, "store-corrupt", "the bytes on disk are not the bytes received",
                              alarm=True)
            check_cipher(v, size=disk_size, sha256=disk_sha)
            self._witness(device_id, req, v)
            media = svc.store.media_path(device_id, v.entry["path"])
            try:
                svc.store.place(media, svc.incoming.path(upload_id), req.manifest,
                                v.cipher_sha256)
            except StorageFull as exc:
                raise Refused(507, "store-full", f"{exc}: no receipt; the upload is kept, "
                              "retry later") from None
            utc = utc_now()
            receipt = issue_receipt(svc.key, station_id=svc.station_id, device_id=device_id,
                                    device_seq=v.device_seq, cipher_sha256=v.cipher_sha256,
                                    manifest_sha256=v.manifest.sha256, utc=utc)
            mine = canonical_json(receipt.to_json()).decode()
            row = svc.index.insert_segment(SegmentRow(
                device_id, v.device_seq, v.entry["recording_id"], v.entry["seq"], v.entry["path"],
                v.cipher_sha256, v.manifest.sha256, disk_size, len(req.manifest), req.leaf_index,
                v.checkpoint.checkpoint.size, utc, mine))
            _same_segment(row, v)
            keep_inclusion(svc.index, device_id, v.device_seq, entry=req.entry,
                           leaf_index=req.leaf_index, inclusion=req.inclusion,
                           checkpoint=req.checkpoint)
            if row.receipt == mine:
                svc.index.event(utc, device_id, "segment-stored",
                                f"device_seq {v.device_seq} {v.entry['path']} receipt "
                                f"{receipt.sha256}")
            svc.index.move_upload(upload_id, "open", "stored", time.time())
            svc.incoming.discard(upload_id)
        return row, row.receipt == mine

    def _witness(self, device_id: str, req: Any, v: Verified) -> None:
        """Step 4: consistency with the held checkpoint; advance it by compare-and-swap."""
        index = self.svc.index
        held = index.checkpoint(device_id)
        advance = check_consistency(held, req, v.checkpoint)
        keep_consistency(index, device_id, held, v.checkpoint, req.consistency)
        if advance:
            cp = v.checkpoint
            new = CheckpointRow(cp.checkpoint.size, base64.b64encode(cp.checkpoint.root).decode(),
                                cp.text.decode())
            if not index.advance_checkpoint(device_id, held, new, utc_now()):
                raise Refused(409, "stale-log-state", "the station's view of this log moved "
                              "meanwhile; fetch it and retry")


def _same_segment(row: SegmentRow, v: Verified) -> None:
    if (row.cipher_sha256, row.manifest_sha256) != (v.cipher_sha256, v.manifest.sha256):
        raise Refused(409, "segment-conflict", f"device_seq {v.device_seq} is already stored "
                      "with other bytes; the stored segment is kept", alarm=True)


def _answer(row: SegmentRow, credential: CredentialRow | None) -> dict[str, Any]:
    return {"receipt": json.loads(row.receipt), "device_seq": row.device_seq,
            "path": row.path, "stored_utc": row.stored_utc,
            "c2pa": credential.to_json() if credential else dict(ABSENT_CREDENTIAL)}


def _credential_answer(held: CredentialRow) -> dict[str, Any]:
    return {"device_seq": held.device_seq, "c2pa": held.to_json()}


def api_routes(svc: StationService) -> list[Any]:
    """The aiohttp routes of the JSON API."""
    h = ApiHandlers(svc)
    dev = "/v1/devices/{device_id}"
    return [web.get("/v1/station", h.station), web.get(dev + "/log", h.log_state),
            web.post(dev + "/segments", h.finalise),
            web.put(dev + "/segments/{device_seq}/c2pa", h.credential),
            web.get(dev + "/receipts/{device_seq}", h.receipt)]
