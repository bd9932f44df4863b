"""The inspection centre (巡检中心) on a CloudTower's https app (guide §08, G L3517-L3590).

Routes (added to :class:`mocks.cloudtower.responses.CloudTowerApp` by :func:`add_inspector_routes`)::

    POST /api/inspector/api/v3/jobs                          {version, cluster_uuids: [<Cluster.local_id>],
                                                             user_defined_items_names} -> {id (KSUID), version,
                                                             cluster_uuids, cluster_names: {}, user_defined_items_names}
    GET  /api/inspector/api/v3/jobs/<id>                     -> the job with status RUNNING | SUCCEEDED | FAILED
                                                             [inf: CX's guess; profile inspector-job-status-absent: 404]
    POST /api/inspector/api/v3/jobs/<id>:exportReport?format=word
                                                             {options: [{cluster_uuid, items_names,
                                                             graph_duration_months}]} -> {filename}
    GET  /api/inspector/api/v3/export/status?filename=<f>    -> {filename, status: EXPORT_RUNNING | EXPORT_SUCCEEDED |
                                                             EXPORT_FAILED (+ message [inf])}
    GET  /api/inspector/api/v1/export/download?filename=<f>  -> the zip (application/zip); before EXPORT_SUCCEEDED 404

Every route needs the REST token as raw ``Authorization`` (401 ``{"code": 16, …}`` otherwise). Errors are
grpc-gateway's ``{"code", "message", "details": []}`` [inf]: 400 code 3, 404 code 5.
"""
from __future__ import annotations

import json

from ..http import Request, Response
from .errors import Unauthenticated
from .inspector import InspectorError
from .tasks import TaskFault

PREFIX = "/api/inspector/api"


def add_inspector_routes(app) -> None:
    """Register the inspector routes on a :class:`CloudTowerApp` (``app.tower``)."""
    routes = InspectorRoutes(app.tower)
    for method, path, fn in (("POST", "/v3/jobs", routes.create),
                             ("GET", "/v3/jobs/{job_id}", routes.read),
                             ("POST", "/v3/jobs/{job_id}:exportReport", routes.export),
                             ("GET", "/v3/export/status", routes.status),
                             ("GET", "/v1/export/download", routes.download)):
        app.add(method, PREFIX + path, routes.guarded(fn))


class InspectorRoutes:
    def __init__(self, tower):
        self.tower = tower

    def guarded(self, fn):
        def handler(req: Request) -> Response:
            try:
                user = self.tower.authenticate(req.header("Authorization"))
            except Unauthenticated as exc:
                return _error(InspectorError(401, f"unauthorized: {exc.reason}"))
            try:
                return fn(req, user)
            except InspectorError as exc:
                return _error(exc)
        return handler

    @staticmethod
    def _json(req: Request):
        try:
            return json.loads(req.body.decode("utf-8")) if req.body else None
        except (ValueError, UnicodeDecodeError):
            raise InspectorError(400, "the request body is not JSON") from None

    def create(self, req: Request, user: str) -> Response:
        return Response.json(self.tower.create_inspection_job(self._json(req), user,
                                                              TaskFault.of(req.outcome, req.outcome_msg)))

    def read(self, req: Request, user: str) -> Response:
        if self.tower.inspector_job_status != "served":
            raise InspectorError(404, "Not Found")
        return Response.json(self.tower.inspection_job_view(self.tower.inspection_job(req.params["job_id"])))

    def export(self, req: Request, user: str) -> Response:
        return Response.json(self.tower.export_inspection(req.params["job_id"], req.arg("format"), self._json(req),
                                                          TaskFault.of(req.outcome, req.outcome_msg)))

    def status(self, req: Request, user: str) -> Response:
        return Response.json(self.tower.export_status_view(req.arg("filename")))

    def download(self, req: Request, user: str) -> Response:
        data = self.tower.export_download(req.arg("filename"))
        name = req.arg("filename") or "report.zip"
        return Response(200, data, content_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _error(exc: InspectorError) -> Response:
    return Response.json(exc.body(), exc.status)
