"""HTTP routes of the VMs family (guide §04: the CloudTower VM) on the cluster API.

Served wherever fisheye is (every deployed host's tcp/80 and tcp/443, and the VIP once applied), with
fisheye's auth (``x-smartx-token`` from ``POST /api/v3/sessions``) and envelopes.

======  ================================  ===============================================
GET     /api/v2/storage_policies          the cluster's storage policies (a list)
GET     /api/v2/vms                       every VM (a list of GET /api/v2/vms/{uuid} objects)
POST    /api/v2/vms                       create a VM (the guide's payload) -> {"job_id"}
GET     /api/v2/vms/{vm_uuid}             one VM (the guide's shape, guest_info included)
PUT     /api/v2/vms/{vm_uuid}             the guide's NIC body (IP through VM tools) -> {"job_id"}
======  ================================  ===============================================

Jobs are fisheye's: ``GET /api/v2/jobs/{job_id}``.
"""
from __future__ import annotations

from ..core import App, Request, Response, fail, ok
from ..fisheye.models import EC_BAD_REQUEST, FisheyeError
from ..fisheye.responses import FisheyeApp
from .models import VmsModel


class VmsApp(App):
    name = "vms"

    def __init__(self, model: VmsModel, fisheye_app: FisheyeApp):
        super().__init__()
        self.model = model
        self.fisheye_app = fisheye_app
        a = self.add
        a("GET", "/api/v2/storage_policies", self.storage_policies)
        a("GET", "/api/v2/vms", self.list_vms)
        a("POST", "/api/v2/vms", self.create_vm)
        a("GET", "/api/v2/vms/{vm_uuid}", self.get_vm)
        a("PUT", "/api/v2/vms/{vm_uuid}", self.update_vm)

    # fisheye's gate: deployed cluster / VIP only, session token, settle (chained: settles this model too)
    def before(self, req: Request) -> Response | None:
        return self.fisheye_app.before(req)

    def fault_response(self, req: Request, action: dict) -> Response:
        return self.fisheye_app.fault_response(req, action)

    @staticmethod
    def _call(fn, *args) -> Response:
        try:
            return ok(fn(*args))
        except FisheyeError as exc:
            return fail(exc.ec, exc.msg, exc.status)

    @staticmethod
    def _fault(req: Request) -> dict | None:
        return dict(req.operation_fault, rule=req.fault_id) if req.operation_fault else None

    def _with_body(self, req: Request, fn, *args) -> Response:
        try:
            body = req.json()
        except ValueError as exc:
            return fail(EC_BAD_REQUEST, f"request body is not valid JSON: {exc}")
        return self._call(fn, *args, body, self._fault(req))

    def storage_policies(self, req: Request) -> Response:
        return ok(self.model.storage_policies())

    def list_vms(self, req: Request) -> Response:
        return ok(self.model.list_vms())

    def create_vm(self, req: Request) -> Response:
        return self._with_body(req, self.model.create_vm)

    def get_vm(self, req: Request) -> Response:
        return self._call(self.model.get_vm, req.params["vm_uuid"])

    def update_vm(self, req: Request) -> Response:
        return self._with_body(req, self.model.update_vm, req.params["vm_uuid"])
