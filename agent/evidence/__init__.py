"""Evidence integrity: signing, encryption at rest, the append-only log, offline verification.

The recorder uses :class:`~agent.evidence.store.EvidenceStore` only; the other modules are
its parts and the verifier's.
"""

__all__: list[str] = []
