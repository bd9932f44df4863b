"""CloudTower's errors, moto-style: a model raises one, the app answers ``err.response()``.

* :class:`RestError` -- REST v2 ``ErrorBody`` ``{"message", "status", "path", "code"?, "props"?}`` with HTTP
  ``status``. The request path is bound by the app (:meth:`RestError.at`), models never see it.
* :class:`Unauthenticated` -- a :class:`RestError` 401 (no / unknown / revoked / expired token); GraphQL
  answers it as ``UNAUTHENTICATED``.
* :class:`GqlError` -- Apollo's ``{"errors": [{"message", "locations"?, "path"?, "extensions": {"code"}}]}``:
  HTTP 200 with ``"data": null`` for an error while executing, 400 (no ``data``) before execution
  (``GRAPHQL_PARSE_FAILED``, ``GRAPHQL_VALIDATION_FAILED``, ``BAD_USER_INPUT`` variables, ``BAD_REQUEST``).
"""
from __future__ import annotations

from typing import Any

from ..errors import SimError


class RestError(SimError):
    """A REST error answered as CloudTower's ``ErrorBody`` with HTTP ``status``."""

    code = None                                   # CloudTower's ErrorBody ``code`` is optional

    def __init__(self, status: int, message: str, code: str | None = None, props: dict | None = None):
        super().__init__(message, status=status, code=code)
        self.props = props
        self.path = ""

    def at(self, path: str) -> "RestError":
        """Bind the request path the body names (``"path": "/v2/api/<call>"``)."""
        self.path = path
        return self

    def body(self) -> dict:
        out: dict[str, Any] = {"message": self.message, "status": self.status, "path": self.path}
        if self.code:
            out["code"] = self.code
        if self.props:
            out["props"] = self.props
        return out


class Unauthenticated(RestError):
    """No / unknown / revoked / expired token: REST 401, GraphQL ``UNAUTHENTICATED``."""

    def __init__(self, reason: str):
        super().__init__(401, f"Unauthorized: {reason}")
        self.reason = reason


class GqlError(SimError):
    """A GraphQL error. Resolvers raise it with an Apollo ``code`` (HTTP 200, ``"data": null``); the
    request phases (parse, validation, variables) raise it with ``status=400``. ``more``: further error
    entries answered in the same body (validation reports every problem)."""

    status = 200
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, code: str | None = None, *, status: int | None = None,
                 locations: list[dict] | None = None, path: list | None = None, more: list[dict] | None = None):
        super().__init__(message, status=status, code=code)
        self.locations = locations
        self.path = path
        self.more = list(more or [])

    def entry(self) -> dict:
        out: dict[str, Any] = {"message": self.message}
        if self.locations:
            out["locations"] = self.locations
        if self.path is not None:
            out["path"] = self.path
        out["extensions"] = {"code": self.code}
        return out

    def body(self) -> dict:
        out: dict[str, Any] = {"errors": [self.entry(), *self.more]}
        if self.status == 200:
            out["data"] = None
        return out
