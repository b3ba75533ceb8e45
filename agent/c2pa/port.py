"""Build the store's after-seal port from configuration (the composition root's one call)."""

from __future__ import annotations

from pathlib import Path

from .credentials import CERT_NAME, SigningIdentity
from .sidecar import ContentCredentials
from .testca import ensure_sim_identity

__all__ = ["after_seal_port"]


def after_seal_port(data_dir: Path, device_id: str, *, test_ca: bool) -> ContentCredentials:
    """Content Credentials signed with ``keys/c2pa.key`` + ``keys/c2pa.crt``.

    With ``test_ca`` (simulator, benches) a missing certificate is issued by a throw-away CA
    made under ``state/c2pa-test-ca``; otherwise a missing or unusable identity raises
    :class:`~agent.c2pa.credential_error.ContentCredentialError` at start, before anything is recorded.
    """
    keys = Path(data_dir) / "keys"
    if test_ca and not (keys / CERT_NAME).exists():
        identity, _ = ensure_sim_identity(data_dir, device_id)
    else:
        identity = SigningIdentity.load(keys)
    return ContentCredentials(identity)
