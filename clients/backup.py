"""The backup service (iomesh-backup) through CloudTower, guide §07 "部署备份" (facts: the stage 05-08 API facts,
"Stage 07b"): the GraphQL documents as the guide sends them, the package upload, the storage VLAN, the service.

GraphQL calls go with the ``connect.sid`` cookie only (the guide's §07 captures send no token), through
:meth:`CloudTowerClient.graphql(session="cookie")`: one re-login on a 401 / UNAUTHENTICATED. REST calls
(``get-vdses``, ``get-vlans``, ``create-vm-vlan``, ``get-tasks``, ``get-upload-tasks``) use the token, in the official
SDK's shapes (creation calls a JSON list, answers a list of ``{data, task_id}``).

The upload (:class:`BackupUpload`) is an :class:`clients.upload.UploadApi`: the one chunked uploader streams the chunks
(memory flat, % / MB/s / ETA), records the upload task before its first chunk (a killed run continues it), and, after
a chunk whose answer was lost, asks the server's view (:meth:`BackupUpload.status`: ``get-upload-tasks``, else the
package list) before anything is sent again. Chunk numbers are 1-based on the wire (``k = chunk_num + 1``), the chunk
size is the one ``createUploadTask`` answers. A chunk is never sent a second time without the server's view saying it
still misses it (:class:`BlindResend`)."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from .base import MUTATION, ApiError, _excerpt
from .cloudtower import TASK_FAILED, CloudTowerClient, GraphQLError, _one
from .ct_uploads import UPLOAD_DONE, UPLOAD_FAILED, missing_chunks, upload_tasks  # noqa: F401 - UPLOAD_DONE re-exported

PACKAGE_NAME = "iomesh-backup"          # CloudTowerApplicationPackage.name of the backup package (guide L2907)
CHUNK_SIZE = 4 * 1024 * 1024            # what the guide asks for; the server's answer wins
CHUNK_TIMEOUT = 60.0                    # seconds for one chunk's answer (the older tool: 30 s, no retry)
DEFAULT_STORAGE_VLAN = "backup-storage-network"   # the older tool's name when the plan has none (facts 07b.3)
SERVICE_FAILED = {"INSTALL_FAILED", "ERROR"}      # SDK BackupServiceStatus: terminal failures of an install
SERVICE_OK = "RUNNING"

Q_PACKAGES = (
    "query cloudTowerApplicationPackages($where: CloudTowerApplicationPackageWhereInput, $orderBy: "
    "CloudTowerApplicationPackageOrderByInput, $skip: Int, $first: Int) {\n  cloudTowerApplicationPackages(where: "
    "$where, orderBy: $orderBy, skip: $skip, first: $first) {\n    id\n    filename\n    version\n    architecture\n"
    "    __typename\n  }\n  cloudTowerApplicationPackagesConnection(where: $where) {\n    aggregate {\n      count\n"
    "      __typename\n    }\n    __typename\n  }\n}\n")
Q_CREATE_UPLOAD_TASK = ("mutation createUploadTask($data: UploadTaskCreateInput!) {\n  createUploadTask(data: $data) {\n"
                        "    id\n    current_chunk\n    chunk_size\n    __typename\n  }\n}\n")
Q_UPLOAD_CHUNK = ("mutation uploadCloudTowerApplicationPackage($data: UploadCloudTowerApplicationPackageInput!) {\n"
                  "  uploadCloudTowerApplicationPackage(data: $data) {\n    id\n    status\n    current_chunk\n"
                  "    chunk_size\n    __typename\n  }\n}\n")
Q_CREATE_SERVICE = ("mutation createBackupService($data: BackupServiceCreateInput!, $effect: CreateBackupServiceEffect) "
                    "{\n  createBackupService(data: $data, effect: $effect) {\n    id\n    __typename\n  }\n}\n")
Q_SERVICES = (
    "query getBackupServices($where: BackupServiceWhereInput) {\n  backupServices(where: $where) {\n    id\n    name\n"
    "    status\n    entityAsyncStatus\n    application {\n      id\n      package {\n        id\n        version\n"
    "        architecture\n        __typename\n      }\n      targetPackage\n      instanceStatuses\n"
    "      __typename\n    }\n    backup_clusters {\n      id\n      name\n      __typename\n    }\n"
    "    backup_plans {\n      id\n      name\n      __typename\n    }\n    running_vm {\n      id\n      status\n"
    "      cpu_usage\n      memory_usage\n      __typename\n    }\n    __typename\n  }\n}\n")
Q_UPDATE_SERVICE = ("mutation updateBackupService($where: BackupServiceWhereUniqueInput!, $data: BackupServiceUpdateInput!)"
                    " {\n  updateBackupService(where: $where, data: $data) {\n    id\n    name\n    __typename\n  }\n}\n")


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# =========================================================================== package
def packages(ct: CloudTowerClient) -> list[dict]:
    """``cloudTowerApplicationPackages`` named iomesh-backup (the guide's variables: first 50)."""
    data = ct.graphql("cloudTowerApplicationPackages", Q_PACKAGES,
                      {"skip": 0, "first": 50, "where": {"AND": [{"name": PACKAGE_NAME}]}}, session="cookie")
    return list(data.get("cloudTowerApplicationPackages") or [])


def same_package(pkgs: list[dict], *, arch: str, version: str, filename: str | None = None) -> dict | None:
    """The registered package of this file (``filename``), else of the same architecture and version."""
    if filename:
        named = [p for p in pkgs if p.get("filename") == filename]
        if named:
            return named[0]
    return next((p for p in pkgs if str(p.get("architecture") or "").upper() == arch.upper()
                 and str(p.get("version") or "").lstrip("vV") == version.lstrip("vV")), None)


class BlindResend(RuntimeError):
    """A chunk the server may already have would be sent again without its view saying it misses it."""


class BackupUpload:
    """:class:`clients.upload.UploadApi` over ``createUploadTask`` + ``uploadCloudTowerApplicationPackage`` (GraphQL
    multipart request spec, 1-based ``current_chunk``). ``volume["image_uuid"]`` is the upload task id (the key the
    uploader's journal keeps); ``to_upload`` lists 0-based chunk numbers, as the uploader counts."""

    def __init__(self, ct: CloudTowerClient, *, chunk_timeout: float = CHUNK_TIMEOUT, name: str | None = None):
        self.ct, self.chunk_timeout = ct, chunk_timeout
        self.name = name
        self.sent: set[tuple[str, int]] = set()       # (task id, k) sent to the server in this process
        self.view: dict[str, list[int] | None] = {}   # task id -> the chunks its last status said are missing
        self.size: int | None = None
        self.confirmed_by: str | None = None          # how a late last chunk was confirmed (notes)

    # --- UploadApi -------------------------------------------------------------------------------------------
    def create(self, name: str, size: int) -> dict:
        self.name, self.size = name, size
        data = {"status": "INITIALIZING", "current_chunk": 1, "chunk_size": CHUNK_SIZE,
                "resource_type": "CLOUDTOWER_APPLICATION_PACKAGE", "size": size,
                "args": {"name": name, "package_name": PACKAGE_NAME}, "started_at": _now_iso()}
        task = self.ct.graphql("createUploadTask", Q_CREATE_UPLOAD_TASK, {"data": data}, mutation=True,
                               session="cookie").get("createUploadTask") or {}
        if not task.get("id") or not task.get("chunk_size"):
            raise AssertionError(f"createUploadTask 未返回任务 ID 与分片大小 / createUploadTask answered no id and "
                                 f"chunk_size: {str(task)[:300]}")
        chunk = int(task["chunk_size"])
        return {"image_uuid": task["id"], "chunk_size": chunk, "size": size,
                "to_upload": list(range(max(1, math.ceil(size / chunk))))}

    def send(self, volume: dict, chunk_num: int, chunk) -> dict:
        task_id, k = volume["image_uuid"], chunk_num + 1
        if (task_id, k) in self.sent and chunk_num not in (self.view.get(task_id) or []):
            raise BlindResend(f"分片 {k} 可能已被服务端收到，服务端状态未知，不重发 / chunk {k} may already be on the "
                              f"server and its state is unknown: not sent again")
        self.sent.add((task_id, k))
        self.view.pop(task_id, None)
        operations = {"operationName": "uploadCloudTowerApplicationPackage", "query": Q_UPLOAD_CHUNK,
                      "variables": {"data": {"upload_task_id": task_id, "file": None, "current_chunk": k}}}
        files = {"operations": (None, json.dumps(operations)), "map": (None, '{"1":["variables.data.file"]}'),
                 "1": (self.name or "blob", chunk, "application/octet-stream")}
        resp = self.ct.authed("POST", "/api", session="cookie", files=files, kind=MUTATION,
                              timeout=self.chunk_timeout,
                              headers={"x-apollo-operation-name": "uploadCloudTowerApplicationPackage"})
        body = self.ct.check(resp) or {}
        if body.get("errors"):
            err = GraphQLError("POST", self.ct.url("/api"), resp.status_code, _excerpt(resp.content),
                               "备份包分片上传失败 / the backup package chunk was refused",
                               ec="uploadCloudTowerApplicationPackage")
            err.errors = list(body["errors"]) if isinstance(body["errors"], list) else [body["errors"]]
            raise err
        answer = (body.get("data") or {}).get("uploadCloudTowerApplicationPackage") or {}
        if answer.get("status") == UPLOAD_FAILED:
            raise AssertionError(f"上传任务 {task_id} 在分片 {k} 后为 FAILED / the upload task {task_id} is FAILED "
                                 f"after chunk {k}")
        view = self.view[task_id] = self._missing(volume, answer)
        return {"to_upload": view} if view is not None else {}

    def status(self, volume: dict) -> dict | None:
        """The server's view of the upload: ``get-upload-tasks`` by id; else (no such call, or the task gone) the
        package list (a registered package of this file: complete). None when neither tells."""
        task_id = volume["image_uuid"]
        view: list[int] | None = None
        try:
            tasks = upload_tasks(self.ct, ids=[task_id])
        except ApiError:
            tasks = []
        if tasks:
            view = self._missing(volume, tasks[0])
            if view == []:
                self.confirmed_by = "get-upload-tasks"
        elif self.name and any(p.get("filename") == self.name for p in packages(self.ct)):
            view, self.confirmed_by = [], "cloudTowerApplicationPackages"
        self.view[task_id] = view
        return None if view is None else {"to_upload": view, "chunk_size": volume.get("chunk_size")}

    def delete(self, volume: dict) -> None:
        """No call to delete an upload task is documented: an abandoned task is left to CloudTower."""

    # --- helpers -------------------------------------------------------------------------------------------------
    def _missing(self, volume: dict, task: dict) -> list[int] | None:
        """0-based chunks the task still misses (:func:`clients.ct_uploads.missing_chunks`); a resumed volume's size
        from the task."""
        size = int(task.get("size") or volume.get("size") or self.size or 0)
        self.size = size or self.size
        return missing_chunks(task, int(task.get("chunk_size") or volume["chunk_size"]), size)


# =========================================================================== storage network
def vdses(ct: CloudTowerClient, cluster_id: str) -> list[dict]:
    """The cluster's VDSes: ``get-vdses`` scoped to it, and only those the answer says are its (a server that ignored
    the filter still never hands over another cluster's switch of the same name)."""
    found = ct.rest("get-vdses", {"where": {"cluster": {"id": cluster_id}}}) or []
    return [v for v in found if (v.get("cluster") or {}).get("id") == cluster_id]


def pick_vds(found: list[dict], name: str) -> list[dict]:
    """The VDS named ``name`` among ``found`` (exact, else case-insensitive containment as the guide's "包含
    vDS-Storage 字样"): a list, so the caller sees none or several."""
    exact = [v for v in found if v.get("name") == name]
    return exact or [v for v in found if name.lower() in str(v.get("name") or "").lower()]


def vlans(ct: CloudTowerClient, *, vds_id: str | None = None, vds_ids: list[str] | None = None,
          name: str | None = None) -> list[dict]:
    """``get-vlans`` on one VDS (``vds_id``) or on several (``vds_ids``: a cluster's, from :func:`vdses`), by
    ``name``; filtered client-side too (``vds: {id_in}`` rather than ``vds: {cluster: {id}}``, which a server may not
    take: the simulator refuses it)."""
    where: dict[str, Any] = {}
    if name:
        where["name"] = name
    if vds_id:
        where["vds"] = {"id": vds_id}
    elif vds_ids is not None:
        where["vds"] = {"id_in": list(vds_ids)}
    found = ct.rest("get-vlans", {"where": where}) or []
    allowed = {vds_id} if vds_id else set(vds_ids) if vds_ids is not None else None
    return [v for v in found if (not name or v.get("name") == name)
            and (allowed is None or (v.get("vds") or {}).get("id") in allowed)]


def create_vm_vlan(ct: CloudTowerClient, vds_id: str, name: str, vlan_id: int) -> dict:
    """``create-vm-vlan`` (a list of ``VmVlanCreationParams``): the one ``{data: Vlan, task_id}``."""
    return _one(ct.rest("create-vm-vlan", [{"vds_id": vds_id, "name": name, "vlan_id": int(vlan_id)}]),
                "create-vm-vlan")


def vm_vlan(found: list[dict], vds_name: str | None, name: str | None) -> dict | None:
    """The VM network (type VM) called ``name`` (else ``default``) on the VDS ``vds_name`` among a cluster's VLANs."""
    vm = [v for v in found if v.get("type") in (None, "VM")
          and (not vds_name or (v.get("vds") or {}).get("name") == vds_name)]
    return (next((v for v in vm if name and v.get("name") == name), None)
            or next((v for v in vm if v.get("name") == "default"), None))


# =========================================================================== service
def services(ct: CloudTowerClient, *, name: str | None = None, id: str | None = None) -> list[dict]:
    """``backupServices`` (the guide's getBackupServices), filtered by ``name`` / ``id`` (also client-side)."""
    where = {k: v for k, v in (("id", id), ("name", name)) if v}
    data = ct.graphql("getBackupServices", Q_SERVICES, {"where": where} if where else {}, session="cookie")
    return [s for s in data.get("backupServices") or []
            if (not name or s.get("name") == name) and (not id or s.get("id") == id)]


def service_data(name: str, package_id: str, *, mgmt: dict, storage: dict) -> dict:
    """``BackupServiceCreateInput`` as the guide sends it (L3272): the management network doubles as the backup
    network (``MANAGEMENT``), the storage NIC is a new NIC on ``storage['vlan']`` (``NEW_NIC``).
    ``mgmt``: ip, subnet_mask, gateway, vlan (a CloudTower Vlan id); ``storage``: ip, subnet_mask, vlan."""
    data = {"name": name, "entityAsyncStatus": "CREATING", "status": "INSTALLING",
            "application": {"create": {"instances": {"create": []}, "state": "INSTALLING", "instanceStatuses": [],
                                       "name": app_name(name), "resourceVersion": 0, "vmSpec": {},
                                       "targetPackage": package_id}},
            "kube_config": "", "storage_network_type": "NEW_NIC", "backup_network_type": "MANAGEMENT"}
    for prefix in ("management", "backup"):
        data.update({f"{prefix}_network_gateway": mgmt["gateway"], f"{prefix}_network_ip": mgmt["ip"],
                     f"{prefix}_network_subnet_mask": mgmt["subnet_mask"], f"{prefix}_network_vlan": mgmt["vlan"]})
    data.update({"storage_network_ip": storage["ip"], "storage_network_subnet_mask": storage["subnet_mask"],
                 "storage_network_vlan": storage["vlan"]})
    # the guide's key order: management, storage, backup
    order = [k for k in data if not k.startswith(("backup_network_", "storage_network_ip", "storage_network_s",
                                                  "storage_network_v"))]
    order += [k for k in data if k.startswith("storage_network_") and k != "storage_network_type"]
    order += [k for k in data if k.startswith("backup_network_") and k != "backup_network_type"]
    return {k: data[k] for k in order}


def app_name(service: str) -> str:
    """The application CloudTower installs for service ``service`` (its install task: "Install Application <it>")."""
    return f"backup-{service}"


def create_service(ct: CloudTowerClient, data: dict, cluster_id: str) -> str:
    answer = ct.graphql("createBackupService", Q_CREATE_SERVICE,
                        {"data": data, "effect": {"running_cluster": cluster_id, "running_host": "AUTO_SCHEDULE"}},
                        mutation=True, session="cookie")
    sid = (answer.get("createBackupService") or {}).get("id")
    if not sid:
        raise AssertionError(f"createBackupService 未返回服务 ID / createBackupService answered no id: {answer}")
    return sid


def set_clusters(ct: CloudTowerClient, service_id: str, cluster_ids: list[str]) -> dict:
    """``updateBackupService`` with ``backup_clusters: {set: [...]}`` (``set`` replaces the list: pass them all)."""
    answer = ct.graphql("updateBackupService", Q_UPDATE_SERVICE,
                        {"where": {"id": service_id}, "data": {"backup_clusters": {"set": [{"id": c}
                                                                                          for c in cluster_ids]}}},
                        mutation=True, session="cookie")
    return answer.get("updateBackupService") or {}


def install_task(ct: CloudTowerClient, service: dict) -> dict | None:
    """The service's install task ("Install Application backup-<svc>"): the one on its application
    (``resource_id``) when the tasks say, else the newest of that description."""
    desc = f"Install Application {app_name(service.get('name') or '')}"
    found = ct.rest("get-tasks", {"where": {"description_contains": desc}, "orderBy": "local_created_at_DESC"}) or []
    found = [t for t in found if desc in str(t.get("description") or "")]
    app_id = (service.get("application") or {}).get("id")
    mine = [t for t in found if app_id and t.get("resource_id") == app_id]
    if mine or any(t.get("resource_id") for t in found):
        found = mine            # another application's task (an earlier service's) is never this one's
    found.sort(key=lambda t: str(t.get("local_created_at") or t.get("started_at") or ""), reverse=True)
    return found[0] if found else None


def instance_ips(service: dict) -> list[str]:
    """The IPs of the service VM's NICs as ``instanceStatuses`` shows them (guide L3328)."""
    out = []
    for inst in (service.get("application") or {}).get("instanceStatuses") or []:
        nics = (((inst or {}).get("vm") or {}).get("network") or {}).get("nics") or []
        out += [n.get("ip") for n in nics if isinstance(n, dict) and n.get("ip")]
    return out


def install_failure(service: dict, task: dict | None) -> str | None:
    """Why the install failed, in CloudTower's words (None: it has not failed)."""
    status = service.get("status")
    task_failed = (task or {}).get("status") == TASK_FAILED
    if status not in SERVICE_FAILED and not task_failed:
        return None
    said = [f"status={status}"]
    if task:
        said.append(f"task {task.get('id')} {task.get('status')}: {task.get('error_message') or '-'}")
    for inst in (service.get("application") or {}).get("instanceStatuses") or []:
        err = ((inst or {}).get("status") or {}).get("error")
        if err:
            said.append(f"instance error: {str(err)[:200]}")
    return "; ".join(said)
