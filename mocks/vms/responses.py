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

from typing import Any

from ..fisheye.models import EC_BAD_REQUEST, FisheyeError
from ..fisheye.responses import FisheyeApp
from ..http import App, Request, Response, ok
from .models import VmsModel
from .schema import parse_create, parse_update


def _fate(req: Request, *, stage: bool = False) -> dict[str, Any]:
    """An ``operation`` fault rule that fired on this call, as the model's keyword arguments."""
    kw: dict[str, Any] = {"outcome": req.outcome, "outcome_msg": req.outcome_msg, "rule": req.fault_id}
    if stage:
        kw["outcome_stage"] = req.outcome_stage
    return kw


class VmsApp(App):
    """Handlers parse the request (:mod:`.schema`) and call the model; its typed errors
    (:class:`~mocks.fisheye.models.FisheyeError`) are answered by the dispatcher."""

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

    # fisheye's gate: deployed cluster / VIP only, session token
    def before(self, req: Request) -> Response | None:
        return self.fisheye_app.before(req)

    def fault_response(self, req: Request, action: dict) -> Response:
        return self.fisheye_app.fault_response(req, action)

    @staticmethod
    def _json(req: Request) -> Any:
        try:
            return req.json()
        except ValueError as exc:
            raise FisheyeError(EC_BAD_REQUEST, f"request body is not valid JSON: {exc}") from None

    def storage_policies(self, req: Request) -> Response:
        return ok(self.model.storage_policies())

    def list_vms(self, req: Request) -> Response:
        return ok(self.model.list_vms())

    def create_vm(self, req: Request) -> Response:
        return ok(self.model.create_vm(parse_create(self._json(req)), **_fate(req, stage=True)))

    def get_vm(self, req: Request) -> Response:
        return ok(self.model.get_vm(req.params["vm_uuid"]))

    def update_vm(self, req: Request) -> Response:
        body = self._json(req)
        vm = self.model.existing(req.params["vm_uuid"])          # 404 before the body's shape is checked
        return ok(self.model.update_vm(vm.uuid, parse_update(body), **_fate(req)))
