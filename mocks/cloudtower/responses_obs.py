"""The OVM operator's chunked uploads on a CloudTower's https app (guide §07, G L2240-L2310).

Routes (added to :class:`mocks.cloudtower.responses.CloudTowerApp` by :func:`add_ovm_routes`)::

    POST /api/ovm-operator/api/v3/chunkedUploads            {"origin_file_name"} -> the upload (v3 shape:
                                                            offset "0" a string, status "UPLOADING", KSUID id)
    POST /api/ovm-operator/api/v1/chunkedUploads            multipart/form-data: part ``file`` (the bytes) and part
                                                            ``id`` (either order) -> {id, offset: <int, cumulative>,
                                                            status: 1, origin_file_name, create_time {seconds, nanos},
                                                            update_time}; streamed, appended at the end
    POST /api/ovm-operator/api/v3/chunkedUploads/<id>:commit  -> the upload (status "COMMITTED" [inf]); starts the two
                                                            package tasks (``get-tasks``)
    GET  /api/ovm-operator/api/v3/chunkedUploads/<id>       -> the upload (v3 shape) [inf: not in the guide; what a
                                                            client reads after a chunk timed out]

Every route needs ``Authorization: Basic base64(o11y:HC!r0cks)`` **and** the ``connect.sid`` cookie of a live
session, else 401. Errors are grpc-gateway's ``{"code": <grpc code>, "message", "details": []}`` [inf]: 401 code 16,
404 code 5 (unknown upload), 400 code 3 (bad request) / 9 (a chunk or commit after the commit).
The ``file`` part (before ``id`` in the browser's order) is spooled (to a temporary file beyond 8 MiB) and appended
once the whole body has arrived: a chunk cut off mid-body appends nothing; one whose answer is lost was appended.
"""
from __future__ import annotations

import base64
import json
import tempfile

from ..http import Request, Response
from ..multipart import BLOCK, MultipartError, MultipartReader, boundary_of
from .errors import Unauthenticated
from .obs import OBS_BASIC
from .tasks import TaskFault

PREFIX = "/api/ovm-operator/api"
_SPOOL = 8 * 1024 * 1024
_GRPC = {400: 3, 401: 16, 404: 5, 409: 9}


def _error(status: int, message: str, code: int | None = None) -> Response:
    return Response.json({"code": code if code is not None else _GRPC.get(status, 2), "message": message,
                          "details": []}, status)


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: int | None = None):
        super().__init__(message)
        self.response = _error(status, message, code)


def _basic_ok(header: str | None) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, pw = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return (user, pw) == OBS_BASIC


def add_ovm_routes(app) -> None:
    """Register the OVM operator routes on a :class:`CloudTowerApp` (``app.tower``, ``app._cookie_sid``)."""
    routes = OvmRoutes(app)
    for method, path, fn, stream in (("POST", "/v3/chunkedUploads", routes.init, False),
                                     ("POST", "/v1/chunkedUploads", routes.chunk, True),
                                     ("POST", "/v3/chunkedUploads/{upload_id}:commit", routes.commit, False),
                                     ("GET", "/v3/chunkedUploads/{upload_id}", routes.read, False)):
        app.add(method, PREFIX + path, routes.guarded(fn), stream=stream)


class OvmRoutes:
    def __init__(self, app):
        self.app, self.tower = app, app.tower

    def auth(self, req: Request) -> str:
        if not _basic_ok(req.header("Authorization")):
            raise _Refused(401, "unauthorized: Authorization must be Basic o11y credentials")
        sid = self.app._cookie_sid(req)
        if not sid:
            raise _Refused(401, "unauthorized: no connect.sid session cookie")
        try:
            return self.tower.authenticate(None, cookie=sid)
        except Unauthenticated as exc:
            raise _Refused(401, f"unauthorized: connect.sid: {exc.reason}") from None

    def guarded(self, fn):
        def handler(req: Request) -> Response:
            try:
                return fn(req, self.auth(req))
            except _Refused as exc:
                return exc.response
        return handler

    def init(self, req: Request, user: str) -> Response:
        try:
            body = json.loads(req.body.decode("utf-8")) if req.body else None
        except (ValueError, UnicodeDecodeError):
            body = None
        name = body.get("origin_file_name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            return _error(400, 'the body must be JSON {"origin_file_name": "<file>"}')
        return Response.json(self.tower.obs_upload_init(name, user))

    def read(self, req: Request, user: str) -> Response:
        try:
            return Response.json(self.tower.obs_upload_view(self.tower.obs_upload(req.params["upload_id"])))
        except KeyError:
            return _error(404, f"upload {req.params['upload_id']} not found")

    def commit(self, req: Request, user: str) -> Response:
        uid = req.params["upload_id"]
        try:
            return Response.json(self.tower.obs_commit(uid, req.header("x-user-id") or user,
                                                       TaskFault.of(req.outcome, req.outcome_msg)))
        except KeyError:
            return _error(404, f"upload {uid} not found")
        except ValueError as exc:
            return _error(400, str(exc), 9)

    def chunk(self, req: Request, user: str) -> Response:
        boundary = boundary_of(req.header("Content-Type"))
        if boundary is None or req.stream is None:
            return _error(400, "the chunk must be multipart/form-data with the parts file and id")
        upload_id, spool = None, None
        try:
            for part in MultipartReader(req.stream.read, boundary).parts():
                if part.name == "id" and upload_id is None:
                    upload_id = b"".join(part.blocks()).decode("utf-8", "replace").strip()
                elif part.name == "file" and spool is None:
                    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)
                    for block in part.blocks():
                        spool.write(block)
            if not upload_id or spool is None:
                return _error(400, f"the multipart body has no part '{'id' if not upload_id else 'file'}'")
            spool.seek(0)                   # the whole body arrived: append it (a cut-off chunk appends nothing)
            appended = _append(self.tower, upload_id, iter(lambda: spool.read(BLOCK), b""))
        except MultipartError as exc:
            return _error(400, f"malformed multipart body: {exc}")
        finally:
            if spool is not None:
                spool.close()
        return Response.json(self.tower.obs_chunk_view(appended))


def _append(tower, upload_id: str, blocks):
    try:
        return tower.obs_append(upload_id, blocks)
    except KeyError:
        raise _Refused(404, f"upload {upload_id} not found") from None
    except ValueError as exc:
        raise _Refused(400, str(exc), 9) from None
