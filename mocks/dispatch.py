"""The one dispatcher: serves a request that arrived on a simulated endpoint.

socket -> :class:`mocks.hub.Hub` -> :class:`Dispatcher` -> the endpoint's apps -> the family's model.

For each HTTP request it applies the fault rules (the only place faults are applied to HTTP and UDP
requests: delay, drop, status / envelope error, operation outcome on ``req.outcome``), settles the
world (``settle``, set by the simulator), routes to the endpoint's apps, turns a
:class:`mocks.errors.SimError` into its response, and records the request in the request log.
"""
from __future__ import annotations

import io
import json
import logging
import ssl
import threading
import time
from email.message import Message
from typing import Any, Callable, Protocol
from urllib.parse import parse_qs, urlsplit

from .clock import SimClock
from .errors import SimError
from .faults import FaultRule, Faults
from .http import App, BodyReader, Drop, Handler, Request, Response
from .multipart import MultipartError, MultipartReader, boundary_of
from .reqlog import RequestLog, redact

log = logging.getLogger("mocks")

LOGGED_BODY_MAX = 256 * 1024          # larger JSON bodies are not kept in the request log

class Connection(Protocol):
    """What the dispatcher needs of an HTTP connection (``mocks.hub``'s request handler)."""

    path: str
    command: str
    headers: Message
    rfile: Any
    client_address: tuple
    close_connection: bool

    def write_response(self, resp: Response) -> None: ...

    def drop(self) -> None: ...


class _Abandon(Exception):
    """The simulator is closing while a request waits in a 'delay' fault."""


class Dispatcher:
    """Serves requests that arrived on a simulated endpoint (``ep``: a ``mocks.hub.Endpoint``):
    routes them to the endpoint's apps, applies fault rules, logs them.

    ``closing`` is set when the simulator closes: it wakes requests sleeping in a ``delay`` fault.
    ``settle`` (set by the simulator) runs before every simulated request is routed: the whole world
    applies the operations that ended by now, whichever family the request is for."""

    def __init__(self, clock: SimClock, faults: Faults, requests: RequestLog, closing: threading.Event):
        self.clock = clock
        self.faults = faults
        self.requests = requests
        self.closing = closing
        self.settle: Callable[[], None] | None = None

    # ---- HTTP
    def serve_http(self, ep, conn: Connection) -> None:
        t0, sim_t, wall_t = time.monotonic(), self.clock.now(), time.time()
        req, route_app = self._read_request(ep, conn)
        if req is None:
            return
        if ep.internal:
            self._serve_internal(ep, req, conn)
            return
        op = _operation_name(req) if self.faults.wants_operation_name else None
        rule = self.faults.match(req.method, req.path, ep.address, ep.port, operation_name=op)
        try:
            resp, result, late_delay = self._apply_fault(ep, req, rule, route_app) if rule else (None, None, 0.0)
        except _Abandon:
            conn.drop()
            return
        if result is None:
            if self.settle is not None:
                self.settle()
            resp = self.route(ep, req)
            if resp is None:
                result = "dropped"
            elif rule is not None and rule.action.get("drop_after"):     # handled, the answer never leaves
                resp, result = None, "processed-dropped"
        if req.stream is not None and resp is not None and not self._drain(req.stream, conn):
            resp, result = None, "client-closed"
        self._log(ep, req, resp, rule, result, (t0, sim_t, wall_t))
        if resp is None or (late_delay > 0 and self.closing.wait(late_delay)):
            conn.drop()
            return
        try:
            conn.write_response(resp)
        except (ConnectionError, ssl.SSLError, OSError):
            conn.close_connection = True

    def _read_request(self, ep, conn: Connection) -> tuple[Request | None, App | None]:
        """The request (body read, or left to stream), and the app that will serve it; None when the
        body cannot be read (the connection is then closed without an answer)."""
        split = urlsplit(conn.path)
        path = split.path or "/"
        method = conn.command.upper()
        route_app, route_handler = _resolve_app(ep.apps, method, path)
        streaming = route_app is not None and route_app.streams(route_handler)
        try:
            reader = BodyReader(conn.rfile, conn.headers)
            body = b"" if streaming else reader.read_all()
        except (ValueError, OSError):
            conn.close_connection = True
            return None, None
        req = Request(method=method, path=path, query=parse_qs(split.query, keep_blank_values=True),
                      raw_query=split.query, headers=conn.headers, body=body, address=ep.address, port=ep.port,
                      scheme=ep.scheme, client=conn.client_address, stream=reader if streaming else None)
        return req, route_app

    def _serve_internal(self, ep, req: Request, conn: Connection) -> None:
        """Simulator plumbing (the control endpoint): no faults, not logged."""
        resp = self.route(ep, req)
        if resp is not None and req.stream is not None and not self._drain(req.stream, conn):
            resp = None
        if resp is None:
            conn.drop()
        else:
            conn.write_response(resp)

    def _apply_fault(self, ep, req: Request, rule: FaultRule,
                     route_app: App | None) -> tuple[Response | None, str | None, float]:
        """``(response, result, late_delay)``: a fault response (result ``fault``), a drop (``dropped``),
        or ``(None, None, d)``: handle normally, answer ``d`` seconds late (streaming routes)."""
        req.fault_id = rule.id
        a = rule.action
        late_delay = 0.0          # streaming routes: the body is consumed first, the *answer* is delayed
        if a.get("delay"):
            if req.stream is not None:
                late_delay = float(a["delay"])
            elif self.closing.wait(float(a["delay"])):
                raise _Abandon
        if "operation" in a:
            req.outcome, req.outcome_msg, req.outcome_stage = a["operation"], a.get("msg"), a.get("stage")
        if a.get("drop"):
            return None, "dropped", late_delay
        if "status" in a or "envelope_error" in a:
            app = route_app or (ep.apps[0] if ep.apps else App())
            return app.fault_response(req, a), "fault", late_delay
        return None, None, late_delay

    def _log(self, ep, req: Request, resp: Response | None, rule: FaultRule | None, result: str | None,
             times: tuple[float, float, float]) -> None:
        t0, sim_t, wall_t = times
        stored = None
        if req.body and len(req.body) <= LOGGED_BODY_MAX:
            try:
                stored = redact(json.loads(req.body.decode("utf-8")), self.requests.secrets)
            except (ValueError, UnicodeDecodeError):
                stored = None
        self.requests.add(address=ep.address, port=ep.port, proto="tcp", scheme=ep.scheme, method=req.method,
                          path=req.path, query=req.raw_query, status=None if resp is None else resp.status,
                          sim_time=sim_t, wall_time=wall_t, duration=time.monotonic() - t0,
                          fault=rule.id if rule else None, result=result, body=stored)

    @staticmethod
    def _drain(reader: BodyReader, conn: Connection) -> bool:
        """Discard the unread rest of a streamed body so the connection stays in sync; False when
        the client went away."""
        try:
            reader.drain()
            return True
        except (ValueError, OSError):
            conn.close_connection = True
            return False

    def route(self, ep, req: Request) -> Response | None:
        """The endpoint's answer to ``req`` (None: close without answering)."""
        allowed: set[str] = set()
        for app in ep.apps:
            handler, params, allowed_here = app.resolve(req.method, req.path)
            allowed |= allowed_here
            if handler is not None:
                req.params = params
                return self._call(app, handler, req)
        first = ep.apps[0] if ep.apps else App()
        if allowed:
            return first.method_not_allowed(req, allowed)
        log.warning("sim: no simulated endpoint for %s %s on %s (%s) -> 404", req.method, req.path,
                    ep.label, ep.role or "-")
        return first.not_found(req)

    @staticmethod
    def _call(app: App, handler: Handler, req: Request) -> Response | None:
        try:
            pre = app.before(req)
            return pre if pre is not None else handler(req)
        except Drop:
            return None
        except (ConnectionError, TimeoutError) as exc:
            if req.stream is not None:          # the client went away while sending its body
                log.debug("sim: client went away during %s %s: %s", req.method, req.path, exc)
                return None
            log.exception("sim handler %s failed on %s %s", app.name, req.method, req.path)
            return app.error(req, exc)
        except SimError as exc:
            return exc.response()
        except Exception as exc:         # noqa: BLE001
            log.exception("sim handler %s failed on %s %s", app.name, req.method, req.path)
            return app.error(req, exc)

    # ---- UDP
    def serve_udp(self, ep, data: bytes) -> tuple[bytes, float] | None:
        """Answer one datagram with the endpoint's UDP handler, faults applied and logged:
        ``(reply, delay in real seconds)``, or None (no answer)."""
        t0, sim_t, wall_t = time.monotonic(), self.clock.now(), time.time()
        try:
            res = ep.udp_handler(data, ep)
        except Exception:              # noqa: BLE001
            log.exception("sim UDP handler error on %s", ep.label)
            return None
        if res is None:
            return None
        rule = self.faults.match(res.method, res.path, ep.address, ep.port)
        reply, result, delay = res.reply, res.result, 0.0
        if rule is not None:
            if rule.action.get("drop"):
                reply, result = None, "dropped"
            delay = float(rule.action.get("delay", 0) or 0)
        self.requests.add(address=ep.address, port=ep.port, proto="udp", scheme="udp", method=res.method,
                          path=res.path, query="", status=None, sim_time=sim_t, wall_time=wall_t,
                          duration=time.monotonic() - t0, fault=rule.id if rule else None, result=result)
        return None if reply is None else (reply, delay)


def _operation_name(req: Request) -> str | None:
    """The GraphQL ``operationName`` of a JSON request body, or of the ``operations`` part of a GraphQL multipart
    request (uploads), else None (fault rules may select on it)."""
    if req.stream is not None or not req.body:
        return None
    raw = _multipart_operations(req) if boundary_of(req.header("Content-Type")) else req.body
    if raw is None or len(raw) > LOGGED_BODY_MAX:
        return None
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    name = body.get("operationName") if isinstance(body, dict) else None
    return name if isinstance(name, str) else None


def _multipart_operations(req: Request) -> bytes | None:
    """The first part of a multipart body when it is ``operations`` (GraphQL multipart request spec), else None."""
    try:
        for part in MultipartReader(io.BytesIO(req.body).read, boundary_of(req.header("Content-Type"))).parts():
            return b"".join(part.blocks()) if part.name == "operations" else None
    except MultipartError:
        return None
    return None


def _resolve_app(apps, method: str, path: str) -> tuple[App | None, Handler | None]:
    """The app (and handler) that would serve ``method path`` among ``apps``, if any."""
    for app in apps:
        handler, _, _ = app.resolve(method, path)
        if handler is not None:
            return app, handler
    return None, None
