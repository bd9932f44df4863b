"""HTTP routes of the SMTX OS management API ("fisheye", guide §03).

Served on every deployed host's management address (tcp/80 http, tcp/443 https) once the
deployment has succeeded, and on the cluster VIP (tcp/80, tcp/443) once ``PUT /api/v2/settings/vip``
has been applied. Before that the routes answer 404 like any unknown path of an undeployed host.

======  ==================================================  =====================================
POST    /api/v3/users:setupRoot                             set the root password once (no auth)
POST    /api/v3/sessions                                    log in -> token (no auth)
GET     /api/v2/settings/vip  | PUT                         VIP (PUT -> {} or a job: profiles vip-*)
GET     /api/v2/tools/license                               license (serial)
GET     /api/v2/settings/dns  | PUT                         DNS servers (PUT -> job)
GET     /api/v2/settings/ntp  | PUT                         NTP (PUT -> job)
GET     /api/v2/jobs/{job_id}                               job state
POST    /api/v2/ipmi/upsert_accounts                        BMC accounts -> success / failure
GET     /api/v2/network/vds   | POST                        VDS list / create (-> job)
GET     /api/v2/network/vds/{uuid}                          one VDS with vlans_count
GET     /api/v2/network/vds/{uuid}/vlans | POST            VLANs of a VDS / create one
POST    /api/v2/svt_image/create_volume?name=&size=         SVT upload volume
POST    /api/v2/svt_image/upload_template?zbs_volume_id=&chunk_num=&image_uuid=   one chunk (multipart)
POST    /api/v2/images/upload/volume?name=&size=&device=nfs&description=&task_id=   ISO upload volume (§04)
POST    /api/v2/images/upload?zbs_volume_id=&chunk_num=&image_uuid=        one ISO chunk (multipart, §04)
GET     /api/v2/images                                      finished images (SVT and ISO; profile listed: + partial)
GET     /api/v2/images/{image_uuid} | DELETE                the image / delete it (simulator: GET is extra)
GET     /api/v2/elf/cluster_recommended_cpu_models          {"cpu_models": [...]}
GET     /api/v2/elf/cluster_cpu_compatibility | PUT         {"cpu_model": ...}
======  ==================================================  =====================================

v2 routes need a session token in ``x-smartx-token`` (else 401 envelope) and answer the SmartX
envelope; the v3 routes answer plain objects and grpc-gateway style errors.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

from ..http import App, Request, Response, ok
from ..multipart import MultipartError, MultipartReader, boundary_of
from . import bodies
from .errors import GRPC_INTERNAL, bad_request, v3_invalid
from .models import FisheyeModel

log = logging.getLogger("mocks")

TOKEN_HEADER = "x-smartx-token"
_GRPC_BY_STATUS = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 501: 12, 503: 14, 504: 4}


def _fate(req: Request) -> dict[str, Any]:
    """An ``operation`` fault rule that fired on this call, as the models' keyword arguments."""
    return {"outcome": req.outcome, "outcome_msg": req.outcome_msg, "rule": req.fault_id}


class FisheyeApp(App):
    """Handlers parse the request (:mod:`.bodies`) and call the model; the model's typed errors
    (:class:`~.errors.FisheyeError`, :class:`~.errors.V3Error`) are answered by the dispatcher."""

    name = "fisheye"

    def __init__(self, model: FisheyeModel):
        super().__init__()
        self.model = model
        a = self.add
        a("POST", "/api/v3/users:setupRoot", self.setup_root)
        a("POST", "/api/v3/sessions", self.sessions)
        a("GET", "/api/v2/settings/vip", self.get_vip)
        a("PUT", "/api/v2/settings/vip", self.put_vip)
        a("GET", "/api/v2/tools/license", self.license)
        a("GET", "/api/v2/settings/dns", self.get_dns)
        a("PUT", "/api/v2/settings/dns", self.put_dns)
        a("GET", "/api/v2/settings/ntp", self.get_ntp)
        a("PUT", "/api/v2/settings/ntp", self.put_ntp)
        a("GET", "/api/v2/jobs/{job_id}", self.job)
        a("POST", "/api/v2/ipmi/upsert_accounts", self.upsert_accounts)
        a("GET", "/api/v2/network/vds", self.list_vds)
        a("POST", "/api/v2/network/vds", self.create_vds)
        a("GET", "/api/v2/network/vds/{vds_uuid}", self.get_vds)
        a("GET", "/api/v2/network/vds/{vds_uuid}/vlans", self.list_vlans)
        a("POST", "/api/v2/network/vds/{vds_uuid}/vlans", self.create_vlan)
        a("POST", "/api/v2/svt_image/create_volume", self.create_volume)
        a("POST", "/api/v2/svt_image/upload_template", self.upload_template, stream=True)
        a("POST", "/api/v2/images/upload/volume", self.create_iso_volume)
        a("POST", "/api/v2/images/upload", self.upload_iso_chunk, stream=True)
        a("GET", "/api/v2/images", self.list_images)
        a("GET", "/api/v2/images/{image_uuid}", self.get_image)
        a("DELETE", "/api/v2/images/{image_uuid}", self.delete_image)
        a("GET", "/api/v2/elf/cluster_recommended_cpu_models", self.cpu_models)
        a("GET", "/api/v2/elf/cluster_cpu_compatibility", self.get_cpu)
        a("PUT", "/api/v2/elf/cluster_cpu_compatibility", self.put_cpu)

    # ------------------------------------------------------------------ cross-cutting
    @staticmethod
    def _v3(req: Request) -> bool:
        return req.path.startswith("/api/v3/")

    def before(self, req: Request) -> Response | None:
        self.model.settle()
        if not self.model.serves(req.address):
            log.warning("sim: %s %s on %s: fisheye is not running there (cluster not deployed) -> 404",
                        req.method, req.path, req.address)
            return self.not_found(req)
        if not self._v3(req):
            self.model.authenticate(req.header(TOKEN_HEADER))       # raises FisheyeError 401
        return None

    def fault_response(self, req: Request, action: dict) -> Response:
        if not self._v3(req):
            return super().fault_response(req, action)
        status = int(action.get("status", 500))
        body = action.get("body")
        if body is None:
            body = {"code": _GRPC_BY_STATUS.get(status, 2),
                    "message": action.get("msg") or f"injected fault {action.get('envelope_error') or status}",
                    "details": []}
        return Response(status, body, headers=action.get("headers"))

    def error(self, req: Request, exc: BaseException) -> Response:
        if self._v3(req):
            return Response.json({"code": GRPC_INTERNAL, "message": f"simulator internal error: {exc}",
                                  "details": []}, 500)
        return super().error(req, exc)

    @staticmethod
    def _json(req: Request) -> Any:
        try:
            return req.json()
        except ValueError as exc:
            raise bad_request(f"request body is not valid JSON: {exc}") from None

    @staticmethod
    def _v3_json(req: Request) -> Any:
        try:
            return req.json()
        except ValueError as exc:
            raise v3_invalid(f"request body is not valid JSON: {exc}") from None

    # ------------------------------------------------------------------ v3
    def setup_root(self, req: Request) -> Response:
        return Response.json(self.model.setup_root(*bodies.setup_root(self._v3_json(req))))

    def sessions(self, req: Request) -> Response:
        return Response.json(self.model.login(*bodies.login(self._v3_json(req))))

    # ------------------------------------------------------------------ settings
    def get_vip(self, req: Request) -> Response:
        return ok(self.model.vip())

    def put_vip(self, req: Request) -> Response:
        answer = self.model.set_vip(*bodies.vip(self._json(req)), **_fate(req))
        if not answer and self.model.cluster_settings.vip_mode == "empty-body":
            return Response(200, b"")            # profile vip-empty-body: HTTP 200, no body at all
        return ok(answer)

    def license(self, req: Request) -> Response:
        return ok(self.model.license())

    def get_dns(self, req: Request) -> Response:
        return ok(self.model.dns())

    def put_dns(self, req: Request) -> Response:
        return ok(self.model.set_dns(bodies.dns(self._json(req)), **_fate(req)))

    def get_ntp(self, req: Request) -> Response:
        return ok(self.model.ntp())

    def put_ntp(self, req: Request) -> Response:
        return ok(self.model.set_ntp(*bodies.ntp(self._json(req)), **_fate(req)))

    def job(self, req: Request) -> Response:
        return ok({"job": self.model.job(req.params["job_id"])})

    # ------------------------------------------------------------------ IPMI
    def upsert_accounts(self, req: Request) -> Response:
        return ok(self.model.upsert_ipmi(bodies.ipmi_accounts(self._json(req)), outcome=req.outcome))

    # ------------------------------------------------------------------ network
    def list_vds(self, req: Request) -> Response:
        return ok(self.model.list_vds())

    def create_vds(self, req: Request) -> Response:
        return ok(self.model.create_vds(*bodies.vds(self._json(req)), **_fate(req)))

    def get_vds(self, req: Request) -> Response:
        return ok(self.model.get_vds(req.params["vds_uuid"]))

    def list_vlans(self, req: Request) -> Response:
        return ok(self.model.list_vlans(req.params["vds_uuid"]))

    def create_vlan(self, req: Request) -> Response:
        return ok(self.model.create_vlan(req.params["vds_uuid"], *bodies.vlan(self._json(req))))

    # ------------------------------------------------------------------ SVT upload
    @staticmethod
    def _session(req: Request) -> str:
        """The calling session, as a digest (profile ``no-resume`` ties a volume to its creator)."""
        return hashlib.sha256((req.header(TOKEN_HEADER) or "").encode()).hexdigest()

    def create_volume(self, req: Request) -> Response:
        return ok(self.model.create_volume(req.arg("name"), req.arg("size"), owner=self._session(req)))

    def upload_template(self, req: Request) -> Response:
        """One SVT chunk, multipart/form-data field ``file``; streamed: counted and hashed, never kept."""
        return self._receive_chunk(req, "SVT", lambda up, i, volume: volume)

    def _receive_chunk(self, req: Request, kind: str, answer) -> Response:
        """One chunk of an upload volume of ``kind`` (the SVT and ISO routes share the accounting):
        multipart/form-data field ``file``, streamed -- counted and hashed, never kept.
        ``answer(upload, chunk_num, volume)`` shapes the success ``data``."""
        # a refused target: the server answers without reading the body
        up, i = self.model.upload_target(req.arg("zbs_volume_id"), req.arg("image_uuid"), req.arg("chunk_num"), kind,
                                         owner=self._session(req))
        boundary = boundary_of(req.header("Content-Type"))
        if boundary is None or req.stream is None:
            self.model.reject_chunk(up)
            raise bad_request(f"Content-Type is {req.header('Content-Type')!r}: the chunk must be sent as "
                              f"multipart/form-data (with its boundary) with the data in field 'file'")
        digest, size, found = hashlib.sha256(), 0, False
        try:
            for part in MultipartReader(req.stream.read, boundary).parts():
                if part.name == "file" and not found:
                    found = True
                    for block in part.blocks():
                        digest.update(block)
                        size += len(block)
        except MultipartError as exc:
            self.model.reject_chunk(up)
            raise bad_request(f"malformed multipart body: {exc}") from None
        if not found:
            self.model.reject_chunk(up)
            raise bad_request("multipart body has no field 'file'")
        return ok(answer(up, i, self.model.accept_chunk(up, i, size, digest.hexdigest())))

    # ------------------------------------------------------------------ ISO upload (guide §04)
    def create_iso_volume(self, req: Request) -> Response:
        """The upload volume of an ISO. Answered with ``"error": null`` as the guide's sample shows."""
        vol = self.model.create_volume(req.arg("name"), req.arg("size"), kind="ISO",
                                       description=req.arg("description", ""), device=req.arg("device"),
                                       owner=self._session(req))
        return Response.json({"data": vol, "ec": "EOK", "error": None})

    def upload_iso_chunk(self, req: Request) -> Response:
        """One ISO chunk; answers the guide's ``{"chunk_num", "to_upload"}``."""
        return self._receive_chunk(req, "ISO", lambda up, i, volume: {"chunk_num": i,
                                                                      "to_upload": volume["to_upload"]})

    def list_images(self, req: Request) -> Response:
        """The guide's §04 image list: finished images, SVT (``type: SVT_IMAGE``) and ISO (``ISO_IMAGE``)."""
        return ok({"images": self.model.list_images()})

    def get_image(self, req: Request) -> Response:
        return ok(self.model.image(req.params["image_uuid"]))

    def delete_image(self, req: Request) -> Response:
        return ok(self.model.delete_image(req.params["image_uuid"]))

    # ------------------------------------------------------------------ CPU compatibility
    def cpu_models(self, req: Request) -> Response:
        return ok({"cpu_models": self.model.recommended_cpu_models()})

    def get_cpu(self, req: Request) -> Response:
        return ok(self.model.cpu_compatibility())

    def put_cpu(self, req: Request) -> Response:
        return ok(self.model.set_cpu_compatibility(bodies.cpu(self._json(req))))
