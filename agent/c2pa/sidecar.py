"""Issue a segment's Content Credentials at seal: ``<stem>.c2pa`` beside ``<stem>.mp4.age``.

The store calls :class:`ContentCredentials` after a segment's evidence manifest is signed and
logged (``EvidenceStore(after_seal=…)``). Everything it needs is in the signed manifest: the
hard binding is ``file.plain_sha256``, which the sink computed while the plaintext streamed
through it, so the credential costs one Ed25519 signature and a ~3 KB file, and no byte of
media is read, held or written. The sidecar holds no media (who, when, where, which matter:
the same facts as the plaintext ``.manifest.json`` beside it), so it is stored unencrypted and
a reader pairs it with the decrypted ``<stem>.mp4`` by name, as C2PA sidecars are found.

A credential is an addition, never a condition: if it cannot be made the segment is still
sealed and logged, the failure is logged as a warning, and ``c2pa_status`` later reports the
segment's credential as ``absent``. A segment recovered after a crash (plaintext hash unknown)
gets none.

Threading: the store calls this under its seal lock, one segment at a time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from c2pa import C2paError

from agent.atomic import atomic_write
from agent.evidence.journal import sidecar
from agent.evidence.manifest import SignedManifest

from .claim import definition_for
from .credential_error import ContentCredentialError
from .credentials import SigningIdentity
from .native import sign_data_hashed

__all__ = ["C2PA_SUFFIX", "ContentCredentials", "credential_path"]

C2PA_SUFFIX = ".c2pa"

log = logging.getLogger(__name__)


def credential_path(media: Path) -> Path:
    """``…/<stem>.c2pa`` for ``…/<stem>.mp4.age`` (or the decrypted ``<stem>.mp4``)."""
    return sidecar(Path(media), C2PA_SUFFIX)


class ContentCredentials:
    """The store's after-seal port: sign and write one segment's C2PA manifest."""

    def __init__(self, identity: SigningIdentity) -> None:
        self._identity = identity
        self._signer = identity.signer()

    def issue(self, media: Path, signed: SignedManifest) -> Path:
        """Write the credential for ``media``; raises :class:`ContentCredentialError`."""
        plain = signed.manifest["file"].get("plain_sha256")
        if not isinstance(plain, str) or len(plain) != 64:
            raise ContentCredentialError(f"{Path(media).name}: plaintext hash unknown "
                                         "(recovered segment): no hard binding possible")
        definition = definition_for(signed.manifest, signed.sha256)
        try:
            store = sign_data_hashed(definition, self._signer, bytes.fromhex(plain))
        except C2paError as exc:
            raise ContentCredentialError(f"C2PA signing failed: {exc}") from None
        path = credential_path(media)
        atomic_write(path, store)
        return path

    def __call__(self, media: Path, signed: SignedManifest) -> None:
        """Issue, logging (not raising) a failure: the seal has already succeeded."""
        try:
            self.issue(media, signed)
        except (ContentCredentialError, OSError, ValueError) as exc:
            log.warning("no Content Credentials for %s: %s", Path(media).name, exc)
