"""tus 1.0 uploads of segment ciphertext: core, creation, creation-defer-length, checksum.

https://tus.io/protocols/resumable-upload — the station's choices (docs/STATION-API.md §3):

* URLs are ``/v1/devices/<device>/uploads[/<id>]``; the device in the URL must be the one the
  client certificate names (checked before these handlers run, :mod:`.server`);
* ``HEAD`` answers the *durable* offset: ``PATCH`` fsyncs before it answers, so a client that
  lost its link resumes from an offset that survives a station crash;
* ``Upload-Defer-Length: 1`` lets a device stream a segment that is still being written and
  declare ``Upload-Length`` in a later ``PATCH``;
* ``Upload-Checksum: sha256 <base64>`` covers one PATCH body; a mismatch (460) discards that
  body and keeps everything before it;
* termination is refused (403): evidence is never deleted by a client; an upload idle for
  ``limits.idle_expiry_s`` is moved to quarantine, never treated as complete.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import hashlib
import logging
import os
import secrets
import time
from typing import Any

from aiohttp import web

from agent.atomic import write_all

from .index import UploadRow
from .refusal import Refused
from .service import StationService

__all__ = ["TUS_VERSION", "tus_routes"]

log = logging.getLogger("bodycam.station")

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-defer-length,checksum"
_MAX_METADATA = 4096
_CHUNK = 1 << 20
MAX_CHECKSUMMED_BODY = 64 << 20  # held in memory until its digest is checked


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **(extra or {})}


def _uint_header(request: web.Request, name: str) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise Refused(400, "bad-header", f"{name} must be a non-negative integer")
    return int(value)


def check_version(request: web.Request) -> None:
    """Every tus request but OPTIONS names the version (412 otherwise, as tus requires)."""
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise Refused(412, "tus-version", f"Tus-Resumable must be {TUS_VERSION}")


class TusHandlers:
    """The upload endpoints of one station process."""

    def __init__(self, svc: StationService) -> None:
        self.svc = svc
        self.limits = svc.cfg.limits

    async def options(self, request: web.Request) -> web.Response:
        """Discovery: versions, extensions, limits."""
        return web.Response(status=204, headers=_headers({
            "Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(self.limits.max_upload_bytes),
            "Tus-Checksum-Algorithm": "sha256"}))

    async def create(self, request: web.Request) -> web.Response:
        """POST: a new upload with a known or deferred length (no creation-with-upload)."""
        check_version(request)
        device_id = request.match_info["device_id"]
        length = _uint_header(request, "Upload-Length")
        deferred = request.headers.get("Upload-Defer-Length")
        if (length is None) == (deferred is None) or deferred not in (None, "1"):
            raise Refused(400, "bad-header", "give exactly one of Upload-Length and "
                          "Upload-Defer-Length: 1")
        if length is not None and length > self.limits.max_upload_bytes:
            raise Refused(413, "too-large", f"Upload-Length above the station's maximum "
                          f"{self.limits.max_upload_bytes}")
        if (_uint_header(request, "Content-Length") or 0) > 0:
            raise Refused(400, "bad-request", "creation-with-upload is not supported: send the "
                          "bytes with PATCH")
        metadata = request.headers.get("Upload-Metadata", "")
        if len(metadata) > _MAX_METADATA:
            raise Refused(400, "bad-header", f"Upload-Metadata longer than {_MAX_METADATA}")
        self._check_space(0)
        upload_id = secrets.token_hex(16)
        now = time.time()
        row = UploadRow(upload_id, device_id, length, metadata, "open", now, now)
        await self.svc.db(self.svc.incoming.create, upload_id)
        if not await self.svc.db(self.svc.index.create_upload, row,
                                 self.limits.max_uploads_per_device):
            await self.svc.db(self.svc.incoming.discard, upload_id)
            raise Refused(429, "too-many-uploads", f"this device already has "
                          f"{self.limits.max_uploads_per_device} unfinished uploads; finish or "
                          "resume them")
        location = f"/v1/devices/{device_id}/uploads/{upload_id}"
        return web.Response(status=201, headers=_headers({"Location": location}))

    async def _row(self, request: web.Request) -> UploadRow:
        upload_id = request.match_info["upload_id"]
        self.svc.incoming.path(upload_id)  # refuses what is not an upload id
        row = await self.svc.db(self.svc.index.upload, upload_id)
        if row is None or row.device_id != request.match_info["device_id"]:
            raise Refused(404, "no-such-upload", "no such upload for this device")
        if row.state in ("expired", "refused"):
            raise Refused(410, "upload-gone", f"the upload was {row.state}; its bytes are "
                          "quarantined: start a new upload")
        return row

    async def head(self, request: web.Request) -> web.Response:
        """HEAD: the durable offset and the length (or that it is deferred)."""
        check_version(request)
        row = await self._row(request)
        size = self.svc.incoming.size(row.upload_id)
        if size is None and row.state == "stored":
            size = row.length
        if size is None:
            raise Refused(410, "upload-gone", "the upload's bytes are no longer here")
        extra = {"Upload-Offset": str(size)}
        if row.length is None:
            extra["Upload-Defer-Length"] = "1"
        else:
            extra["Upload-Length"] = str(row.length)
        if row.metadata:
            extra["Upload-Metadata"] = row.metadata
        return web.Response(status=200, headers=_headers(extra))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE: refused — a client never deletes evidence (no termination extension)."""
        check_version(request)
        raise Refused(403, "termination-refused", "uploads are never deleted by a client; an "
                      "abandoned upload expires into quarantine")

    def _check_space(self, incoming: int) -> None:
        st = os.statvfs(self.svc.store.root)
        free = st.f_bavail * st.f_frsize
        if free - incoming < self.limits.min_free_bytes:
            raise Refused(507, "store-full", f"the store has {free} bytes free, keeps "
                          f"{self.limits.min_free_bytes} in reserve: nothing is lost, retry later")

    async def patch(self, request: web.Request) -> web.Response:
        """PATCH: append one body at the stated offset; answer only once it is on disk."""
        check_version(request)
        if request.headers.get("Content-Type") != "application/offset+octet-stream":
            raise Refused(415, "bad-content-type", "PATCH bodies are "
                          "application/offset+octet-stream")
        row = await self._row(request)
        if row.state != "open":
            raise Refused(409, "upload-finished", "the upload is already stored")
        offset = _uint_header(request, "Upload-Offset")
        if offset is None:
            raise Refused(400, "bad-header", "Upload-Offset is required")
        expected = _checksum(request.headers.get("Upload-Checksum"))
        body_len = _uint_header(request, "Content-Length")
        length = await self._declared_length(request, row, offset + (body_len or 0))
        limit = length if length is not None else self.limits.max_upload_bytes
        if body_len is not None and offset + body_len > limit:
            raise Refused(413, "too-large", f"the body would pass the upload's length {limit}")
        self._check_space(body_len or 0)
        with self.svc.incoming.writer(row.upload_id) as fd:
            size = os.fstat(fd).st_size
            if offset != size:
                exc = Refused(409, "offset-mismatch", f"the upload is at offset {size}")
                exc.headers["Upload-Offset"] = str(size)
                raise exc
            await self.svc.db(self.svc.index.touch, row.upload_id, time.time())
            new = await self._receive(request, fd, row.upload_id, start=size, limit=limit,
                                      expected=expected)
        await self.svc.db(self.svc.index.touch, row.upload_id, time.time())
        return web.Response(status=204, headers=_headers({"Upload-Offset": str(new)}))

    async def _declared_length(self, request: web.Request, row: UploadRow,
                               minimum: int) -> int | None:
        length = _uint_header(request, "Upload-Length")
        if length is None:
            return row.length
        if row.length is not None:
            if length != row.length:
                raise Refused(400, "bad-header", "Upload-Length cannot change once declared")
            return length
        if length > self.limits.max_upload_bytes:
            raise Refused(413, "too-large", f"Upload-Length above the station's maximum "
                          f"{self.limits.max_upload_bytes}")
        if length < minimum:
            raise Refused(400, "bad-header", "Upload-Length is shorter than the bytes sent")
        if not await self.svc.db(self.svc.index.set_length, row.upload_id, length):
            fresh = await self.svc.db(self.svc.index.upload, row.upload_id)
            if fresh is None or fresh.length != length:
                raise Refused(400, "bad-header", "Upload-Length cannot change once declared")
        return length

    async def _receive(self, request: web.Request, fd: int, upload_id: str, *, start: int,
                       limit: int, expected: bytes | None) -> int:
        """Append the body; fsync; return the durable offset (module rules in .uploads).

        A body without a checksum is written as it arrives: whatever arrived before a cut,
        a timeout or a crash is kept and counted. A checksummed body is held in memory (at
        most ``MAX_CHECKSUMMED_BODY``) and written only once its digest matches, so it counts
        whole or not at all — even across a crash.
        """
        if expected is not None and limit - start > MAX_CHECKSUMMED_BODY:
            limit = start + MAX_CHECKSUMMED_BODY
        hasher = await self.svc.db(self.svc.incoming.hasher, upload_id, start)
        held = bytearray() if expected is not None else None
        written = 0
        failure: Refused | None = None
        os.lseek(fd, start, os.SEEK_SET)
        try:
            async with asyncio.timeout(self.limits.body_timeout_s):
                async for chunk in request.content.iter_chunked(_CHUNK):
                    if start + written + len(chunk) > limit:
                        raise Refused(413, "too-large", f"the body passes {limit - start} "
                                      "bytes (the upload's length, or the most a checksummed "
                                      "body may hold); the bytes before it are kept")
                    if held is not None:
                        held += chunk
                    else:
                        write_all(fd, chunk)
                    hasher.update(chunk)
                    written += len(chunk)
            if held is not None:
                if hashlib.sha256(held).digest() != expected:
                    raise Refused(460, "checksum-mismatch", "Upload-Checksum does not match "
                                  "the body; it was discarded")
                write_all(fd, bytes(held))
        except asyncio.CancelledError:  # shutdown: keep what is on disk, durably
            _settle(fd, start + (0 if held is not None else written))
            raise
        except Exception as exc:  # a cut link surfaces as one of aiohttp's own errors
            failure = _as_refusal(exc, self.limits.body_timeout_s)
        keep = written if held is None or failure is None else 0
        if held is None and failure is not None:
            keep = os.fstat(fd).st_size - start  # a short write (ENOSPC) keeps its prefix
        await self.svc.db(_settle, fd, start + keep)
        self.svc.incoming.remember(upload_id, start + keep, hasher if keep == written else None)
        if failure is not None:
            failure.headers["Upload-Offset"] = str(start + keep)
            raise failure
        return start + keep


def _as_refusal(exc: Exception, timeout: float) -> Refused:
    """How a body that did not arrive whole is answered."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, TimeoutError):
        return Refused(408, "body-timeout", f"the body took longer than {timeout} s; resume "
                       "from Upload-Offset")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return Refused(507, "store-full", "the store is full: the bytes received before are "
                       "kept; resume later")
    return Refused(400, "body-interrupted", f"the body ended early ({type(exc).__name__}: "
                   f"{str(exc)[:100]})")


def _settle(fd: int, size: int) -> None:
    """Cut the file to ``size`` (drops a refused body) and make it durable."""
    if os.fstat(fd).st_size != size:
        os.ftruncate(fd, size)
    os.fsync(fd)


def _checksum(value: str | None) -> bytes | None:
    if value is None:
        return None
    algo, _, digest = value.partition(" ")
    if algo != "sha256":
        raise Refused(400, "bad-checksum-algorithm", "Upload-Checksum supports sha256 only")
    try:
        raw = base64.b64decode(digest, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "bad-header", "Upload-Checksum digest is not base64") from None
    if len(raw) != 32:
        raise Refused(400, "bad-header", "Upload-Checksum digest is not a SHA-256")
    return raw


def tus_routes(svc: StationService) -> list[Any]:
    """The aiohttp routes of the upload protocol."""
    h = TusHandlers(svc)
    base = "/v1/devices/{device_id}/uploads"
    item = base + "/{upload_id}"
    return [web.options(base, h.options), web.post(base, h.create),
            web.options(item, h.options), web.head(item, h.head), web.patch(item, h.patch),
            web.delete(item, h.delete)]
