"""The official CloudTower SDK (``cloudtower-sdk`` 2.23.0, test-only) against ``python -m mocks serve --preset
components-ready``: ``create-vm-vlan`` (``VlanApi.create_vm_vlan``, a list of ``VmVlanCreationParams``), its task, the
VLAN in ``get-vlans`` and on the VDS, the duplicate refused with an ``ErrorBody``; ``get-backup-services``,
``get-cloudtower-application-packages`` and ``get-upload-tasks`` deserialized by the SDK and checked against its
models (:func:`tests.test_sim_cloudtower_sdk.check_shape`). Only 127.0.0.0/8 is contacted."""
from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

ct = pytest.importorskip("cloudtower", reason="cloudtower-sdk is a test dependency: pip install -e '.[test]'")
from cloudtower import models as M  # noqa: E402
from cloudtower.api import (BackupServiceApi, CloudTowerApplicationPackageApi, TaskApi, UploadTaskApi,  # noqa: E402
                            UserApi, VdsApi, VlanApi)
from cloudtower.exceptions import ApiException  # noqa: E402

from .sdk_serve import TOWER_PW, sdk_client, sdk_configuration, serve  # noqa: E402
from .sdk_serve import loopback as _loopback  # noqa: E402
from .test_sim_cloudtower_sdk import _shape, check_shape  # noqa: E402

PRESET = "components-ready"


@pytest.fixture(scope="module")
def served():
    with serve(PRESET, wait_s=90) as info:
        yield info


@pytest.fixture
def sdk(served, monkeypatch):
    with sdk_client(sdk_configuration(served, monkeypatch)) as (client, rec):
        login = UserApi(client).login(M.LoginInput(username="root", password=TOWER_PW, source=M.UserSource.LOCAL))
        client.configuration.api_key["Authorization"] = login.data.token
        yield client, rec


def test_the_sdk_creates_a_vm_vlan_and_reads_the_backup_service(sdk, served):
    client, rec = sdk
    backup = served["summary"]["backup"]
    cluster_id = backup["clusters"][0]
    vdses = VdsApi(client).get_vdses(M.GetVdsesRequestBody(where=M.VdsWhereInput(
        cluster=M.ClusterWhereInput(id=cluster_id), name_contains="Storage")))
    _shape(rec, "list[Vds]")
    (vds,) = vdses
    vlans = VlanApi(client)
    (made,) = vlans.create_vm_vlan([M.VmVlanCreationParams(vds_id=vds.id, name="sdk-backup-net", vlan_id=21)])
    raw = _shape(rec, "list[WithTaskVlan]")
    assert raw[0]["data"]["entityAsyncStatus"] == "CREATING" and made.task_id
    assert (made.data.name, made.data.vlan_id, made.data.vds.id) == ("sdk-backup-net", 21, vds.id)
    with pytest.raises(ApiException) as exc:
        vlans.create_vm_vlan([M.VmVlanCreationParams(vds_id=vds.id, name="sdk-backup-net")])
    assert exc.value.status == 400 and not check_shape(json.loads(exc.value.body), "ErrorBody")

    deadline = time.monotonic() + 30
    while True:
        (task,) = TaskApi(client).get_tasks(M.GetTasksRequestBody(where=M.TaskWhereInput(id=made.task_id)))
        _shape(rec, "list[Task]")
        if task.status in (M.TaskStatus.SUCCESSED, M.TaskStatus.FAILED) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert task.status == M.TaskStatus.SUCCESSED
    (vlan,) = vlans.get_vlans(M.GetVlansRequestBody(where=M.VlanWhereInput(name="sdk-backup-net")))
    _shape(rec, "list[Vlan]")
    assert vlan.id == made.data.id and vlan.entity_async_status is None and vlan.vlan_id == 21
    (vds,) = VdsApi(client).get_vdses(M.GetVdsesRequestBody(where=M.VdsWhereInput(id=vds.id)))
    assert "sdk-backup-net" in [v.name for v in vds.vlans]

    (svc,) = BackupServiceApi(client).get_backup_services(M.GetBackupServicesRequestBody())
    _shape(rec, "list[BackupService]")
    assert (svc.id, svc.status, [c.id for c in svc.backup_clusters]) == (backup["service"]["id"], "RUNNING",
                                                                        [cluster_id])
    assert svc.storage_network_vlan == backup["vlan"]["id"] and svc.storage_network_ip == backup["storage_ip"]
    (pkg,) = CloudTowerApplicationPackageApi(client).get_cloud_tower_application_packages(
        M.GetCloudTowerApplicationPackagesRequestBody(where=M.CloudTowerApplicationPackageWhereInput(
            name="iomesh-backup")))
    _shape(rec, "list[CloudTowerApplicationPackage]")
    assert (pkg.id, pkg.version, pkg.architecture) == (backup["package"]["id"], backup["package"]["version"], "X86_64")
    assert UploadTaskApi(client).get_upload_tasks(M.GetUploadTasksRequestBody()) == []    # the preset uploads nothing
    _shape(rec, "list[UploadTask]")
    assert all(_loopback(urlsplit(u).hostname) for u in rec.urls)
