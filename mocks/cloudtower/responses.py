"""HTTP side of a simulated CloudTower.

* :class:`CloudTowerApp` on ``(ip, 443)`` (https): ``POST /api`` (GraphQL), ``POST /v2/api/<call>`` (REST),
  ``GET /`` (the web UI's index: a 200 page, what "is 443 answering" probes see).
* :class:`HttpRedirectApp` on ``(ip, 80)`` (http): every request answers ``301`` with
  ``Location: https://<ip><path>[?query]`` (nginx ``return 301 https://$host$request_uri``). A client
  that follows it turns a POST into a GET, and ``GET /v2/api/login`` is a 404: the field note's
  "login sent to http:// silently fails".

While the tower warms up (:meth:`CloudTowerModel.set_warmup`) every https request -- any path --
answers the nginx 503 page (text/html): tcp/443 accepts before the API answers.
"""
from __future__ import annotations

import json
import logging
from http.cookies import SimpleCookie

from ..http import App, Request, Response
from . import graphql, graphql_backup, rest
from .errors import GqlError, RestError
from .models import CloudTowerModel, TaskFault
from .responses_obs import add_ovm_routes
from .responses_inspector import add_inspector_routes
from .rest_vms import add_vm_upload_routes

log = logging.getLogger("mocks")

_NGINX = ("<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1>"
          "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
_REASONS = {301: "Moved Permanently", 302: "Found", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
            504: "Gateway Time-out"}
UI_INDEX = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>CloudTower</title></head>"
            "<body><div id=\"root\"></div></body></html>")


def nginx_page(status: int, headers: dict | None = None) -> Response:
    body = _NGINX.format(code=status, reason=_REASONS.get(status, "Error"))
    return Response(status, body, content_type="text/html", headers=headers)


def _json(status: int, obj) -> Response:
    return Response.json(obj, status)


class CloudTowerApp(App):
    name = "cloudtower"

    def __init__(self, tower: CloudTowerModel):
        super().__init__()
        self.tower = tower
        self.add("POST", "/api", self.graphql)
        self.add("GET", "/api", self.graphql_get)
        self.add("POST", "/v2/api/{call}", self.rest)
        self.add("GET", "/", self.index)
        add_ovm_routes(self)                  # stage 07a: the OVM operator's chunked uploads (responses_obs.py)
        add_inspector_routes(self)            # stage 08: the inspection centre (responses_inspector.py)
        add_vm_upload_routes(self)            # stage 09: parse-ovf, upload-elf-file (multipart, streamed; rest_vms.py)

    # ------------------------------------------------------------------ cross-cutting
    @staticmethod
    def _is_graphql(req: Request) -> bool:
        return req.path == "/api"

    def _warm(self) -> Response | None:
        if self.tower.warming():
            return nginx_page(self.tower.warmup_status)
        return None

    def before(self, req: Request) -> Response | None:
        self.tower.settle()
        return self._warm()

    def not_found(self, req: Request) -> Response:
        return self._warm() or RestError(404, f"Cannot {req.method} {req.path}").at(req.path).response()

    def method_not_allowed(self, req: Request, allowed: set[str]) -> Response:
        # express-style: a route that exists for another method is simply not found
        return self._warm() or RestError(404, f"Cannot {req.method} {req.path}").at(req.path).response()

    def fault_response(self, req: Request, action: dict) -> Response:
        status = int(action.get("status", 500))
        body = action.get("body")
        msg = action.get("msg") or f"injected fault {action.get('envelope_error') or status}"
        if body is None:
            code = action.get("envelope_error")
            if self._is_graphql(req):
                body = {"errors": [GqlError(msg, code or "INTERNAL_SERVER_ERROR", status=status).entry()]}
            else:
                body = RestError(status, msg, code).at(req.path).body()
        return Response(status, body, headers=action.get("headers"))

    def error(self, req: Request, exc: BaseException) -> Response:
        msg = f"simulator internal error: {type(exc).__name__}: {exc}"
        if self._is_graphql(req):
            return GqlError(msg, "INTERNAL_SERVER_ERROR", status=500).response()
        return RestError(500, msg).at(req.path).response()

    @staticmethod
    def _body(req: Request):
        """``(parsed, None)`` or ``(None, message)``; an empty body parses as None."""
        if not req.body:
            return None, None
        try:
            return json.loads(req.body.decode("utf-8")), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, f"the request body is not JSON: {exc}"

    @staticmethod
    def _cookie_sid(req: Request) -> str | None:
        raw = req.header("Cookie")
        if not raw:
            return None
        c = SimpleCookie()
        try:
            c.load(raw)
        except Exception:          # noqa: BLE001 - a malformed cookie is no session
            return None
        m = c.get("connect.sid")
        return m.value if m else None

    # ------------------------------------------------------------------ routes
    def index(self, req: Request) -> Response:
        return Response(200, UI_INDEX, content_type="text/html; charset=utf-8")

    def graphql_get(self, req: Request) -> Response:
        return GqlError("GET query missing: POST the operation as JSON {operationName, variables, query}",
                        "BAD_REQUEST", status=400).response()

    def graphql(self, req: Request) -> Response:
        # a multipart/form-data body is a GraphQL multipart request (uploads, stage 07b): graphql_backup parses it
        body, problem = graphql_backup.multipart_body(req) if graphql_backup.is_multipart(req) else self._body(req)
        if problem:
            return GqlError(problem, "BAD_REQUEST", status=400).response()
        try:
            out, headers = graphql.execute(self.tower, body, auth_header=req.header("Authorization"),
                                           cookie_sid=self._cookie_sid(req),
                                           fault=TaskFault.of(req.outcome, req.outcome_msg))
        except GqlError as exc:
            return exc.response()
        return Response.json(out, 200, headers=headers or None)

    def rest(self, req: Request) -> Response:
        name = req.params["call"]
        call = rest.REST_CALLS.get(name)
        if call is None:
            log.warning("sim: CloudTower REST call %s is not simulated -> 404", name)
            return RestError(404, f"Cannot POST {req.path}").at(req.path).response()
        body, problem = self._body(req)
        if problem:
            return RestError(400, problem).at(req.path).response()
        try:
            user_id = self.tower.authenticate(req.header("Authorization")) if call.auth else None
            ctx = rest.RestCtx(user_id, TaskFault.of(req.outcome, req.outcome_msg), req)
            out = rest.dispatch(self.tower, name, body, ctx)
        except RestError as exc:                  # Unauthenticated included (401)
            return exc.at(req.path).response()
        return _json(200, out)


class HttpRedirectApp(App):
    """tcp/80 of a CloudTower: nginx's blanket redirect to https."""

    name = "cloudtower-http"

    def __init__(self, ip: str, status: int = 301):
        super().__init__()
        self.ip = ip
        self.status = status

    def resolve(self, method: str, path: str):
        return self.redirect, {}, set()

    def redirect(self, req: Request) -> Response:
        location = f"https://{self.ip}{req.path}" + (f"?{req.raw_query}" if req.raw_query else "")
        return nginx_page(self.status, headers={"Location": location})
