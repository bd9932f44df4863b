"""Typed errors, moto-style: a model raises one; the dispatcher turns it into the response.

A model never builds HTTP responses. It raises a :class:`SimError` subclass that carries the
HTTP status and knows its family's wire body (SmartX envelope, fisheye v3 plain object,
CloudTower REST error, ...). The one dispatcher (``mocks.http``) catches ``SimError`` and
answers ``err.response()``.
"""
from __future__ import annotations

from typing import Any


class SimError(Exception):
    """Base: HTTP ``status`` plus a SmartX envelope ``{"data": data, "ec": code, "error": {"msg": ...}}``.

    Subclasses override :meth:`body` (and ``content_type``) for other wire formats."""

    status: int = 400
    code: str = "EINVALIDARGUMENT"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 data: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = int(status)
        if code is not None:
            self.code = code
        self.data = data
        self.headers = dict(headers or {})

    def body(self) -> Any:
        return {"data": self.data, "ec": self.code, "error": {"msg": self.message}}

    @property
    def ec(self) -> str:
        """The SmartX envelope's ``ec`` (the same as ``code``)."""
        return self.code

    @property
    def msg(self) -> str:
        return self.message

    def response(self):
        from .http import Response
        return Response.json(self.body(), self.status, headers=self.headers or None)


class NotFound(SimError):
    status, code = 404, "ENOTFOUND"


class Unauthorized(SimError):
    status, code = 401, "EUNAUTHORIZED"


class Conflict(SimError):
    status, code = 409, "EALREADYEXISTS"
