"""Console users, roles, sign-in with rate limits, and server-side sessions.

Roles (DESIGN §7): a **viewer** sees the fleet; a **dispatcher** may also start, bookmark,
assign a matter and stop with a reason; an **admin** may do what a dispatcher does (user
management is the ``bodycam station user`` command on the station itself, never the web).

A session is a random 256-bit token in an HttpOnly, Secure, SameSite=Strict cookie; the index
holds only its SHA-256, the user, a CSRF token and the expiry, so a copy of the database does
not let anyone sign in, and every station process sharing the index sees the same sessions.

Locking: :class:`LoginLimiter` is used from the event loop only (no lock); :class:`Accounts`
calls the index, which serialises its own connection — call it from a worker thread.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

from hw.errors import ConfigError

from ..index import Index
from ..service import utc_now
from .passwords import MIN_PASSWORD, hash_password, verify_password

__all__ = ["ROLES", "Accounts", "LoginLimiter", "Session", "check_username", "may_act"]

ROLES: Final = ("viewer", "dispatcher", "admin")
_USER_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")


def check_username(name: str) -> str:
    """``name`` if it can be a user name (and thus part of a command's ``issuer``)."""
    if not _USER_RE.fullmatch(name):
        raise ConfigError(f"{name[:40]!r}: 1-32 characters of [a-z0-9._-], starting with a "
                          "letter or digit", key="username")
    return name


def may_act(role: str) -> bool:
    """Whether ``role`` may send commands to units."""
    return role in ("dispatcher", "admin")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser."""

    username: str
    role: str
    csrf: str
    expires: float


class LoginLimiter:
    """Failed sign-ins allowed per user name and per address in a sliding window.

    A guesser is slowed to ``per_user`` tries per window on one account however many
    addresses it uses, and to ``per_address`` tries per window from one address however many
    accounts it tries. A success does not clear the address's count (a guesser who knows one
    password must not earn more guesses at the others); it clears the user's.
    """

    def __init__(self, *, per_user: int = 5, per_address: int = 20,
                 window_s: float = 300.0) -> None:
        self.per_user, self.per_address, self.window_s = per_user, per_address, window_s
        self._fails: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def retry_after(self, username: str, address: str, now: float) -> float:
        """Seconds to wait before another attempt is heard (0 = go ahead)."""
        waits = [0.0]
        for key, limit in ((f"u:{username}", self.per_user), (f"a:{address}", self.per_address)):
            q = self._recent(key, now)
            if len(q) >= limit:
                waits.append(q[len(q) - limit] + self.window_s - now)
        return max(waits)

    def failed(self, username: str, address: str, now: float) -> None:
        """Count one failed attempt."""
        if len(self._fails) > 100_000:  # bounded memory under a spray of names
            self._fails.clear()
        for key in (f"u:{username}", f"a:{address}"):
            self._fails.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        """A correct password: the account's count starts again."""
        self._fails.pop(f"u:{username}", None)


class Accounts:
    """Users, roles and sessions in the station's index."""

    def __init__(self, index: Index, *, session_s: float) -> None:
        self.index = index
        self.session_s = session_s

    def _row(self, username: str) -> tuple[str, str] | None:
        for name, pw, role, _ in self.index.users():
            if name == username:
                return pw, role
        return None

    def add(self, username: str, password: str, role: str) -> None:
        """Create a user; ConfigError for a bad name, short password, unknown role or a
        name already taken."""
        check_username(username)
        self._check(password, role)
        if not self.index.user_add(username, hash_password(password), role, utc_now()):
            raise ConfigError(f"user {username} exists (use passwd or role)", key="username")

    def passwd(self, username: str, password: str) -> None:
        """Set a new password and sign the user out everywhere."""
        self._check(password, "viewer")
        if not self.index.user_update(username, "password", hash_password(password), utc_now()):
            raise ConfigError(f"no user {username}", key="username")
        self.index.session_end(None, time.time(), username=username)

    def set_role(self, username: str, role: str) -> None:
        """Change the role and sign the user out everywhere (the new role applies at once)."""
        self._check(None, role)
        if not self.index.user_update(username, "role", role, utc_now()):
            raise ConfigError(f"no user {username}", key="username")
        self.index.session_end(None, time.time(), username=username)

    @staticmethod
    def _check(password: str | None, role: str) -> None:
        if role not in ROLES:
            raise ConfigError(f"{role!r} is not a role ({', '.join(ROLES)})", key="role")
        if password is not None and len(password) < MIN_PASSWORD:
            raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters",
                              key="password")

    def list(self) -> list[tuple[str, str, str]]:
        """(user, role, created_utc) of every user."""
        return [(n, role, created) for n, _, role, created in self.index.users()]

    def sign_in(self, username: str, password: str, address: str) -> tuple[str, Session] | None:
        """Check the password; on success a new session and its cookie token."""
        row = self._row(username)
        if not verify_password(password, row[0] if row else None) or row is None:
            return None
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
        expires = now + self.session_s
        self.index.session_end(None, now)  # expired sessions go as new ones come
        self.index.session_add(_token_hash(token), username, csrf, address=address[:64],
                               created=now, expires=expires)
        return token, Session(username, row[1], csrf, expires)

    def session(self, token: str) -> Session | None:
        """The live session of a cookie token, with the user's current role, or None."""
        if not token or len(token) > 128:
            return None
        found = self.index.session(_token_hash(token), time.time())
        if found is None:
            return None
        row = self._row(found[0])
        return Session(found[0], row[1], found[1], found[2]) if row else None

    def sign_out(self, token: str) -> None:
        """End this session (and purge expired ones)."""
        self.index.session_end(_token_hash(token), time.time())
