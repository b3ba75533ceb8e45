"""Reference client of the collection station (docs/STATION-API.md), standard library only.

The device's uploader and the station's own tests use this module; it needs nothing but
``http.client`` and ``ssl`` (plus :mod:`agent.evidence` to parse checkpoints and receipts), so
it runs on a recorder without any extra dependency.

Typical use, with an :class:`~agent.evidence.log.EvidenceLog` as ``log``::

    client = StationClient("https://station:8443", cafile=…, certfile=…, keyfile=…)
    upload = client.upload_file(device_id, media_path)          # resumable, fsynced per chunk
    receipt = client.finalise(device_id, upload, manifest=envelope_bytes,
                              entry=log.entry(index), leaf_index=index, log=log)

A cut link is resumed, never restarted: :meth:`StationClient.upload_file` asks the station
for the durable offset (``HEAD``) and carries on from there. A refusal raises
:class:`StationRefused` with the station's code (the API document lists them); an unreachable
station raises :class:`StationUnreachable`. Nothing here deletes anything: a receipt is the
only result that lets the device free space, and :meth:`finalise` returns it only after
checking its signature (when trusted keys are given) and that it names exactly the segment.

Not thread-safe: one client, one connection, one thread.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.manifest import parse_envelope
from agent.evidence.receipt import Receipt, parse_receipt
from hw.errors import SyncError, VerificationError

__all__ = ["LogProofs", "LogState", "StationClient", "StationRefused", "StationUnreachable",
           "UploadStatus"]

TUS = {"Tus-Resumable": "1.0.0"}
_MAX_ANSWER = 1 << 20


class StationRefused(SyncError):
    """The station answered with a refusal: ``status``, ``code`` and its message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"station refused ({status} {code}): {message}")
        self.status = status
        self.code = code
        self.headers = headers


class StationUnreachable(SyncError, OSError):
    """The station could not be reached or the link broke mid-request."""


class LogProofs(Protocol):
    """What :meth:`StationClient.finalise` needs of the device's log (EvidenceLog has it)."""

    def checkpoint(self) -> bytes:
        """The current signed checkpoint."""
        ...

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of ``size`` entries."""
        ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the tree of ``old_size`` entries is a prefix of that of ``new_size``."""
        ...


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """An upload's durable offset and its length (None while deferred)."""

    offset: int
    length: int | None


@dataclass(frozen=True, slots=True)
class LogState:
    """The newest checkpoint of the device's log the station holds (size 0: none)."""

    size: int
    checkpoint: bytes | None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _b64(hashes: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


class StationClient:
    """One station, one TLS identity (the device's client certificate)."""

    def __init__(self, url: str, *, cafile: str | None = None, certfile: str | None = None,
                 keyfile: str | None = None, timeout: float = 60.0,
                 chunk_bytes: int = 8 << 20, trusted_keys: Sequence[bytes] = ()) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"station URL {url!r} is not https://host:port")
        self._scheme, self._host = parts.scheme, parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._timeout = timeout
        self.chunk_bytes = chunk_bytes
        self.trusted_keys = tuple(trusted_keys)
        self._ctx: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ctx = ssl.create_default_context(cafile=cafile)
            if certfile:
                self._ctx.load_cert_chain(certfile, keyfile)
        self._conn: http.client.HTTPConnection | None = None

    # -- transport --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> StationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._ctx is not None:
                self._conn = http.client.HTTPSConnection(self._host, self._port,
                                                         timeout=self._timeout, context=self._ctx)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
        return self._conn

    def _request(self, method: str, path: str, headers: dict[str, str],
                 body: bytes | Iterator[bytes] | None = None) -> _Answer:
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(_MAX_ANSWER)
            answer = _Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            if resp.will_close or not resp.isclosed():  # unread rest: the link is not reusable
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise StationUnreachable(f"{method} {path}: {exc}") from exc
        if answer.status >= 400:
            code, message = "http-error", f"HTTP {answer.status}"
            try:
                doc = answer.json()
                code, message = str(doc["error"]), str(doc["message"])
            except (ValueError, KeyError, TypeError):
                pass
            raise StationRefused(answer.status, code, message, answer.headers)
        return answer

    # -- station ----------------------------------------------------------------------------
    def station_info(self) -> dict[str, Any]:
        """The station's id and receipt key (``GET /v1/station``)."""
        doc: dict[str, Any] = self._request("GET", "/v1/station", {}).json()
        return doc

    # -- tus uploads ------------------------------------------------------------------------
    def create_upload(self, device_id: str, length: int | None,
                      metadata: dict[str, str] | None = None) -> str:
        """A new upload (``length=None``: deferred, declared by a later :meth:`patch`)."""
        headers = dict(TUS, **({"Upload-Length": str(length)} if length is not None
                               else {"Upload-Defer-Length": "1"}))
        if metadata:
            headers["Upload-Metadata"] = ",".join(
                f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in metadata.items())
        answer = self._request("POST", f"/v1/devices/{device_id}/uploads", headers, b"")
        return answer.headers["location"]

    def status(self, upload: str) -> UploadStatus:
        """The durable offset (``HEAD``): where a resumed upload carries on."""
        h = self._request("HEAD", upload, dict(TUS)).headers
        length = h.get("upload-length")
        return UploadStatus(int(h["upload-offset"]), int(length) if length is not None else None)

    def patch(self, upload: str, offset: int, data: bytes | Iterator[bytes], *,
              size: int | None = None, length: int | None = None, checksum: bool = True) -> int:
        """Append ``data`` at ``offset``; the new durable offset.

        ``data`` is bytes (checksummed with ``Upload-Checksum`` unless ``checksum`` is false)
        or an iterator of chunks of ``size`` bytes in total, streamed without a checksum.
        ``length`` declares a deferred upload's final length.
        """
        headers = dict(TUS, **{"Content-Type": "application/offset+octet-stream",
                               "Upload-Offset": str(offset)})
        if isinstance(data, bytes):
            size = len(data)
            if checksum:
                digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
                headers["Upload-Checksum"] = f"sha256 {digest}"
        elif size is None:
            raise ValueError("a streamed body needs its size")
        headers["Content-Length"] = str(size)
        if length is not None:
            headers["Upload-Length"] = str(length)
        return int(self._request("PATCH", upload, headers, data).headers["upload-offset"])

    def upload_file(self, device_id: str, path: Path, *, upload: str | None = None,
                    attempts: int = 5, checksum: bool = True) -> str:
        """Upload a whole file, resuming ``upload`` if given; the upload's URL path.

        Sends ``chunk_bytes`` per PATCH (each checksummed and fsynced by the station). After a
        broken link it asks the station for the durable offset and continues from there, up
        to ``attempts`` times in a row without progress.
        """
        path = Path(path)
        total = path.stat().st_size
        if upload is None:
            upload = self.create_upload(device_id, total, {"filename": path.name})
        failures = 0
        with open(path, "rb") as f:
            offset = self.status(upload).offset
            while offset < total:
                f.seek(offset)
                try:
                    if checksum:
                        new = self.patch(upload, offset, f.read(self.chunk_bytes))
                    else:
                        new = self.patch(upload, offset, _chunks(f, total - offset),
                                         size=total - offset, checksum=False)
                except (StationUnreachable, StationRefused) as exc:
                    if isinstance(exc, StationRefused) and exc.status not in (408, 409, 423,
                                                                              460):
                        raise
                    failures += 1
                    if failures >= attempts:
                        raise
                    time.sleep(min(0.05 * 2 ** failures, 2.0))
                    offset = self.status(upload).offset
                    continue
                failures = 0 if new > offset else failures + 1
                offset = new
        return upload

    # -- finalising -------------------------------------------------------------------------
    def log_state(self, device_id: str) -> LogState:
        """The newest checkpoint of the device's log the station holds."""
        doc = self._request("GET", f"/v1/devices/{device_id}/log", {}).json()
        cp = doc.get("checkpoint")
        return LogState(int(doc["size"]), cp.encode() if isinstance(cp, str) else None)

    def finalise(self, device_id: str, upload: str, *, manifest: bytes, entry: bytes,
                 leaf_index: int, log: LogProofs, attempts: int = 8) -> Receipt:
        """Hand over the manifest, log entry and proofs; the station's signed receipt.

        Retries when the station's view of the log moved meanwhile (another upload of the
        same device advanced it); every other refusal is raised.
        """
        upload_id = upload.rstrip("/").rsplit("/", 1)[-1]
        for attempt in range(attempts):
            body = {"upload": upload_id, "manifest": manifest.decode("utf-8"),
                    "entry": entry.decode("utf-8"),
                    **self._proofs(device_id, leaf_index, log)}
            try:
                answer = self._request("POST", f"/v1/devices/{device_id}/segments",
                                       {"Content-Type": "application/json"},
                                       json.dumps(body).encode())
            except StationRefused as exc:
                if exc.code != "stale-log-state" or attempt == attempts - 1:
                    raise
                continue
            return self._checked_receipt(answer.json()["receipt"], device_id, manifest)
        raise AssertionError("unreachable")  # the loop returns or raises

    def put_credential(self, device_id: str, device_seq: int, data: bytes) -> dict[str, Any]:
        """Hand over a stored segment's C2PA sidecar (``PUT …/segments/<seq>/c2pa``, API
        §4a); the station's answer, ``{"device_seq", "c2pa": {"state", "reason", …}}``."""
        path = f"/v1/devices/{device_id}/segments/{device_seq}/c2pa"
        doc: dict[str, Any] = self._request("PUT", path, {"Content-Type": "application/c2pa"},
                                            data).json()
        return doc

    def present_rotation(self, device_id: str, entry: bytes, *, leaf_index: int | None = None,
                         log: LogProofs | None = None, attempts: int = 8) -> dict[str, Any]:
        """Hand over a ``key_rotation`` entry of the device's log, its exact bytes (``POST
        …/key-rotation``, API §4b), so the station verifies what the new key signs; the
        station's answer, ``{"added", "fingerprint", "endorsed_by", "keys", "log_index"}``.
        Presenting one the station already took is answered the same way (``added`` false).
        With ``leaf_index`` and ``log`` the entry's position goes along, proven like a
        segment's (:meth:`finalise`), so the station ends the old key's span there."""
        for attempt in range(attempts):
            body: dict[str, Any] = {"entry": base64.b64encode(entry).decode()}
            if leaf_index is not None and log is not None:
                body.update(self._proofs(device_id, leaf_index, log))
            try:
                doc: dict[str, Any] = self._request(
                    "POST", f"/v1/devices/{device_id}/key-rotation",
                    {"Content-Type": "application/json"}, json.dumps(body).encode()).json()
            except StationRefused as exc:
                if exc.code != "stale-log-state" or attempt == attempts - 1:
                    raise
                continue
            return doc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _proofs(self, device_id: str, leaf_index: int, log: LogProofs) -> dict[str, Any]:
        """Where entry ``leaf_index`` is: its inclusion in the log's current checkpoint and
        that checkpoint's consistency with the one the station holds now."""
        held = self.log_state(device_id).size
        checkpoint = log.checkpoint()
        size = parse_signed_checkpoint(checkpoint).checkpoint.size
        small, large = sorted((held, size))
        return {"leaf_index": leaf_index,
                "inclusion": _b64(log.inclusion_proof(leaf_index, size)),
                "checkpoint": checkpoint.decode("utf-8"),
                "consistency": {"old_size": small, "new_size": large,
                                "hashes": _b64(_consistency(log, small, large))}}

    def receipt(self, device_id: str, device_seq: int) -> Receipt | None:
        """Fetch a stored segment's receipt again; None if the station does not hold it."""
        try:
            doc = self._request("GET", f"/v1/devices/{device_id}/receipts/{device_seq}", {}).json()
        except StationRefused as exc:
            if exc.status == 404:
                return None
            raise
        return parse_receipt(doc["receipt"])

    def _checked_receipt(self, doc: Any, device_id: str, manifest: bytes) -> Receipt:
        receipt = parse_receipt(doc)
        m = parse_envelope(manifest)
        problem = receipt.matches(device_id=device_id, device_seq=m.manifest["device_seq"],
                                  cipher_sha256=m.manifest["file"]["cipher_sha256"],
                                  manifest_sha256=m.sha256)
        if problem:
            raise VerificationError(problem)
        if self.trusted_keys:
            receipt.verify(self.trusted_keys)
        return receipt


def _consistency(log: LogProofs, small: int, large: int) -> list[bytes]:
    """The proof between two sizes; none if this log never had ``large`` entries.

    That happens only when the station witnessed more of this device's log than the log now
    holds (a rollback): the request still goes out, without a proof, so that the station
    refuses it and raises the alarm, rather than the device hiding its own rollback.
    """
    try:
        return log.consistency_proof(small, large)
    except ValueError:
        return []


def _chunks(f: BinaryIO, remaining: int, size: int = 1 << 20) -> Iterator[bytes]:
    while remaining > 0:
        chunk = f.read(min(size, remaining))
        if not chunk:
            raise OSError("the file shrank while it was being uploaded")
        remaining -= len(chunk)
        yield chunk
