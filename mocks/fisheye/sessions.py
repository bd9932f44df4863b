"""Fisheye's root account (``POST /api/v3/users:setupRoot``) and sessions (``POST /api/v3/sessions``).

Only a salted PBKDF2 digest of the root password is kept; tokens live in a
:class:`mocks.sessions.SessionStore` (SHA-256 digests, expiry on simulated time)."""
from __future__ import annotations

import hashlib
import hmac
import os
import time

from ..sessions import SessionError, SessionStore
from .cluster import ClusterContext, rfc3339_nano
from .errors import (EC_UNAUTHORIZED, GRPC_ALREADY_EXISTS, GRPC_FAILED_PRECONDITION, GRPC_UNAUTHENTICATED, FisheyeError,
                     V3Error, v3_invalid)

DEFAULT_SESSION_TTL = 7 * 24 * 3600.0  # the guide's sample: expire_time = create_time + 7 days
PBKDF2_ITERATIONS = 20_000
ROOT_VIEW = {"id": "root", "username": "root", "password": "", "email": "root@test.com", "role": "ROOT",
             "annotation": "", "auth_provider_id": "local"}
_AUTH_ERRORS = {"missing": "missing x-smartx-token header", "unknown": "invalid or revoked x-smartx-token",
                "expired": "x-smartx-token has expired; log in again"}


class Accounts:
    """``root_login`` (PBKDF2 record or None) and the session store."""

    def __init__(self, ctx: ClusterContext):
        self.ctx = ctx
        self.root_login: dict | None = None
        self.store = SessionStore(ctx.clock, ttl=DEFAULT_SESSION_TTL, secrets=ctx.secrets, lock=ctx.lock)

    # ---- root
    def setup_root(self, password: str, repeat: str) -> dict:
        if password != repeat:
            raise v3_invalid("password and repeat do not match")
        if not 8 <= len(password) <= 64:
            raise v3_invalid("password must be 8 to 64 characters long")
        with self.ctx.lock:
            if self.root_login is not None:
                raise V3Error(409, GRPC_ALREADY_EXISTS, "the root user's password has already been set up")
            salt = os.urandom(16)
            self.root_login = {"scheme": "pbkdf2-sha256", "iterations": PBKDF2_ITERATIONS, "salt": salt.hex(),
                               "digest": hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt,
                                                             PBKDF2_ITERATIONS).hex()}
            self.ctx.secrets.add(password)
        return dict(ROOT_VIEW)

    def check_root_password(self, password: str) -> bool:
        with self.ctx.lock:
            rl = self.root_login
        if rl is None or not isinstance(password, str):
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(rl["salt"]),
                                  int(rl["iterations"])).hex()
        return hmac.compare_digest(got, rl["digest"])

    # ---- sessions
    def login(self, username: str, password: str) -> dict:
        """A new session for root: the guide's ``{user_id, token, create_time, expire_time, update_time}``."""
        if self.root_login is None:
            raise V3Error(400, GRPC_FAILED_PRECONDITION, "the root user's password has not been set up yet")
        if username != "root" or not self.check_root_password(password):
            raise V3Error(401, GRPC_UNAUTHENTICATED, "invalid username or password")
        ttl = float(self.store.ttl)
        token = self.store.issue(username)
        base = time.time_ns() + int(self.ctx.clock.skew * 1e9)
        return {"user_id": username, "token": token, "create_time": rfc3339_nano(base),
                "expire_time": rfc3339_nano(base + int(ttl * 1e9) + 70),
                "update_time": rfc3339_nano(base + 160)}

    def authenticate(self, token: str | None) -> str:
        """The user a token belongs to; raises 401 when missing, unknown, expired or revoked."""
        try:
            return self.store.check(token).user
        except SessionError as exc:
            raise FisheyeError(EC_UNAUTHORIZED, _AUTH_ERRORS[exc.reason], 401) from None

    # ---- snapshots
    def export_state(self) -> dict:
        return {"root_login": dict(self.root_login) if self.root_login else None,
                "sessions": self.store.export_state(), "session_ttl": self.store.ttl}

    def import_state(self, state: dict) -> None:
        self.root_login = dict(state["root_login"]) if state.get("root_login") else None
        self.store.import_state(state.get("sessions", []))
        self.store.ttl = float(state.get("session_ttl", self.store.ttl))
