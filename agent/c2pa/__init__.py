"""C2PA Content Credentials for every sealed segment, signed by the device.

One job per module: ``credentials`` (the device's C2PA key and X.509 certificate, profile
checks), ``testca`` (a run-time test CA for the simulator and tests), ``claim`` (what the
manifest says, from the signed evidence manifest), ``native`` (the reference library's
data-hashed signing call), ``sidecar`` (the store's after-seal port writing ``<stem>.c2pa``),
``status`` (``c2pa_status`` for the verifier and the bench). See docs/C2PA.md.

Importing this package loads the C2PA reference library (~23 MB shared object); the agent
imports it only when ``[evidence] c2pa = true``.
"""

from __future__ import annotations

from .credential_error import ContentCredentialError
from .credentials import SigningIdentity, generate_key, profile_problem, signing_request
from .sidecar import C2PA_SUFFIX, ContentCredentials, credential_path
from .testca import TestCA, ensure_sim_identity
from .validity import c2pa_status

__all__ = ["C2PA_SUFFIX", "ContentCredentialError", "ContentCredentials", "SigningIdentity",
           "TestCA", "c2pa_status", "credential_path", "ensure_sim_identity", "generate_key",
           "profile_problem", "signing_request"]
