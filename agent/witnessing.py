"""The device's witnesses: every checkpoint of the evidence log goes to each configured
C2SP tlog-witness in the background, and each one's newest cosigned checkpoint is kept in
``<data-dir>/log/witnessed/`` — where ``bodycam verify --witness`` finds it.

The recorder never waits on a witness: :class:`agent.witness.WitnessPool` queues only the
newest checkpoint per witness on its own threads, retrying with backoff while a witness is
unreachable.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.config import WitnessConfig
from agent.evidence.log import EvidenceLog
from agent.witness import WitnessClient, WitnessPool

__all__ = ["WITNESSED_DIR", "start_witnessing", "witness_status", "witness_tls"]

WITNESSED_DIR = "witnessed"


def start_witnessing(witnesses: Sequence[WitnessConfig], log: EvidenceLog,
                     log_dir: Path) -> WitnessPool | None:
    """Build, start and subscribe the pool (None when no witness is configured); the current
    checkpoint is submitted at once, so a history written while offline is witnessed too."""
    if not witnesses:
        return None
    clients = [WitnessClient(w.url, w.vkey, timeout_s=w.timeout_s, ssl_context=witness_tls(w))
               for w in witnesses]
    pool = WitnessPool(clients, directory=log_dir / WITNESSED_DIR, proof=log.consistency_proof)
    pool.start()
    log.subscribe(pool.submit)
    pool.submit(log.checkpoint())
    return pool


def witness_tls(w: WitnessConfig) -> ssl.SSLContext | None:
    """TLS for an https witness: its CA, and the device's client certificate when the witness
    requires one (a collection station accepts only agency certificates). The station's
    custody log uses it too (agent/station/custodywitness.py)."""
    if not w.url.startswith("https:") or not (w.cafile or w.certfile):
        return None
    ctx = ssl.create_default_context(cafile=w.cafile or None)
    if w.certfile:
        ctx.load_cert_chain(w.certfile, w.keyfile)
    return ctx


def witness_status(pool: WitnessPool | None) -> dict[str, Any]:
    """Per witness: cosigned size, last success and error (for status and telemetry)."""
    if pool is None:
        return {}
    return {name: s.as_dict() for name, s in pool.status().items()}
