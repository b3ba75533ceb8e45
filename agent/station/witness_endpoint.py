"""The station as the devices' C2SP witness: ``POST /witness/add-checkpoint``.

One held checkpoint per device, one table. The witness state is the index's ``checkpoints``
row, the same row the finalise path checks and advances (docs/STATION-API.md §4). Both paths
advance it only after proving consistency with it, and only by the index's compare-and-set
(``INSERT … ON CONFLICT DO NOTHING`` for the first row, ``UPDATE … WHERE size = old AND
root = old`` afterwards: one conditional statement, atomic in SQLite and PostgreSQL), so the
station never holds — and never cosigns — two inconsistent trees or a smaller tree after a
larger one, across restarts and across station processes sharing one PostgreSQL. A checkpoint
the finalise path or the MQTT monitor already holds is one the witness has, in effect, vouched
for: all three are checks of the same signed log against the same state.

Who may call. The endpoint names no device in its URL, so the per-device identity check does
not apply; with TLS the caller still needs a client certificate from the agency CA (the server
requires one for every connection). Any enrolled device, or an auditor holding an agency
certificate, may submit any log's checkpoint: what authorises a cosignature is the signature
of the key enrolled for ``bodycam/v1/<device>`` (the :class:`EnrolledKeys` registry), never
the caller. An origin that is not a registered device is 404; nothing is stored for it.

Key spans. The registry trusts every key of the device, so before the witness runs a
checkpoint signed only by a key a rotation retired, over more entries than that key's span
(:mod:`.keyspans`), is refused 403 and alarmed ``checkpoint-retired-key``: whoever holds the
retired key must not get a longer log cosigned.

Alarms. A validly signed checkpoint the witness refuses as inconsistent (422: a fork, which
includes a rewritten history of the same or a larger size) raises a ``log-fork`` alarm, once
per contradicted held checkpoint (:meth:`Index.fork_alarm`). A *smaller* signed checkpoint
is answered 409 with the held size (tlog-witness) and recorded as an event, not an alarm: a
device's witness client may legitimately lag the checkpoint the monitor or an upload already
advanced, and without a proof a smaller tree cannot be shown to be a rollback. A rolled-back
log is proven, and alarmed, once it is signed at or past the held size.

Threading: every blocking call here runs in a worker thread (:meth:`StationService.db`); the
objects hold no mutable state of their own.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.atomic import atomic_write
from agent.evidence.checkpoint import SignedCheckpoint
from agent.evidence.ids import is_device_id
from agent.witness import (
    AddCheckpointRequest,
    BadRequest,
    Cosigner,
    OldSizeConflict,
    VerifierKey,
    Witness,
    WitnessRefusal,
)
from agent.witness.cosign_rule import TreeHead
from agent.witness.protocol import CONTENT_TYPE_TEXT, MAX_REQUEST_BYTES
from hw.errors import ConfigError, VerificationError

from .finalise import read_body
from .index import CheckpointRow, Index
from .keyspans import checkpoint_signer
from .proofkeep import keep_consistency
from .refusal import Refused
from .service import StationService, utc_now

__all__ = ["ORIGIN_PREFIX", "WITNESS_PREFIX", "EnrolledKeys", "HeldCheckpoints",
           "device_of_origin", "load_witness_cosigner", "raise_fork", "witness_routes"]

log = logging.getLogger("bodycam.station")

WITNESS_PREFIX = "/witness"
"""The submission prefix devices configure: ``<station url>/witness``."""
ORIGIN_PREFIX = "bodycam/v1/"
WITNESS_KEY_FILE = "witness.key"

AlarmListener = Callable[[dict[str, Any]], None]
"""Told of every alarm raised (e.g. the MQTT monitor publishing it); must not block long."""


def device_of_origin(origin: str) -> str | None:
    """``bodycam/v1/<device>`` → ``<device>``; None for any other origin."""
    if not origin.startswith(ORIGIN_PREFIX):
        return None
    device = origin[len(ORIGIN_PREFIX):]
    return device if is_device_id(device) else None


def load_witness_cosigner(data_dir: Path, station_id: str) -> Cosigner:
    """The station's cosigning key (``keys/witness.key``, Ed25519 PKCS#8 PEM, 0600), made on
    first use; its name is ``<station_id>/witness``.

    A separate key from the receipt key: a cosignature and a receipt vouch for different
    things, and either can be rotated without the other.
    """
    path = data_dir / "keys" / WITNESS_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        private = Ed25519PrivateKey.generate()
        atomic_write(path, private.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), mode=0o600)
        log.info("station witness key created at %s", path)
    if os.stat(path).st_mode & 0o077:
        raise ConfigError(f"{path} is readable by group or others; expected 0600",
                          key="witness key")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key", key="witness key")
    return Cosigner(f"{station_id}/witness", loaded)


class EnrolledKeys:
    """The :class:`~agent.witness.KeyRegistry` of enrolled devices: the origin
    ``bodycam/v1/<device>`` is signed by the device's enrolled Ed25519 key or an endorsed
    successor (key name = origin, as the device signs its checkpoints). It cannot see a
    checkpoint's size, so a retired key's span is held by :meth:`StationWitness.handle`
    before the witness asks."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def trusted_keys(self, origin: str) -> Collection[VerifierKey] | None:
        """The keys of the device the origin names (enrolled, and endorsed successors), or
        None."""
        device_id = device_of_origin(origin)
        device = self._index.device(device_id) if device_id else None
        return None if device is None else [VerifierKey.for_ed25519(origin, k)
                                            for k in device.keys]


class HeldCheckpoints:
    """The :class:`~agent.witness.WitnessState` over the index's ``checkpoints`` rows (see the
    module docstring). One instance per submitted checkpoint: it stores that checkpoint's note
    with the head, so ``GET /v1/devices/<d>/log`` answers the signed checkpoint it advanced to.
    """

    def __init__(self, index: Index, note: bytes,
                 request: AddCheckpointRequest | None = None) -> None:
        self._index = index
        self._note = note.decode("utf-8")
        self._request = request  # its consistency proof is kept once the witness verified it

    def get(self, origin: str) -> TreeHead | None:
        """The held ``(size, root)`` of the device the origin names."""
        device_id = device_of_origin(origin)
        row = self._index.checkpoint(device_id) if device_id else None
        return None if row is None else (row.size, base64.b64decode(row.root))

    def compare_and_set(self, origin: str, expected: TreeHead | None, new: TreeHead) -> bool:
        """Advance the held checkpoint by the index's compare-and-set."""
        device_id = device_of_origin(origin)
        if device_id is None:
            return False
        old = None if expected is None else CheckpointRow(
            expected[0], base64.b64encode(expected[1]).decode(), "")
        held = self._index.checkpoint(device_id)  # its note goes with the kept proof
        if not self._index.advance_checkpoint(
                device_id, old, CheckpointRow(new[0], base64.b64encode(new[1]).decode(),
                                              self._note), utc_now()):
            return False
        if (self._request is not None and held is not None and old is not None
                and (held.size, held.root) == (old.size, old.root)):
            # The witness verified this proof from the held size before asking to advance:
            # keep it, so an export chains older segments to the checkpoint held now.
            keep_consistency(self._index, device_id, held, self._request.checkpoint,
                             self._request.proof)
        return True


def raise_fork(svc: StationService, device_id: str, held: CheckpointRow | None, *, kind: str,
               detail: str, listeners: Collection[AlarmListener] = (),
               once: tuple[int, str] | None = None, checkpoint_size: int | None = None) -> bool:
    """Record an alarm about a device's log once and tell the listeners; True if this call
    raised it (blocking: call from a worker thread).

    ``once`` is what makes two reports the same alarm: by default the contradicted held
    checkpoint ``(size, root)``, so every process and every message reporting one fork raise
    one alarm.
    """
    key = once if once is not None else (held.size, held.root) if held is not None else (-1, "")
    utc = utc_now()
    if not svc.index.fork_alarm(utc, device_id, CheckpointRow(key[0], key[1], ""), kind, detail):
        log.warning("%s of device %s already alarmed: %s", kind, device_id, detail)
        return False
    log.error("ALARM %s device %s: %s", kind, device_id, detail)
    alarm = {"device_id": device_id, "kind": kind, "detail": detail, "utc": utc,
             "station_id": svc.station_id, "held_size": held.size if held else None,
             "held_root": held.root if held else None, "checkpoint_size": checkpoint_size}
    for listener in listeners:
        try:
            listener(alarm)
        except Exception:  # a listener failing must not lose the recorded alarm
            log.exception("alarm listener failed for %s", device_id)
    return True


class StationWitness:
    """The ``add-checkpoint`` handler of one station process."""

    def __init__(self, svc: StationService, cosigner: Cosigner,
                 listeners: list[AlarmListener] | None = None) -> None:
        self.svc = svc
        self.cosigner = cosigner
        self.listeners: list[AlarmListener] = listeners if listeners is not None else []
        self._registry = EnrolledKeys(svc.index)

    def handle(self, body: bytes) -> tuple[int, str, bytes]:
        """tlog-witness over the index (blocking)."""
        req: AddCheckpointRequest | None
        try:
            req = AddCheckpointRequest.parse(body)
            note = req.checkpoint.text
        except BadRequest:
            req, note = None, b""  # the witness answers 400 before it touches the state
        retired = self._retired_key(req.checkpoint) if req is not None else None
        if retired is not None:
            return 403, CONTENT_TYPE_TEXT, f"{retired}\n".encode()
        witness = Witness(cosigner=self.cosigner, state=HeldCheckpoints(self.svc.index, note, req),
                          registry=self._registry, on_refusal=self._refused)
        return witness.handle_add_checkpoint(body)

    def _retired_key(self, signed: SignedCheckpoint) -> str | None:
        """Why ``signed`` is not cosigned when only a key a rotation retired signed it, over
        more entries than its span (:mod:`.keyspans`): an alarm ``checkpoint-retired-key``
        (once per note), answered 403 like any
        signature the witness does not trust. None when the witness's own rule decides."""
        device_id = device_of_origin(signed.checkpoint.origin)
        device = self.svc.index.device(device_id) if device_id else None
        if device_id is None or device is None:
            return None
        try:
            checkpoint_signer(signed, device)
        except VerificationError:
            return None
        except Refused as exc:
            raise_fork(self.svc, device_id, self.svc.index.checkpoint(device_id),
                       kind=exc.code, once=(-1, hashlib.sha256(signed.text).hexdigest()),
                       listeners=self.listeners, detail=f"witness: {exc.message}",
                       checkpoint_size=signed.checkpoint.size)
            return f"{exc.code}: {exc.message}"
        return None

    def _refused(self, origin: str, refusal: WitnessRefusal, signed: SignedCheckpoint) -> None:
        device_id = device_of_origin(origin)
        if device_id is None:
            return
        held = self.svc.index.checkpoint(device_id)
        size = signed.checkpoint.size
        if isinstance(refusal, OldSizeConflict) or held is None:
            self.svc.index.event(utc_now(), device_id, "checkpoint-behind",
                                 f"witness: signed checkpoint of size {size} refused ({refusal})")
            return
        raise_fork(self.svc, device_id, held, kind="log-fork",
                   detail=f"witness: the device's signed checkpoint of size {size} is not "
                   f"consistent with the checkpoint of size {held.size} the station holds",
                   listeners=self.listeners, checkpoint_size=size)

    async def add_checkpoint(self, request: web.Request) -> web.Response:
        """``POST /witness/add-checkpoint``."""
        body = await read_body(request, MAX_REQUEST_BYTES, self.svc.cfg.limits.body_timeout_s)
        status, ctype, out = await self.svc.db(self.handle, body)
        return web.Response(status=status, body=out, headers={"Content-Type": ctype})


def witness_routes(handler: StationWitness) -> list[Any]:
    """The aiohttp route of the witness endpoint."""
    return [web.post(WITNESS_PREFIX + "/add-checkpoint", handler.add_checkpoint)]
