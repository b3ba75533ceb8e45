"""The witness rule: cosign a log's checkpoint only if it extends the last one cosigned.

A device (or whoever holds its key) can sign any history it likes; a witness makes a rewrite
visible. For each log origin it remembers the last ``(size, root)`` it cosigned and, per
tlog-witness, refuses

* a body that does not parse, or an old size beyond the new size      → 400 ``BadRequest``
* an origin it does not keep                                          → 404 ``UnknownOrigin``
* a checkpoint no trusted key of that origin signed, or a bad line
  from a trusted key                                                  → 403 ``SignatureRejected``
* an old size other than the size it last cosigned (also a smaller
  tree after a larger one: the client learns the witness's size)      → 409 ``OldSizeConflict``
* an empty tree with a non-empty root, a proof with old size 0, an
  equal size with another root, a proof that does not verify (a fork) → 422 ``ProofRejected``

and only then records the new state with an atomic compare-and-set and cosigns. Two
requests racing for one origin cannot both win: the loser sees its compare-and-set fail and
gets a 409 naming the winner's size, so the witness never cosigns two inconsistent trees.

The class is pure logic over two small Protocols so that a collection station can plug in
its own storage (PostgreSQL) and its device registry; :class:`SqliteWitnessState` and
:class:`StaticKeyRegistry` are the shipped implementations.

Threading: :class:`Witness` holds no mutable state of its own; it is as thread-safe as its
``state`` (both shipped states are) and may serve concurrent requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.evidence.checkpoint import SignedCheckpoint
from agent.evidence.merkle import EMPTY_ROOT, verify_consistency

from .cosignature import TYPE_ED25519, Cosignature, Cosigner, VerifierKey
from .protocol import (
    CONTENT_TYPE_SIZE,
    CONTENT_TYPE_TEXT,
    AddCheckpointRequest,
    format_conflict,
    format_cosignatures,
)
from .refusals import (
    OldSizeConflict,
    ProofRejected,
    SignatureRejected,
    UnknownOrigin,
    WitnessRefusal,
)

__all__ = ["KeyRegistry", "RefusalHook", "StaticKeyRegistry", "TreeHead", "Witness", "WitnessState"]

_log = logging.getLogger(__name__)

TreeHead = tuple[int, bytes]
"""A cosigned log state: ``(size, root hash)``."""


class WitnessState(Protocol):
    """Where a witness keeps the last tree head it cosigned for each log origin.

    Implementations must make :meth:`compare_and_set` atomic across every process that
    shares the store (a row lock, ``BEGIN IMMEDIATE``, a serialisable transaction) and
    durable before it returns True: the witness answers with a cosignature right after.
    """

    def get(self, origin: str) -> TreeHead | None:
        """The last cosigned ``(size, root)`` for ``origin``, or None if never cosigned."""
        ...

    def compare_and_set(self, origin: str, expected: TreeHead | None, new: TreeHead) -> bool:
        """Store ``new`` only if the stored head still equals ``expected`` (None: no row).

        Returns False, changing nothing, when another writer got there first.
        """
        ...


class KeyRegistry(Protocol):
    """Which keys may sign checkpoints for which log origin (from enrolment, never first use).

    Return every key the log may currently sign with: after a device's key rotation its log
    is signed with the new key, so the registry must hold it (and may keep the old one).
    """

    def trusted_keys(self, origin: str) -> Collection[VerifierKey] | None:
        """The log's verifier keys (type 0x01), or None when this witness keeps no such log."""
        ...


RefusalHook = Callable[[str, WitnessRefusal, SignedCheckpoint], None]
"""Called with ``(origin, refusal, checkpoint)`` when a *validly signed* checkpoint is refused
as inconsistent (409/422): a signed fork or rollback is evidence against the log. An exception
from the hook is logged; the witness answers the client regardless."""


class StaticKeyRegistry:
    """A fixed origin → keys map (tests, small deployments). Read-only after construction."""

    def __init__(self, keys: Mapping[str, Collection[VerifierKey]] | None = None) -> None:
        self._keys: dict[str, tuple[VerifierKey, ...]] = {o: tuple(k) for o, k in (keys or {}).items()}

    @classmethod
    def of_devices(cls, devices: Mapping[str, Collection[bytes]]) -> StaticKeyRegistry:
        """A registry from ``origin → raw Ed25519 public keys`` (key name = origin, as devices sign)."""
        return cls({o: [VerifierKey.for_ed25519(o, pub) for pub in pubs] for o, pubs in devices.items()})

    def trusted_keys(self, origin: str) -> Collection[VerifierKey] | None:
        """The keys registered for ``origin``."""
        return self._keys.get(origin)


def _check_signatures(signed: SignedCheckpoint, keys: Collection[VerifierKey]) -> None:
    """403 unless a trusted key signed; a trusted key's failing line also rejects the note."""
    body = signed.checkpoint.body()
    by_id = {(k.name, k.key_id): k for k in keys if k.key_type == TYPE_ED25519}
    good = False
    for name, kid, sig in signed.signatures:
        key = by_id.get((name, kid))
        if key is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(sig, body)
        except (InvalidSignature, ValueError):
            raise SignatureRejected(f"signature by trusted key {name} does not verify") from None
        good = True
    if not good:
        raise SignatureRejected("no signature from a key trusted for this origin")


class Witness:
    """Cosigns checkpoints that extend what it cosigned before (see the module docstring)."""

    def __init__(self, *, cosigner: Cosigner, state: WitnessState, registry: KeyRegistry,
                 clock: Callable[[], float] = time.time,
                 on_refusal: RefusalHook | None = None) -> None:
        self._cosigner = cosigner
        self._state = state
        self._registry = registry
        self._clock = clock
        self._on_refusal = on_refusal

    @property
    def vkey(self) -> VerifierKey:
        """This witness's verifier key (give it to devices and auditors)."""
        return self._cosigner.vkey

    def add_checkpoint(self, request: AddCheckpointRequest) -> list[Cosignature]:
        """Apply the witness rule; the cosignature(s), or a :class:`WitnessRefusal`."""
        signed = request.checkpoint
        cp = signed.checkpoint
        keys = self._registry.trusted_keys(cp.origin)
        if keys is None:
            raise UnknownOrigin(f"this witness keeps no log {cp.origin!r}")
        _check_signatures(signed, keys)
        try:
            return self._extend(request)
        except (OldSizeConflict, ProofRejected) as refusal:
            if self._on_refusal is not None:
                try:
                    self._on_refusal(cp.origin, refusal, signed)
                except Exception:  # the alarm failing must not change the answer
                    _log.exception("witness: refusal hook failed for %s", cp.origin)
            raise

    def _extend(self, request: AddCheckpointRequest) -> list[Cosignature]:
        cp = request.checkpoint.checkpoint
        stored = self._state.get(cp.origin)
        stored_size = stored[0] if stored is not None else 0
        if request.old_size != stored_size:
            raise OldSizeConflict(
                f"old size {request.old_size}, but this witness last cosigned {stored_size}",
                stored_size)
        if cp.size == 0 and cp.root != EMPTY_ROOT:
            raise ProofRejected("a checkpoint of size 0 must carry the empty tree's root")
        if request.old_size == 0:
            if request.proof:
                raise ProofRejected("a consistency proof from size 0 must be empty")
        elif stored is None or not verify_consistency(
                stored[0], cp.size, stored[1], cp.root, request.proof):
            raise ProofRejected(
                f"checkpoint of size {cp.size} is not consistent with the cosigned size {stored_size}")
        if not self._state.compare_and_set(cp.origin, stored, (cp.size, cp.root)):
            now = self._state.get(cp.origin)
            raise OldSizeConflict("another request advanced this log first",
                                  now[0] if now is not None else 0)
        stamp = max(1, int(self._clock()))
        return [self._cosigner.cosign(cp.body(), stamp)]

    def handle_add_checkpoint(self, body: bytes) -> tuple[int, str, bytes]:
        """The HTTP edge: request body → ``(status, content type, response body)``.

        Any server can mount this at ``POST <prefix>/add-checkpoint``. It never raises for
        anything a client sends; a failing store (``OSError``, database errors) propagates so
        the server answers 5xx and the client retries.
        """
        try:
            cosigs = self.add_checkpoint(AddCheckpointRequest.parse(body))
        except OldSizeConflict as exc:
            return exc.status, CONTENT_TYPE_SIZE, format_conflict(exc.witness_size)
        except WitnessRefusal as exc:
            return exc.status, CONTENT_TYPE_TEXT, f"{exc}\n".encode()
        return 200, CONTENT_TYPE_TEXT, format_cosignatures(cosigs)
