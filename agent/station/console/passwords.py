"""Password hashes for console users: scrypt, memory-hard, with the parameters in the hash.

``scrypt$<log2 N>$<r>$<p>$<salt b64>$<key b64>``. N = 2^15, r = 8 costs 32 MiB and ~0.1 s per
guess on a station CPU, so a stolen index does not give up passwords at GPU speed; the
parameters travel with each hash so they can be raised later without breaking old ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Final

__all__ = ["MIN_PASSWORD", "hash_password", "verify_password"]

MIN_PASSWORD: Final = 12
_LOG2_N: Final = 15
_R: Final = 8
_P: Final = 1
_MAXMEM: Final = 128 * 1024 * 1024
_DUMMY: Final[list[str]] = []


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=1 << log2_n, r=r, p=p,
                          maxmem=_MAXMEM, dklen=32)


def hash_password(password: str) -> str:
    """A new salted hash of ``password``."""
    salt = os.urandom(16)
    key = _derive(password, salt, _LOG2_N, _R, _P)
    b64 = base64.b64encode
    return f"scrypt${_LOG2_N}${_R}${_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    """True if ``password`` matches ``stored``. With no stored hash (unknown user) the same
    work is done against a dummy, so timing does not tell which user names exist."""
    if stored is None:
        if not _DUMMY:
            _DUMMY.append(hash_password("not a password of anyone"))
        stored, password = _DUMMY[0], password + "\0"
    try:
        scheme, log2_n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt" or not (10 <= int(log2_n) <= 20 and 1 <= int(r) <= 32
                                      and 1 <= int(p) <= 4):
            return False
        want = base64.b64decode(key, validate=True)
        got = _derive(password, base64.b64decode(salt, validate=True), int(log2_n), int(r),
                      int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)
