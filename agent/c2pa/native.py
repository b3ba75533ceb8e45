"""The one call into the C2PA reference library that its Python binding does not wrap.

Why this module exists: a segment's plaintext is gone by the time it is sealed (the sink hashed
and encrypted it on the way to storage, DESIGN §3), so the hard binding must come from the hash
the sink already computed. c2pa-rs has exactly that entry point -- a *data-hashed embeddable*
manifest signed over a caller-supplied ``c2pa.hash.data`` (``Builder::data_hashed_placeholder``
then ``Builder::sign_data_hashed_embeddable``) -- and its C API (``c2pa_c_ffi``, shipped inside
the c2pa-python wheel as ``libc2pa_c``) exports both, but c2pa-python 0.38 has no method for
them. We call the two exported functions through ctypes on the binding's own library handle,
with the binding's own Builder and Signer objects; nothing else here touches its internals.
``tests/c2pa`` fails loudly if a new binding renames what we rely on (the version is pinned).

Threading: a Builder is single-use and owned by the caller; the library's last-error slot is
per thread, so call this from one thread at a time per Builder (the store's seal lock does).
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Mapping
from typing import Any

import c2pa
from c2pa import c2pa as _binding

from .credential_error import ContentCredentialError

__all__ = ["SIDECAR_FORMAT", "sign_data_hashed"]

SIDECAR_FORMAT = "application/c2pa"  # a bare manifest store: what a .c2pa sidecar holds

_BytesOut = ctypes.POINTER(ctypes.c_ubyte)
_lib: Any = _binding._lib  # the binding's libc2pa_c

_placeholder = _lib.c2pa_builder_data_hashed_placeholder
_placeholder.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                         ctypes.POINTER(_BytesOut)]
_placeholder.restype = ctypes.c_int64
_sign = _lib.c2pa_builder_sign_data_hashed_embeddable
_sign.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                  ctypes.c_void_p, ctypes.POINTER(_BytesOut)]
_sign.restype = ctypes.c_int64
_free = _lib.c2pa_free
_free.argtypes = [ctypes.c_void_p]
_free.restype = ctypes.c_int


def sign_data_hashed(definition: Mapping[str, Any], signer: c2pa.Signer, sha256: bytes) -> bytes:
    """A signed C2PA manifest store whose hard binding is ``c2pa.hash.data`` = ``sha256``.

    ``sha256`` is the SHA-256 of the *whole* asset (no exclusions: the manifest lives beside the
    asset, not in it), so any reader recomputes it from the decrypted file alone.
    """
    if len(sha256) != 32:
        raise ContentCredentialError("a SHA-256 digest is 32 bytes")
    builder = c2pa.Builder(dict(definition))
    try:
        handle = ctypes.cast(builder._handle, ctypes.c_void_p)
        signer_handle = ctypes.cast(signer._handle, ctypes.c_void_p)
        out = _BytesOut()
        n = _placeholder(handle, signer.reserve_size(), SIDECAR_FORMAT.encode(), ctypes.byref(out))
        _check(n, "placeholder")
        _free(ctypes.cast(out, ctypes.c_void_p))
        data_hash = json.dumps({"name": "jumbf manifest", "alg": "sha256", "hash": list(sha256),
                                "pad": [], "exclusions": []}).encode()
        out = _BytesOut()
        n = _sign(handle, signer_handle, data_hash, SIDECAR_FORMAT.encode(), None,
                  ctypes.byref(out))
        _check(n, "signing")
        try:
            return ctypes.string_at(out, n)
        finally:
            _free(ctypes.cast(out, ctypes.c_void_p))
    finally:
        builder.close()


def _check(n: int, what: str) -> None:
    if n < 0:
        detail = _binding._read_native_error() or "no detail"
        raise ContentCredentialError(f"C2PA {what} failed: {detail}")
