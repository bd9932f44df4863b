"""REST v2 calls of stage 07b (``POST /v2/api/<call>``, the SDK's shapes): ``create-vm-vlan`` (a list of
``VmVlanCreationParams`` -> a list of ``WithTask<Vlan>``, the VLAN ``entityAsyncStatus: CREATING`` until its task
SUCCESSED), ``get-upload-tasks``, ``get-backup-services``, ``get-cloudtower-application-packages`` (no ``filename``:
the SDK's model has none). Registered when ``rest.py`` imports this module (its last lines); state in
:mod:`mocks.cloudtower.backup`."""
from __future__ import annotations

from .models import CloudTowerModel
from .rest import RestCtx, rest_call


@rest_call("create-vm-vlan", kind="create")
def create_vm_vlan(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.create_vm_vlans(items, ctx.user_id, ctx.fault)


@rest_call("get-upload-tasks", kind="get", typename="UploadTask")
def get_upload_tasks(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_upload_tasks()


@rest_call("get-backup-services", kind="get", typename="BackupService")
def get_backup_services(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_backup_services(rest=True)


@rest_call("get-cloudtower-application-packages", kind="get", typename="CloudTowerApplicationPackage")
def get_cloudtower_application_packages(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_packages(rest=True)
