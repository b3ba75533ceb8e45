"""The witness's named errors: each refusal carries the HTTP status tlog-witness assigns it.

A witness refuses by raising one of the :class:`WitnessRefusal` leaves; the HTTP edge turns
it into the status the specification names, so the mapping lives in one place and a server
that mounts :meth:`~agent.witness.cosign_rule.Witness.handle_add_checkpoint` never has to know it.
"""

from __future__ import annotations

from hw.errors import SyncError, VerificationError

__all__ = [
    "BadRequest",
    "CosignatureInvalid",
    "OldSizeConflict",
    "ProofRejected",
    "SignatureRejected",
    "UnknownOrigin",
    "WitnessError",
    "WitnessRefusal",
    "WitnessUnavailable",
]


class WitnessError(VerificationError):
    """Root of the witness's errors (a verification matter: a log's history is at stake)."""


class CosignatureInvalid(WitnessError, ValueError):
    """A cosignature or verifier key that does not parse or does not verify."""


class WitnessRefusal(WitnessError):
    """The witness will not cosign this checkpoint; ``status`` is the tlog-witness HTTP status."""

    status = 400


class BadRequest(WitnessRefusal, ValueError):
    """A malformed add-checkpoint body (400): nothing in it was trusted."""

    status = 400


class SignatureRejected(WitnessRefusal):
    """No trusted log key signed the checkpoint, or a trusted key's line fails (403)."""

    status = 403


class UnknownOrigin(WitnessRefusal):
    """The witness keeps no log of this origin (404)."""

    status = 404


class OldSizeConflict(WitnessRefusal):
    """The client's old size is not the size this witness last cosigned (409)."""

    status = 409

    def __init__(self, message: str, witness_size: int) -> None:
        super().__init__(message)
        self.witness_size = witness_size


class ProofRejected(WitnessRefusal):
    """The checkpoint is not consistent with what the witness cosigned before (422): a fork."""

    status = 422


class WitnessUnavailable(WitnessError, SyncError):
    """The witness could not be reached, or answered with something that is not the protocol."""
