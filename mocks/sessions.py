"""One session store for every simulated API family (fisheye, CloudTower, ...).

A family issues opaque tokens to a user; the store keeps only their SHA-256 digests, with an
expiry on the *simulated* clock (``None``: never expires). Clear tokens go into the shared
``secrets`` set (the request log redacts them) and nowhere else.

    store = SessionStore(clock, ttl=7 * 86400, secrets=sim.requests.secrets)
    token = store.issue("root")                       # uuid4().hex unless ``token=`` is given
    session = store.check(token)                      # -> Session, or raises SessionError
    store.check(None)                                 # SessionError(reason="missing")
    store.lookup(token)                               # Session | None (no expiry handling)
    store.revoke(token); store.revoke_all() -> int
    store.count                                       # live sessions
    store.export_state() -> [{"digest", "user", "created", "expires", "kind"}, ...]   # live only
    store.import_state(items)                         # accepts "user_id" for "user" (CloudTower's)

``SessionError.reason`` is ``"missing"``, ``"unknown"`` (never issued or revoked) or ``"expired"``
(the session is dropped when found expired); each family answers it in its own wire format.
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

from .clock import SimClock

Reason = Literal["missing", "unknown", "expired"]


def token_digest(token: str) -> str:
    """SHA-256 hex digest of a token: what the store keeps (and snapshots hold) instead of it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Session:
    digest: str                          # sha256 of the token: the token itself is never stored
    user: str
    created: float                       # simulated seconds
    expires: float | None = None         # simulated seconds; None: never
    kind: str = "token"                  # family-defined (CloudTower: token | cookie)

    def live(self, now: float) -> bool:
        return self.expires is None or now < self.expires


class SessionError(LookupError):
    """A token that does not authenticate: ``reason`` is missing | unknown | expired."""

    def __init__(self, reason: Reason):
        super().__init__(reason)
        self.reason: Reason = reason


class SessionStore:
    """Tokens -> sessions, digests only, expiry on simulated time. Thread-safe."""

    def __init__(self, clock: SimClock, *, ttl: float | None = None, secrets: set[str] | None = None,
                 new_token: Callable[[], str] | None = None, lock: threading.RLock | None = None):
        self.clock = clock
        self.ttl = ttl                   # seconds a new session lives (None: forever); tests may change it
        self.secrets = secrets if secrets is not None else set()
        self.new_token = new_token or (lambda: uuid.uuid4().hex)
        self.lock = lock or threading.RLock()
        self._sessions: dict[str, Session] = {}

    # ---- issue / check
    def issue(self, user: str, *, kind: str = "token", token: str | None = None,
              ttl: float | None | Literal["default"] = "default") -> str:
        """A new token for ``user`` (``ttl``: this session's lifetime, default the store's)."""
        token = token if token is not None else self.new_token()
        life = self.ttl if ttl == "default" else ttl
        now = self.clock.now()
        d = token_digest(token)
        with self.lock:
            self._sessions[d] = Session(d, user, now, None if life is None else now + float(life), kind)
            self.secrets.add(token)
        return token

    def lookup(self, token: str | None, *, kind: str | None = None) -> Session | None:
        """The session of ``token`` as stored (expired or not); None when unknown / of another kind."""
        if not token:
            return None
        with self.lock:
            s = self._sessions.get(token_digest(token))
        return s if s is not None and (kind is None or s.kind == kind) else None

    def check(self, token: str | None, *, kind: str | None = None) -> Session:
        """The live session of ``token``; raises :class:`SessionError`. An expired session is dropped."""
        if not token:
            raise SessionError("missing")
        with self.lock:
            s = self.lookup(token, kind=kind)
            if s is None:
                raise SessionError("unknown")
            if not s.live(self.clock.now()):
                self._sessions.pop(s.digest, None)
                raise SessionError("expired")
            return s

    # ---- revoke / count
    def revoke(self, token: str) -> bool:
        with self.lock:
            return self._sessions.pop(token_digest(token), None) is not None

    def revoke_all(self) -> int:
        """Drop every session (e.g. the service restarted); returns how many there were."""
        with self.lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    @property
    def count(self) -> int:
        """Live sessions."""
        now = self.clock.now()
        with self.lock:
            return sum(1 for s in self._sessions.values() if s.live(now))

    # ---- snapshots (digests only)
    def export_state(self) -> list[dict]:
        """Live sessions as JSON-able dicts: digests, never tokens."""
        now = self.clock.now()
        with self.lock:
            return [dataclasses.asdict(s) for s in self._sessions.values() if s.live(now)]

    def import_state(self, items: Iterable[dict]) -> None:
        """Replace the sessions with :meth:`export_state` output (``user_id`` is read as ``user``)."""
        sessions = {}
        for d in items or ():
            s = Session(digest=str(d["digest"]), user=str(d.get("user", d.get("user_id", ""))),
                        created=float(d.get("created", 0.0)),
                        expires=None if d.get("expires") is None else float(d["expires"]),
                        kind=str(d.get("kind") or "token"))
            sessions[s.digest] = s
        with self.lock:
            self._sessions = sessions
