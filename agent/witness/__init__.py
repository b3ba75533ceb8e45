"""Witnessed logs in the C2SP standard: a witness that cosigns only consistent checkpoints,
and the device's client that collects cosignatures from any number of witnesses.

* :mod:`.cosignature` — vkeys, tlog-cosignature/v1 signing and verification;
* :mod:`.protocol` — the tlog-witness ``add-checkpoint`` wire format, strict and bounded;
* :mod:`.witness` — the witness rule over small storage and key-registry Protocols;
* :mod:`.state` — SQLite (multi-process safe) and in-memory witness state;
* :mod:`.client` / :mod:`.pool` — the device side: one witness exchange; all witnesses in
  the background, never blocking the recorder.
"""

from .cosign_rule import KeyRegistry, StaticKeyRegistry, Witness, WitnessState
from .cosignature import Cosignature, Cosigner, VerifierKey, add_cosignatures, verified_cosignatures
from .pool import WitnessPool, WitnessStatus
from .protocol import AddCheckpointRequest
from .refusals import (
    BadRequest,
    CosignatureInvalid,
    OldSizeConflict,
    ProofRejected,
    SignatureRejected,
    UnknownOrigin,
    WitnessError,
    WitnessRefusal,
    WitnessUnavailable,
)
from .state import MemoryWitnessState, SqliteWitnessState
from .witness_client import WitnessClient

__all__ = [
    "AddCheckpointRequest",
    "BadRequest",
    "Cosignature",
    "CosignatureInvalid",
    "Cosigner",
    "KeyRegistry",
    "MemoryWitnessState",
    "OldSizeConflict",
    "ProofRejected",
    "SignatureRejected",
    "SqliteWitnessState",
    "StaticKeyRegistry",
    "UnknownOrigin",
    "VerifierKey",
    "Witness",
    "WitnessClient",
    "WitnessError",
    "WitnessPool",
    "WitnessRefusal",
    "WitnessState",
    "WitnessStatus",
    "WitnessUnavailable",
    "add_cosignatures",
    "verified_cosignatures",
]
