"""The root user and sessions of a simulated CloudTower (mixed into :class:`CloudTowerModel`).

Only a salted PBKDF2 digest of root's password is kept; sessions (REST / GraphQL ``login`` tokens and
``connect.sid`` cookies) are kept as SHA-256 digests. The clear tokens sit in ``issued_tokens`` (memory
only, for tests; never in a snapshot).
"""
from __future__ import annotations

import hmac
import os

from ..sessions import SessionError
from .errors import GqlError, RestError, Unauthenticated
from .util import PBKDF2_ITERATIONS, b64url, iso_ms, pbkdf2

DEFAULT_ROOT_PASSWORD = "HC!r0cks"
# The guide's createRootUser variable: the fixed, encoded form of HC!r0cks ("hex IV:base64 ciphertext",
# base64-encoded). The simulator cannot decrypt CloudTower's encoding; it knows the guide's samples.
GUIDE_ENCODED_ROOT_PASSWORD = "NzllNTE3NTgxYWY5NDY3ODM4ZTczMTg1MDc4YmM3YzQ6eVpSSTlodUNxNDBNL3J4ZTViZ1dqZz09"
# The guide's GraphQL ``login`` (§07, the browser login): another encoding of HC!r0cks.
GUIDE_ENCODED_LOGIN_PASSWORD = "NmQwNTQ2MTI4MDQxMjgzYTk3NDU3OGZmYjk3NmFhNGM6dm40by9nOE0xZ0ZjVmxBSmR2Nmk3QT09"
ENCODED_PASSWORDS = {GUIDE_ENCODED_ROOT_PASSWORD: DEFAULT_ROOT_PASSWORD,
                     GUIDE_ENCODED_LOGIN_PASSWORD: DEFAULT_ROOT_PASSWORD}
USER_SOURCES = ("LOCAL", "LDAP", "AUTHN", "SSO")
_AUTH_PREFIXES = ("bearer", "token", "basic")


class UsersMixin:
    """root user, login, sessions. State: ``root``, ``sessions`` (a :class:`mocks.sessions.SessionStore`), ``issued_tokens``,
    ``encoded_passwords`` (set up by :class:`CloudTowerModel`)."""

    @property
    def root_created(self) -> bool:
        return self.root is not None

    def decode_password(self, encoded: str) -> str | None:
        """The clear password behind one of CloudTower's encoded forms the simulator knows, else None."""
        return self.encoded_passwords.get(encoded)

    def create_root(self, password: str, updated_at: float | None = None) -> dict:
        """Create the ``root`` user (clear ``password``; the wire layer decodes). Once only."""
        with self.lock:
            if self.root is not None:
                raise GqlError("root user already exists: CloudTower has already been set up", "ALREADY_EXISTS")
            salt = os.urandom(16)
            self.root = {"id": self._new_id("user"), "created_wall": self.clock.wall(),
                         "password_updated_at": updated_at,
                         "login": {"scheme": "pbkdf2-sha256", "iterations": PBKDF2_ITERATIONS, "salt": salt.hex(),
                                   "digest": pbkdf2(password, salt)}}
            self.secrets.add(password)
            return self.user_view()

    def user_view(self) -> dict:
        r = self.root or {}
        return {"id": r.get("id"), "name": "root", "username": "root", "display_username": "root", "role": "ROOT",
                "source": "LOCAL", "password_updated_at": iso_ms(r.get("password_updated_at"))}

    def check_password(self, username: str, password: str) -> bool:
        with self.lock:
            r = self.root
        if r is None or username != "root":
            return False
        lg = r["login"]
        got = pbkdf2(password, bytes.fromhex(lg["salt"]), int(lg["iterations"]))
        return hmac.compare_digest(got, lg["digest"])

    # ------------------------------------------------------------------ sessions
    def login(self, username: str, password: str, source: str = "LOCAL", *, kind: str = "token") -> str:
        """Check the credentials; returns a new token (``kind="cookie"``: a ``connect.sid`` value).
        Raises :class:`RestError` 400 on failure."""
        if source not in USER_SOURCES:
            raise RestError(400, f"source must be one of {', '.join(USER_SOURCES)}, got {source!r}")
        if source != "LOCAL":
            raise RestError(400, f"authentication source {source} is not configured on this CloudTower")
        if self.root is None:
            raise RestError(400, "CloudTower has not been set up: the root user does not exist yet")
        if not self.check_password(username, password):
            raise RestError(400, "invalid username or password")
        return self._issue(self.root["id"], kind)

    def issue_cookie(self) -> str:
        """A ``connect.sid`` session for root (what the GraphQL ``login`` sets besides its token)."""
        return self._issue(self.root["id"], "cookie")

    def _issue(self, user_id: str, kind: str) -> str:
        if kind == "cookie":
            token = f"s%3A{self._new_id('sid')}.{b64url(os.urandom(24))}"
        else:
            token = f"eyJhbGciOiJIUzI1NiJ9.{b64url(user_id.encode())}.{b64url(os.urandom(32))}"
        self.sessions.issue(user_id, kind=kind, token=token)
        self.issued_tokens.add(token)
        return token

    def _session_user(self, value: str, kind: str) -> str | None:
        try:
            return self.sessions.check(value, kind=kind).user
        except SessionError as exc:
            if exc.reason == "expired":
                raise Unauthenticated("the token has expired; log in again") from None
            return None

    def authenticate(self, token: str | None, *, cookie: str | None = None) -> str:
        """The user id a raw ``Authorization`` token (or a ``connect.sid`` cookie) belongs to; raises
        :class:`Unauthenticated`."""
        for value, kind in ((token, "token"), (cookie, "cookie")):
            user = self._session_user(value, kind) if value else None
            if user is not None:
                return user
        if token and token.split(" ", 1)[0].lower() in _AUTH_PREFIXES:
            raise Unauthenticated("Authorization must be the raw token from /v2/api/login, without a "
                                  f"'{token.split(' ', 1)[0]}' prefix")
        if token:
            raise Unauthenticated("invalid or revoked token")
        raise Unauthenticated("missing Authorization header")

    def revoke_tokens(self) -> int:
        return self.sessions.revoke_all()

    @property
    def session_count(self) -> int:
        return self.sessions.count
