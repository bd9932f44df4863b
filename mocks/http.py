"""HTTP for the simulated API families: the request model, the router and the one dispatcher.

* :class:`Request` / :class:`Response` -- what a handler gets and returns.
* :class:`App`        -- one per API family (``mocks/<family>/responses.py``): routes with ``{name}``
  placeholders (matched by ``werkzeug.routing``), plus the family's error bodies.
* :class:`BodyReader` -- a request body read on demand (``Content-Length`` or chunked); the one
  chunked decoder. Streaming routes (``App.add(..., stream=True)``) get it as ``request.stream``.
* the dispatcher (:mod:`mocks.dispatch`) serves one request on an endpoint with these pieces.
* envelope helpers    -- the SmartX ``{"data", "ec", "error"}`` envelope (:func:`ok`, :func:`fail`).

Errors, moto-style: a handler (or a model it calls) raises a :class:`mocks.errors.SimError`; the
dispatcher (:mod:`mocks.dispatch`) answers ``exc.response()``. :class:`Drop` closes the connection without answering.

Operation faults. When a fault rule with an ``operation`` action fires on a call, the handler sees
it on typed fields of the request:

* ``req.outcome: Literal["fail", "stuck"] | None`` -- what the operation this call starts must do;
* ``req.outcome_msg: str | None`` -- the rule's ``msg`` (the failure message);
* ``req.outcome_stage: int | str | None`` -- the rule's ``stage`` (where to fail / stick);
* ``req.fault_id: str | None`` -- the id of the rule that fired (any action);

Handlers pass these typed values to their models; a model never sees a fault rule.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Callable, Literal

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule


log = logging.getLogger("mocks")

__all__ = ["App", "BodyReader", "Drop", "Handler", "Outcome", "Request", "Response",
           "envelope", "error_envelope", "fail", "ok"]

Outcome = Literal["fail", "stuck"]


# --------------------------------------------------------------------------- envelopes
def envelope(data: Any = None) -> dict:
    """Success envelope: ``{"data": data, "ec": "EOK", "error": {}}``."""
    return {"data": data, "ec": "EOK", "error": {}}


def error_envelope(ec: str, msg: str, data: Any = None, **extra) -> dict:
    """Error envelope: ``{"data": null, "ec": ec, "error": {"msg": msg, ...}}``."""
    return {"data": data, "ec": ec, "error": {"msg": msg, **extra}}


# --------------------------------------------------------------------------- request body
class BodyReader:
    """A request body read on demand (``Content-Length`` or chunked), never buffered whole.

    Handlers of *streaming* routes (``App.add(..., stream=True)``) get one as
    ``request.stream``; :meth:`read` returns ``b""`` at the end of the body. The server
    discards whatever the handler leaves unread before answering. Other routes get the
    whole body (:meth:`read_all`) as ``request.body``.
    """

    BLOCK = 64 * 1024

    def __init__(self, rfile, headers: Message):
        self._rfile = rfile
        self._chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        try:
            self.length: int | None = None if self._chunked else max(0, int(headers.get("Content-Length") or 0))
        except ValueError:
            raise ValueError("bad Content-Length") from None
        self._remaining = self.length or 0
        self._chunk_left = 0
        self._eof = False
        self.bytes_read = 0

    @property
    def eof(self) -> bool:
        return self._eof

    def _need(self, data: bytes) -> bytes:
        if not data:
            raise ConnectionError("client closed the connection in the middle of the request body")
        return data

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            size = int(self._need(self._rfile.readline(65537)).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:                                    # last chunk; skip the trailer
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self._eof = True
                return b""
            self._chunk_left = size
        data = self._need(self._rfile.read(min(n, self._chunk_left)))
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(65537)                      # the CRLF after the chunk
        return data

    def read(self, n: int = BLOCK) -> bytes:
        if self._eof or n <= 0:
            return b""
        if self._chunked:
            data = self._read_chunked(n)
        elif self._remaining <= 0:
            self._eof = True
            return b""
        else:
            data = self._need(self._rfile.read(min(n, self._remaining)))
            self._remaining -= len(data)
        self.bytes_read += len(data)
        return data

    def read_all(self) -> bytes:
        """The whole (rest of the) body."""
        out = []
        while block := self.read(max(self.BLOCK, self._remaining)):
            out.append(block)
        return b"".join(out)

    def drain(self) -> int:
        """Read and discard the rest; returns the number of bytes discarded."""
        n = 0
        while block := self.read():
            n += len(block)
        return n


# --------------------------------------------------------------------------- request / response
@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: Message
    body: bytes
    address: str                   # simulated address of the endpoint
    port: int                      # simulated port
    scheme: str                    # http | https
    client: tuple = ("", 0)
    params: dict[str, str] = field(default_factory=dict)   # route parameters
    fault_id: str | None = None           # id of the fault rule that fired on this call (any action)
    outcome: Outcome | None = None        # an 'operation' fault: the operation this call starts fails / sticks
    outcome_msg: str | None = None        # ... with this message
    outcome_stage: int | str | None = None  # ... at this stage
    stream: BodyReader | None = None      # streaming routes: the unread body (``body`` is then b"")

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def arg(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[0] if v else default

    def json(self) -> Any:
        """Parsed JSON body; raises ``ValueError`` when it is not JSON."""
        if not self.body:
            raise ValueError("empty request body")
        return json.loads(self.body.decode("utf-8"))


class Response:
    def __init__(self, status: int = 200, body: bytes | str | Any = b"", *,
                 content_type: str | None = None, headers: dict[str, str] | None = None):
        self.status = int(status)
        self.headers = dict(headers or {})
        if isinstance(body, bytes):
            self.body = body
            self.content_type = content_type or "application/octet-stream"
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
            self.content_type = content_type or "text/plain; charset=utf-8"
        else:
            self.body = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.content_type = content_type or "application/json"

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict | None = None) -> Response:
        return cls(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                   content_type="application/json", headers=headers)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:80]!r}>"


def ok(data: Any = None, status: int = 200) -> Response:
    """Envelope success response."""
    return Response.json(envelope(data), status)


def fail(ec: str, msg: str, status: int = 400, **extra) -> Response:
    """Envelope error response."""
    return Response.json(error_envelope(ec, msg, **extra), status)


class Drop(Exception):
    """Raise from a handler to close the connection without answering."""


Handler = Callable[[Request], Response]


# --------------------------------------------------------------------------- router
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class App:
    """A set of HTTP routes: one per API family.

    Patterns are paths with ``{name}`` placeholders (one path segment each; a static route wins over
    a placeholder). Override :meth:`before` for cross-cutting checks (auth) and :meth:`not_found` /
    :meth:`error` / :meth:`fault_response` for the family's error body.
    """

    name = "app"

    def __init__(self, name: str | None = None):
        if name:
            self.name = name
        self._map = Map(strict_slashes=True, merge_slashes=False, redirect_defaults=False)
        self._handlers: list[Handler] = []
        self._streaming: set = set()
        self._explicit_head = False

    def add(self, method: str, pattern: str, handler: Handler, *, stream: bool = False) -> None:
        """Register a route. ``stream=True``: the body is not read up front; the handler reads
        it from ``request.stream`` (a :class:`BodyReader`), so a large upload never sits in memory."""
        method = method.upper()
        self._map.add(Rule(_PLACEHOLDER.sub(r"<\1>", pattern), endpoint=len(self._handlers), methods=[method]))
        self._handlers.append(handler)
        self._explicit_head |= method == "HEAD"
        if stream:
            self._streaming.add(handler)

    def streams(self, handler: Handler) -> bool:
        return handler in self._streaming

    def resolve(self, method: str, path: str) -> tuple[Handler | None, dict, set[str]]:
        """``(handler, params, set())``, or ``(None, {}, methods the path has)`` (HEAD is served by GET)."""
        if not path.startswith("/") or path.startswith("//"):    # werkzeug would strip the extra slashes
            return None, {}, set()
        try:
            index, params = self._map.bind("sim").match(path, method.upper())
        except MethodNotAllowed as exc:
            allowed = set(exc.valid_methods or ())
            if not self._explicit_head:
                allowed.discard("HEAD")
            return None, {}, allowed
        except (NotFound, RequestRedirect):
            return None, {}, set()
        return self._handlers[index], params, set()

    def before(self, request: Request) -> Response | None:
        return None

    def not_found(self, request: Request) -> Response:
        return fail("ENOTFOUND", f"no such endpoint: {request.method} {request.path}", 404)

    def method_not_allowed(self, request: Request, allowed: set[str]) -> Response:
        return Response(405, error_envelope("EMETHODNOTALLOWED", f"{request.method} not allowed on {request.path}"),
                        headers={"Allow": ", ".join(sorted(allowed))})

    def error(self, request: Request, exc: BaseException) -> Response:
        return fail("EINTERNAL", f"simulator internal error: {type(exc).__name__}: {exc}", 500)

    def fault_response(self, request: Request, action: dict) -> Response:
        """Response for a fault rule's ``status`` / ``envelope_error`` action."""
        status = int(action.get("status", 500))
        if "envelope_error" in action:
            return Response.json(error_envelope(action["envelope_error"],
                                                action.get("msg", f"injected fault {action['envelope_error']}")),
                                 status, headers=action.get("headers"))
        body = action.get("body")
        if body is None:
            body = error_envelope("ESIMFAULT", action.get("msg", f"injected fault: HTTP {status}"))
        return Response(status, body, headers=action.get("headers"))
