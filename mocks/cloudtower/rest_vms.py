"""REST v2 calls of stages 09-11 (``POST /v2/api/<call>``, the SDK's shapes; state in :mod:`mocks.cloudtower.vms`).

JSON calls (registered in :data:`mocks.cloudtower.rest.REST_CALLS` when ``rest.py`` imports this module):
``import-vm`` / ``clone-vm`` (lists -> ``list[WithTaskVm]``), ``get-vms``, ``get-vm-nics``, ``get-vm-disks``,
``get-vm-volumes``, ``start-vm`` / ``shutdown-vm`` / ``poweroff-vm`` / ``migrate-vm`` / ``update-vm-nic``
(``{where, data?}`` -> ``list[WithTaskVm]``), ``delete-vm`` / ``delete-vm-volume`` (-> ``[{data: {id}, task_id}]``,
the SDK's ``WithTaskDeleteVm`` / ``WithTaskDeleteVmVolume``), ``cancel-upload-task`` (``{where}`` -> ``list[str]``),
``get-vm-metrics`` (``GetVmMetricInput``, an object: the registry's ``query`` kind).

Multipart calls (``parse-ovf``, ``upload-elf-file``): :func:`add_vm_upload_routes` mounts them on the tower's https
app as streaming routes (they win over ``/v2/api/{call}``): the body is read part by part
(:class:`mocks.multipart.MultipartReader`), text fields up to ``MAX_FIELD_BYTES``, the ``file`` part kept only up to
one chunk (``tower.elf_part_limit()``; the OVF descriptor up to ``MAX_OVF_BYTES``) -- an 8 GB body never sits in
memory. Not multipart, a missing ``file`` -> 400; no token -> 401.
"""
from __future__ import annotations

from typing import Any

from ..http import Request, Response
from ..multipart import MultipartError, MultipartReader, boundary_of
from .errors import RestError
from .models import CloudTowerModel
from .rest import RestCtx, rest_call
from .tasks import TaskFault
from .vm_uploads import MAX_OVF_BYTES, FilePart

MAX_FIELD_BYTES = 64 * 1024
_ELF_FIELDS = {"cluster_id", "name", "size", "size_unit", "upload_task_id"}


def _rel_vms(tower: CloudTowerModel) -> dict:
    return {"vm": {v["id"]: v for v in tower.list_ct_vms()}}


# =========================================================================== JSON calls
@rest_call("import-vm", kind="create")
def import_vm(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.import_vms(items, ctx.user_id, ctx.fault)


@rest_call("clone-vm", kind="create")
def clone_vm(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.clone_vms(items, ctx.user_id, ctx.fault)


@rest_call("get-vms", kind="get", typename="Vm")
def get_vms(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_ct_vms()


@rest_call("get-vm-nics", kind="get", typename="VmNic", relations=_rel_vms)
def get_vm_nics(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_vm_nics()


@rest_call("get-vm-disks", kind="get", typename="VmDisk", relations=_rel_vms)
def get_vm_disks(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_vm_disks()


@rest_call("get-vm-volumes", kind="get", typename="VmVolume")
def get_vm_volumes(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_vm_volumes()


def _action(kind: str):
    def handler(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
        return tower.vm_action(kind, body, ctx.user_id, ctx.fault)
    return handler


for _kind in ("start", "shutdown", "poweroff", "delete", "migrate"):
    rest_call(f"{_kind}-vm", kind="action")(_action(_kind))


@rest_call("update-vm-nic", kind="action")
def update_vm_nic(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.update_vm_nics(body, ctx.user_id, ctx.fault)


@rest_call("delete-vm-volume", kind="action")
def delete_vm_volume(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.delete_vm_volumes(body, ctx.user_id, ctx.fault)


@rest_call("cancel-upload-task", kind="action")
def cancel_upload_task(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[str]:
    if set(body) != {"where"}:
        raise RestError(400, "cancel-upload-task: the body is {where} (CancelUploadTaskParams)")
    return tower.cancel_upload_tasks(body["where"])


@rest_call("get-vm-metrics", kind="query")
def get_vm_metrics(tower: CloudTowerModel, body: Any, ctx: RestCtx) -> list[dict]:
    return tower.vm_metrics(body)


# =========================================================================== multipart calls
def _read_form(req: Request, file_limit: int) -> tuple[dict[str, str], FilePart | None]:
    boundary = boundary_of(req.header("Content-Type"))
    if boundary is None:
        raise RestError(400, "the body must be multipart/form-data (with a boundary)")
    fields: dict[str, str] = {}
    part_file: FilePart | None = None
    try:
        for part in MultipartReader(req.stream.read, boundary).parts():
            if part.name == "file":
                part_file = FilePart()
                for block in part.blocks():
                    part_file.size += len(block)
                    if part_file.size <= file_limit:
                        part_file.blocks.append(block)
                    else:
                        part_file.too_big, part_file.blocks = True, []
            elif part.name:
                raw = b""
                for block in part.blocks():
                    raw += block
                    if len(raw) > MAX_FIELD_BYTES:
                        raise RestError(400, f"multipart field {part.name!r} is too large")
                try:
                    fields[part.name] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise RestError(400, f"multipart field {part.name!r} is not UTF-8 text") from None
    except MultipartError as exc:
        raise RestError(400, f"malformed multipart body: {exc}") from None
    return fields, part_file


def _authed(app, req: Request, handler) -> Response:
    try:
        user_id = app.tower.authenticate(req.header("Authorization"))
        out = handler(user_id)
    except RestError as exc:                  # Unauthenticated included (401)
        return exc.at(req.path).response()
    return Response.json(out, 200)


def parse_ovf_route(app, req: Request) -> Response:
    def handle(user_id):
        fields, part = _read_form(req, MAX_OVF_BYTES)
        if part is None:
            raise RestError(400, "parse-ovf: file (the .ovf descriptor) is required")
        if part.too_big:
            raise RestError(400, f"parse-ovf: the file is larger than {MAX_OVF_BYTES} bytes: not an OVF descriptor")
        return app.tower.parse_ovf(b"".join(part.blocks), fields.get("cluster_id"))
    return _authed(app, req, handle)


def upload_elf_route(app, req: Request) -> Response:
    def handle(user_id):
        fields, part = _read_form(req, app.tower.elf_part_limit())
        unknown = sorted(set(fields) - _ELF_FIELDS)
        if unknown:
            raise RestError(400, f"upload-elf-file: unknown field(s) {unknown}")
        return app.tower.upload_elf_file(fields, part, TaskFault.of(req.outcome, req.outcome_msg))
    return _authed(app, req, handle)


def add_vm_upload_routes(app) -> None:
    """Mount ``parse-ovf`` and ``upload-elf-file`` (streamed multipart) on a :class:`CloudTowerApp`."""
    app.add("POST", "/v2/api/parse-ovf", lambda req: parse_ovf_route(app, req), stream=True)
    app.add("POST", "/v2/api/upload-elf-file", lambda req: upload_elf_route(app, req), stream=True)

