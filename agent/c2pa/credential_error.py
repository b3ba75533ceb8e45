"""The one exception of the Content Credentials package."""

from __future__ import annotations

from hw.errors import EvidenceError

__all__ = ["ContentCredentialError"]


class ContentCredentialError(EvidenceError):
    """A C2PA credential could not be made, or a signing identity is unusable."""
