"""HTTP routes of the SMTX OS deployment API (guide §01/§02), served on every host's
management address, tcp/80 (http) and tcp/443 (https).

======  ==========================================================  ===============================
GET     /api/v2/deployment/host                                      scan of the receiving host
GET     /api/v2/deployment/cluster                                   layer-2 scan (``data.hosts``)
POST    /api/v2/deployment/cluster                                   deploy (validated) -> ``data: {}``
GET     /api/v2/deployment/host/deploy_status?host_ip=...            progress of the deployment
GET     /api/v2/deployment/deploy_verify                             ``{is_deployed, platform}``
======  ==========================================================  ===============================

Every route needs header ``x-smartx-token``; otherwise HTTP 401 + error envelope.
"""
from __future__ import annotations

from typing import Callable

from ..http import App, Request, Response, ok
from .errors import EC_BAD_REQUEST, EC_INVALID, EC_NO_DEPLOYMENT, EC_NOT_FOUND, EC_UNAUTHORIZED, DeployError
from .models import DeploymentModel

TOKEN_HEADER = "x-smartx-token"


class DeploymentApp(App):
    """The model's :class:`DeployError` (and the app's own) are answered by the dispatcher."""

    name = "deployment"

    def __init__(self, model: DeploymentModel, token: str | Callable[[], str]):
        super().__init__()
        self.model = model
        self._token = token
        self.add("GET", "/api/v2/deployment/host", self.scan_host)
        self.add("GET", "/api/v2/deployment/cluster", self.scan_cluster)
        self.add("POST", "/api/v2/deployment/cluster", self.deploy)
        self.add("GET", "/api/v2/deployment/host/deploy_status", self.deploy_status)
        self.add("GET", "/api/v2/deployment/deploy_verify", self.deploy_verify)

    @property
    def token(self) -> str:
        return self._token() if callable(self._token) else self._token

    def before(self, req: Request) -> Response | None:
        got = req.header(TOKEN_HEADER)
        if not got:
            raise DeployError(EC_UNAUTHORIZED, f"missing {TOKEN_HEADER} header", 401)
        if got != self.token:
            raise DeployError(EC_UNAUTHORIZED, f"invalid {TOKEN_HEADER}", 401)
        if self.model.host(req.address) is None:
            raise DeployError(EC_NOT_FOUND, f"{req.address} is not a simulated SMTX OS host", 404)
        return None

    # ---- §01
    def scan_host(self, req: Request) -> Response:
        return ok(self.model.scan_host(req.address))

    def scan_cluster(self, req: Request) -> Response:
        return ok({"hosts": self.model.scan_cluster(req.address)})

    # ---- §02
    def deploy(self, req: Request) -> Response:
        try:
            payload = req.json()
        except ValueError as exc:
            raise DeployError(EC_BAD_REQUEST, f"request body is not valid JSON: {exc}", 400) from None
        op = self.model.deploy(payload, req.address, outcome=req.outcome, outcome_msg=req.outcome_msg,
                               outcome_stage=req.outcome_stage, rule=req.fault_id)
        # real gear answers data.msg (issue 12 item 9; the guide prints response.text without a sample)
        return ok({"msg": f"start deploying cluster {op.cluster_name} ({len(op.host_uuids)} hosts)"})

    def deploy_status(self, req: Request) -> Response:
        value = req.arg("host_ip")
        if not value:
            raise DeployError(EC_INVALID, "query parameter host_ip is required", 400)
        host = self.model.resolve_host_ip(value)
        if host is None:
            raise DeployError(EC_INVALID, f"unknown host_ip {value}", 400)
        res = self.model.status(host)
        if res is None:
            raise DeployError(EC_NO_DEPLOYMENT, f"no deployment task found for host_ip {value}", 400)
        status, body = res
        return Response.json(body, status)

    def deploy_verify(self, req: Request) -> Response:
        return ok(self.model.verify(req.address))
