"""Simulated CloudTower, stage 07b (backup): application packages uploaded through GraphQL multipart requests (1-based
chunks, rejections, registration delay), ``create-vm-vlan`` (task, the network on the cluster), the backup service
(INSTALLING -> RUNNING, INSTALL_FAILED by a fault, ``backup_clusters`` set semantics), the fault hooks stage 07b's
tests need (last chunk processed then dropped, slow registration, a VDS-name collision, a stale install task), the
``components-ready`` preset and snapshots. In-process simulators over real HTTPS on loopback, started from a
``cloudtower-configured`` snapshot (cluster CONNECTED)."""
from __future__ import annotations

import hashlib
import json
import math

import httpx
import pytest

from mocks import Simulator
from mocks.presets import apply_preset
from mocks.presets_backup import storage_ip
from mocks.testing import ssl_context

from .ct_world import preset_snapshot, three_host_plan, towers
from .test_sim_cloudtower import TOWER_PW, Tower, rest_error
from .test_sim_cloudtower_sdk import check_shape

# the guide's documents (§07 backup, L2822 / L2853 / L2907 / L3272 / L3287 / L3501), verbatim but for __typename
Q_CREATE_UPLOAD = ("mutation createUploadTask($data: UploadTaskCreateInput!) {\n  createUploadTask(data: $data) {\n"
                   "    id\n    current_chunk\n    chunk_size\n    __typename\n  }\n}\n")
Q_UPLOAD = ("mutation uploadCloudTowerApplicationPackage($data: UploadCloudTowerApplicationPackageInput!) {\n"
            "  uploadCloudTowerApplicationPackage(data: $data) {\n    id\n    status\n    current_chunk\n    chunk_size\n"
            "    __typename\n  }\n}\n")
Q_PACKAGES = ("query cloudTowerApplicationPackages($where: CloudTowerApplicationPackageWhereInput, $orderBy: "
              "CloudTowerApplicationPackageOrderByInput, $skip: Int, $first: Int) {\n  cloudTowerApplicationPackages("
              "where: $where, orderBy: $orderBy, skip: $skip, first: $first) {\n    id\n    filename\n    version\n"
              "    architecture\n    __typename\n  }\n  cloudTowerApplicationPackagesConnection(where: $where) {\n"
              "    aggregate {\n      count\n      __typename\n    }\n    __typename\n  }\n}\n")
Q_CREATE_SVC = ("mutation createBackupService($data: BackupServiceCreateInput!, $effect: CreateBackupServiceEffect) {\n"
                "  createBackupService(data: $data, effect: $effect) {\n    id\n    __typename\n  }\n}\n")
Q_SERVICES = ("query getBackupServices($where: BackupServiceWhereInput) {\n  backupServices(where: $where) {\n    id\n"
              "    name\n    status\n    entityAsyncStatus\n    application {\n      id\n      package {\n        id\n"
              "        version\n        architecture\n        __typename\n      }\n      targetPackage\n"
              "      instanceStatuses\n      __typename\n    }\n    backup_clusters {\n      id\n      name\n"
              "      __typename\n    }\n    backup_plans {\n      id\n      name\n      __typename\n    }\n"
              "    running_vm {\n      id\n      status\n      cpu_usage\n      memory_usage\n      __typename\n    }\n"
              "    __typename\n  }\n}\n")
Q_UPDATE_SVC = ("mutation updateBackupService($where: BackupServiceWhereUniqueInput!, $data: BackupServiceUpdateInput!) {\n"
                "  updateBackupService(where: $where, data: $data) {\n    id\n    name\n    __typename\n  }\n}\n")
Q_LOGIN = "mutation login($data: LoginInput!) {\n  login(data: $data) {\n    token\n  }\n}\n"
PKG = "smtx-backup-dr-x86_64-2.2.1.tar.gz"
CHUNK = 1000                  # a small chunk size (the knob) keeps the tests fast; the protocol is the same


plan = three_host_plan("backupplan")


@pytest.fixture(scope="module")
def configured(plan):
    return preset_snapshot(plan, "cloudtower-configured")


class BTower(Tower):
    """The Tower client with the GraphQL cookie session (``connect.sid``) the guide's §07 calls send."""

    def cookie_login(self) -> None:
        r = self.http.post(self.url("/api"), json={"operationName": "login", "query": Q_LOGIN, "variables": {
            "data": {"username": "root", "password": TOWER_PW, "source": "LOCAL"}}})
        assert r.status_code == 200 and "connect.sid" in r.cookies, r.text

    def cgql(self, op: str, query: str, variables: dict | None = None) -> httpx.Response:
        """GraphQL with the cookie only (no Authorization), as G §07."""
        return self.http.post(self.url("/api"), json={"operationName": op, "variables": variables or {},
                                                      "query": query})

    def cdata(self, op: str, query: str, variables: dict | None = None) -> dict:
        r = self.cgql(op, query, variables)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return r.json()["data"]

    def chunk(self, task_id: str, k, data: bytes, *, filename: str = "blob") -> httpx.Response:
        ops = {"operationName": "uploadCloudTowerApplicationPackage", "query": Q_UPLOAD,
               "variables": {"data": {"upload_task_id": task_id, "file": None, "current_chunk": k}}}
        return self.http.post(self.url("/api"), data={"operations": json.dumps(ops), "map": '{"1":["variables.data.file"]}'},
                              files={"1": (filename, data, "application/octet-stream")})

    def create_upload(self, size: int, name: str = PKG) -> dict:
        return self.cdata("createUploadTask", Q_CREATE_UPLOAD, {"data": {
            "status": "INITIALIZING", "current_chunk": 1, "chunk_size": 4194304, "resource_type":
            "CLOUDTOWER_APPLICATION_PACKAGE", "size": size, "args": {"name": name, "package_name": "iomesh-backup"},
            "started_at": "2025-12-26T10:16:22.323Z"}})["createUploadTask"]

    def packages(self) -> list[dict]:
        d = self.cdata("cloudTowerApplicationPackages", Q_PACKAGES,
                       {"skip": 0, "first": 50, "where": {"AND": [{"name": "iomesh-backup"}]}})
        assert d["cloudTowerApplicationPackagesConnection"]["aggregate"]["count"] == len(d["cloudTowerApplicationPackages"])
        return d["cloudTowerApplicationPackages"]


@pytest.fixture
def world(plan, configured, monkeypatch):
    with towers(plan, configured[0], monkeypatch, cls=BTower, time_scale=1.0) as tower:
        def make() -> BTower:
            t = tower()
            t.cookie_login()
            t.tower.upload_chunk_size = CHUNK
            t.cluster = t.tower.cluster_by_ip(str(plan.vip))
            return t

        yield make


def errors_200(r: httpx.Response, *needles: str) -> str:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] is None and len(body["errors"]) == 1, body
    msg = body["errors"][0]["message"]
    for n in needles:
        assert n in msg, msg
    return msg


def upload(t: BTower, payload: bytes, name: str = PKG) -> dict:
    task = t.create_upload(len(payload), name)
    n = math.ceil(len(payload) / task["chunk_size"])
    for k in range(1, n + 1):
        r = t.chunk(task["id"], k, payload[(k - 1) * task["chunk_size"]: k * task["chunk_size"]])
        assert r.status_code == 200 and "errors" not in r.json(), r.text
    return r.json()["data"]["uploadCloudTowerApplicationPackage"]


def registered(t: BTower, payload: bytes = b"x" * 2500) -> dict:
    upload(t, payload)
    t.sim.advance(t.tower.package_register_s + 1)
    (pkg,) = t.packages()
    return pkg


# =========================================================================== upload
def test_upload_is_1_based_uses_the_servers_chunk_size_and_registers_after_a_delay(world):
    t = world()
    payload = bytes(range(256)) * 10                                       # 2560 B: chunks 1000, 1000, 560
    assert t.packages() == []
    task = t.create_upload(len(payload))
    assert task == {"id": task["id"], "current_chunk": 1, "chunk_size": CHUNK, "__typename": "UploadTask"}
    r = t.chunk(task["id"], 0, payload[:CHUNK])                            # 0-based: refused
    errors_200(r, "current_chunk 0", "expected: 1", "1-based")
    errors_200(t.chunk(task["id"], 2, payload[CHUNK:2 * CHUNK]), "expected: 1")
    errors_200(t.chunk(task["id"], 1, payload[:CHUNK - 1]), f"must be {CHUNK} bytes")   # short non-final chunk
    answers = []
    for k in (1, 2):
        answers.append(t.data(t.chunk(task["id"], k, payload[(k - 1) * CHUNK: k * CHUNK]))["uploadCloudTowerApplicationPackage"])
    assert [(a["status"], a["current_chunk"], a["chunk_size"]) for a in answers] == [("UPLOADING", 1, CHUNK),
                                                                                   ("UPLOADING", 2, CHUNK)]
    errors_200(t.chunk(task["id"], 2, payload[CHUNK: 2 * CHUNK]), "expected: 3")          # no replay
    errors_200(t.chunk(task["id"], 3, payload[2 * CHUNK:] + b"!"), "the last chunk must be 560 bytes")
    last = t.data(t.chunk(task["id"], 3, payload[2 * CHUNK:], filename=PKG))["uploadCloudTowerApplicationPackage"]
    assert last == {"id": task["id"], "status": "SUCCESSED", "current_chunk": 3, "chunk_size": CHUNK,
                    "__typename": "UploadTask"}
    errors_200(t.chunk(task["id"], 3, payload[2 * CHUNK:]), "already SUCCESSED")        # a blind re-send
    rec = t.tower.upload_tasks[task["id"]]
    assert (rec.rejected, rec.resent_after_complete, rec.bytes_received) == (6, 1, len(payload))

    assert t.packages() == []                                               # registration takes a while
    t.sim.advance(t.tower.package_register_s - 2)
    assert t.packages() == []
    t.sim.advance(3)
    (pkg,) = t.packages()
    assert pkg == {"id": pkg["id"], "filename": PKG, "version": "2.2.1", "architecture": "X86_64",
                   "__typename": "CloudTowerApplicationPackage"}
    assert t.tower.app_packages[pkg["id"]].sha256 == hashlib.sha256(payload).hexdigest()

    rest = t.ok(t.rest("get-cloudtower-application-packages", {"where": {"name": "iomesh-backup"}}))
    assert not check_shape(rest, "list[CloudTowerApplicationPackage]") and "filename" not in rest[0]
    tasks = t.ok(t.rest("get-upload-tasks", {"where": {"id": task["id"]}}))
    assert not check_shape(tasks, "list[UploadTask]")
    assert tasks[0]["status"] == "SUCCESSED" and tasks[0]["size"] == len(payload) and tasks[0]["current_chunk"] == 3

    upload(t, payload)                                                      # the same package again: no second one
    t.sim.advance(t.tower.package_register_s + 1)
    assert [p["id"] for p in t.packages()] == [pkg["id"]]


def test_upload_needs_a_session_and_the_schema_refuses_unknown_fields(world):
    t = world()
    anon = httpx.Client(verify=ssl_context(t.sim), timeout=10)
    try:
        r = anon.post(t.url("/api"), json={"operationName": "cloudTowerApplicationPackages", "query": Q_PACKAGES,
                                           "variables": {}})
        assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    finally:
        anon.close()
    r = t.cgql("cloudTowerApplicationPackages", Q_PACKAGES.replace("filename", "file_name"))
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    task = t.create_upload(10)
    r = t.http.post(t.url("/api"), data={"operations": "{not json", "map": "{}"}, files={"1": ("b", b"x")})
    assert r.status_code == 400 and "operations" in r.json()["errors"][0]["message"]
    ops = {"operationName": "uploadCloudTowerApplicationPackage", "query": Q_UPLOAD,
           "variables": {"data": {"upload_task_id": task["id"], "file": None, "current_chunk": 1}}}
    r = t.http.post(t.url("/api"), data={"operations": json.dumps(ops), "map": '{"1":["variables.data.file"]}'},
                    files={"2": ("b", b"x" * 10)})
    assert r.status_code == 400 and "File missing" in r.json()["errors"][0]["message"]
    r = t.http.post(t.url("/api"), json=ops)                                # no file at all
    errors_200(r, "no file")


def test_a_failed_upload_and_a_last_chunk_processed_then_dropped(world):
    t = world()
    payload = b"z" * 2100
    task = t.create_upload(len(payload))
    t.sim.faults.add({"id": "late-last", "operation_name": "uploadCloudTowerApplicationPackage", "nth": 3,
                      "action": {"drop_after": True}})
    for k in (1, 2):
        assert t.data(t.chunk(task["id"], k, payload[(k - 1) * CHUNK: k * CHUNK]))
    with pytest.raises(httpx.TransportError):
        t.chunk(task["id"], 3, payload[2 * CHUNK:])
    (rec,) = t.ok(t.rest("get-upload-tasks", {"where": {"id": task["id"]}}))
    assert rec["status"] == "SUCCESSED" and rec["current_chunk"] == 3       # the server completed
    assert t.sim.faults.get("late-last").hits == 1
    assert [r.result for r in t.sim.requests if r.path == "/api"][-1] == "processed-dropped"
    errors_200(t.chunk(task["id"], 3, payload[2 * CHUNK:]), "already SUCCESSED")

    t.sim.faults.add({"operation_name": "uploadCloudTowerApplicationPackage", "operation": "fail", "msg": "disk full"})
    other = t.create_upload(500)
    errors_200(t.chunk(other["id"], 1, b"y" * 500), "disk full")
    assert t.ok(t.rest("get-upload-tasks", {"where": {"id": other["id"]}}))[0]["status"] == "FAILED"


def test_registration_slower_than_30_s(world):
    t = world()
    t.tower.package_register_s = 45.0
    upload(t, b"p" * 1500)
    t.sim.advance(31)
    assert t.packages() == []
    t.sim.advance(15)
    assert len(t.packages()) == 1


# =========================================================================== create-vm-vlan
def _storage_vds(t: BTower) -> dict:
    (vds,) = [v for v in t.ok(t.rest("get-vdses", {"where": {"cluster": {"id": t.cluster.id}}}))
              if "storage" in v["name"].lower()]
    return vds


def test_create_vm_vlan_runs_a_task_and_the_network_appears_on_the_cluster(world):
    t = world()
    vds = _storage_vds(t)
    out = t.ok(t.rest("create-vm-vlan", [{"vds_id": vds["id"], "name": "backup-storage-network"}]))
    assert not check_shape(out, "list[WithTaskVlan]")
    (item,) = out
    v = item["data"]
    assert (v["entityAsyncStatus"], v["vlan_id"], v["mode_type"], v["network_ids"], v["type"]) == \
        ("CREATING", 0, "VLAN_ACCESS", ["0"], "VM")
    assert v["vds"] == {"id": vds["id"], "name": vds["name"]}
    (listed,) = t.ok(t.rest("get-vlans", {"where": {"name": "backup-storage-network", "vds": {"id": vds["id"]}}}))
    assert listed["entityAsyncStatus"] == "CREATING"
    assert not any(x.name == "backup-storage-network" for x in t.sim.fisheye.vlans.values())
    rest_error(t.rest("create-vm-vlan", [{"vds_id": vds["id"], "name": "backup-storage-network"}]), 400,
               "already exists")                                            # even while CREATING
    t.sim.advance(t.tower.vlan_task_s + t.tower.task_pending + 1)
    (task,) = t.ok(t.rest("get-tasks", {"where": {"id": item["task_id"]}}))
    assert task["status"] == "SUCCESSED"
    (listed,) = t.ok(t.rest("get-vlans", {"where": {"name": "backup-storage-network", "vds": {"id": vds["id"]}}}))
    assert listed["id"] == v["id"] and listed["entityAsyncStatus"] is None and listed["local_id"] == v["local_id"]
    (fe,) = [x for x in t.sim.fisheye.vlans.values() if x.name == "backup-storage-network"]
    assert fe.uuid == v["local_id"] and t.sim.fisheye.vdses[fe.vds_uuid].name == vds["name"]
    assert "backup-storage-network" in [x["name"] for x in _storage_vds(t)["vlans"]]
    rest_error(t.rest("create-vm-vlan", [{"vds_id": vds["id"], "name": "backup-storage-network", "vlan_id": 7}]),
               400, "already exists")
    rest_error(t.rest("create-vm-vlan", [{"vds_id": "nope", "name": "x"}]), 404, "no VDS")
    rest_error(t.rest("create-vm-vlan", {"vds_id": vds["id"], "name": "y"}), 400, "JSON array")
    rest_error(t.rest("create-vm-vlan", [{"vds_id": vds["id"]}]), 400, "name is required")
    rest_error(t.rest("create-vm-vlan", [{"vds_id": vds["id"], "name": "z", "tag": 3}]), 400, "unknown field")


def test_vds_name_collision_with_another_cluster(world):
    t = world()
    mine = _storage_vds(t)
    other = t.tower.add_foreign_cluster("CN-SH-Other-Cls02", vdses=(mine["name"],))
    vdses = t.ok(t.rest("get-vdses"))
    assert not check_shape(vdses, "list[Vds]")
    same = [v for v in vdses if v["name"] == mine["name"]]
    assert [v["cluster"]["id"] for v in same] == [other["id"], t.cluster.id]        # the other cluster's first
    assert other["id"] in [c["id"] for c in t.ok(t.rest("get-clusters"))]
    scoped = t.ok(t.rest("get-vdses", {"where": {"cluster": {"id": t.cluster.id}, "name_contains": "Storage"}}))
    assert [v["id"] for v in scoped] == [mine["id"]]
    (made,) = t.ok(t.rest("create-vm-vlan", [{"vds_id": same[0]["id"], "name": "backup-storage-network"}]))
    t.sim.advance(10)
    assert not any(x.name == "backup-storage-network" for x in t.sim.fisheye.vlans.values())   # not on our cluster
    assert [v["vds"]["id"] for v in t.ok(t.rest("get-vlans", {"where": {"name": "backup-storage-network"}}))] == \
        [same[0]["id"]]


# =========================================================================== backup service
def _service_data(t: BTower, pkg_id: str, storage_vlan: str, name: str = "backup") -> dict:
    mgmt = next(v for v in t.ok(t.rest("get-vlans")) if v["name"] == "default")
    return {"name": name, "entityAsyncStatus": "CREATING", "status": "INSTALLING", "kube_config": "",
            "application": {"create": {"instances": {"create": []}, "state": "INSTALLING", "instanceStatuses": [],
                                       "name": f"backup-{name}", "resourceVersion": 0, "vmSpec": {},
                                       "targetPackage": pkg_id}},
            "storage_network_type": "NEW_NIC", "backup_network_type": "MANAGEMENT",
            "management_network_gateway": "10.0.20.1", "management_network_ip": "10.0.20.4",
            "management_network_subnet_mask": "255.255.255.0", "management_network_vlan": mgmt["id"],
            "storage_network_ip": "10.0.21.4", "storage_network_subnet_mask": "255.255.255.0",
            "storage_network_vlan": storage_vlan, "backup_network_gateway": "10.0.20.1",
            "backup_network_ip": "10.0.20.4", "backup_network_subnet_mask": "255.255.255.0",
            "backup_network_vlan": mgmt["id"]}


def _prepared(t: BTower) -> tuple[dict, dict]:
    pkg = registered(t)
    (v,) = t.ok(t.rest("create-vm-vlan", [{"vds_id": _storage_vds(t)["id"], "name": "backup-storage-network"}]))
    t.sim.advance(10)
    return pkg, v["data"]


def _services(t: BTower) -> list[dict]:
    return t.cdata("getBackupServices", Q_SERVICES)["backupServices"]


def _install_task(t: BTower, app: str) -> dict:
    return t.ok(t.rest("get-tasks", {"where": {"description_contains": f"Install Application {app}"},
                                     "orderBy": "local_created_at_DESC"}))[0]


def test_backup_service_installs_then_runs_and_attaches_clusters(world):
    t = world()
    pkg, vlan = _prepared(t)
    effect = {"running_cluster": t.cluster.id, "running_host": "AUTO_SCHEDULE"}
    sid = t.cdata("createBackupService", Q_CREATE_SVC, {"data": _service_data(t, pkg["id"], vlan["id"]),
                                                        "effect": effect})["createBackupService"]["id"]
    (s,) = _services(t)
    assert (s["id"], s["name"], s["status"], s["entityAsyncStatus"], s["running_vm"]) == \
        (sid, "backup", "INSTALLING", "CREATING", None)
    assert s["application"]["package"]["id"] == pkg["id"] == s["application"]["targetPackage"]
    assert s["application"]["instanceStatuses"] == [] and s["backup_clusters"] == [] and s["backup_plans"] == []
    task = _install_task(t, "backup-backup")
    assert task["status"] in ("PENDING", "EXECUTING") and [x["key"] for x in task["steps"]] == \
        ["HANDLE_SCOS_VM", "DEPLOY_PACKAGE"]
    errors_200(t.cgql("createBackupService", Q_CREATE_SVC, {"data": _service_data(t, pkg["id"], vlan["id"]),
                                                            "effect": effect}), "already exists")
    errors_200(t.cgql("updateBackupService", Q_UPDATE_SVC, {"where": {"id": sid}, "data": {
        "backup_clusters": {"set": [{"id": t.cluster.id}]}}}), "INSTALLING")

    t.sim.advance(t.tower.backup_vm_s + 1)                                 # the VM runs, the service still installs
    (s,) = _services(t)
    (inst,) = s["application"]["instanceStatuses"]
    assert (s["status"], inst["vm"]["name"], inst["vm"]["vmStatus"], inst["status"]["phase"], s["running_vm"]) == \
        ("INSTALLING", "backup-backup-0", "RUNNING", "RUNNING", None)
    assert [n["ip"] for n in inst["vm"]["network"]["nics"]] == ["10.0.20.4", "10.0.21.4"]
    assert _install_task(t, "backup-backup")["status"] == "EXECUTING"

    t.sim.advance(t.tower.backup_install_s)
    (s,) = _services(t)
    assert (s["status"], s["entityAsyncStatus"], s["running_vm"]["status"]) == ("RUNNING", None, "RUNNING")
    task = _install_task(t, "backup-backup")
    assert task["status"] == "SUCCESSED" and all(x["finished"] for x in task["steps"])
    assert task["resource_id"] == s["application"]["id"]

    def attach(rel: dict) -> list[str]:
        t.cdata("updateBackupService", Q_UPDATE_SVC, {"where": {"id": sid}, "data": {"backup_clusters": rel}})
        return [c["id"] for c in _services(t)[0]["backup_clusters"]]

    assert attach({"set": [{"id": t.cluster.id}]}) == [t.cluster.id]
    assert attach({"set": [{"id": t.cluster.id}]}) == [t.cluster.id]       # set replaces: never twice
    assert attach({"set": []}) == []
    assert attach({"connect": [{"id": t.cluster.id}]}) == [t.cluster.id]
    errors_200(t.cgql("updateBackupService", Q_UPDATE_SVC, {"where": {"id": sid}, "data": {
        "backup_clusters": {"set": [{"id": "cnope"}]}}}), "not a CONNECTED cluster")
    rest = t.ok(t.rest("get-backup-services"))
    assert not check_shape(rest, "list[BackupService]")
    assert rest[0]["status"] == "RUNNING" and rest[0]["backup_clusters"][0]["id"] == t.cluster.id
    assert pkg["id"] in [p["id"] for p in t.ok(t.rest("get-cloudtower-application-packages"))]
    errors_200(t.cgql("createBackupService", Q_CREATE_SVC, {"data": _service_data(t, "cnopkg", vlan["id"], "b2"),
                                                            "effect": effect}), "targetPackage")
    errors_200(t.cgql("createBackupService", Q_CREATE_SVC, {"data": _service_data(t, pkg["id"], vlan["id"], "b3"),
                                                            "effect": {"running_cluster": "cnope"}}), "CONNECTED")


def test_install_failed_by_a_fault_and_a_stale_install_task(world):
    t = world()
    pkg, vlan = _prepared(t)
    stale = t.tower.add_stale_install_task("backup-backup", status="SUCCESSED")
    t.sim.faults.add({"operation_name": "createBackupService", "operation": "fail"})
    sid = t.cdata("createBackupService", Q_CREATE_SVC, {"data": _service_data(t, pkg["id"], vlan["id"]), "effect": {
        "running_cluster": t.cluster.id, "running_host": "AUTO_SCHEDULE"}})["createBackupService"]["id"]
    tasks = t.ok(t.rest("get-tasks", {"where": {"description_contains": "backup-backup"},
                                      "orderBy": "local_created_at_DESC"}))
    assert [x["id"] for x in tasks][1:] == [stale] and tasks[1]["status"] == "SUCCESSED"   # the trap
    assert tasks[0]["status"] in ("PENDING", "EXECUTING") and tasks[0]["started_at"] != tasks[1]["started_at"]
    t.sim.advance(t.tower.backup_install_s + 1)
    (s,) = _services(t)
    assert s["id"] == sid and (s["status"], s["entityAsyncStatus"], s["running_vm"]) == ("INSTALL_FAILED", None, None)
    task = _install_task(t, "backup-backup")
    assert task["status"] == "FAILED" and "failed" in task["error_message"] and task["resource_id"] == s["application"]["id"]


# =========================================================================== preset, snapshot
def test_components_ready_preset_twice_and_a_snapshot_round_trip(plan, configured):
    snap, _ = configured
    with Simulator.from_plan(plan, load_env_faults=False, profiles=[], snapshot=json.loads(json.dumps(snap))) as sim:
        summary = apply_preset(sim, "components-ready")["backup"]
        tower = sim.state.cloudtower.tower(str(plan.cloudtower.ip))
        counts = lambda: (len(tower.app_packages), len(tower.vlan_creations), len(tower.backup_services),  # noqa: E731
                          len(sim.fisheye.vdses), len(sim.fisheye.vlans), len(tower.tasks))
        before = counts()
        again = apply_preset(sim, "components-ready")["backup"]
        assert again == summary and counts() == before
        (svc,) = tower.list_backup_services()
        assert svc["status"] == "RUNNING" and [c["id"] for c in svc["backup_clusters"]] == summary["clusters"]
        assert summary["storage_ip"] == storage_ip(plan) and svc["storage_network_vlan"] == summary["vlan"]["id"]
        want_vds = plan.backup.vds if plan.backup.vds and plan.backup.nics else plan.storage.vds
        assert summary["storage_vds"] == want_vds
        vlan = next(v for v in sim.fisheye.vlans.values() if v.name == summary["vlan"]["name"])
        assert sim.fisheye.vdses[vlan.vds_uuid].name == want_vds
        tower.add_foreign_cluster()
        stale = tower.add_stale_install_task()
        saved = sim.snapshot()
    with Simulator.from_plan(plan, load_env_faults=False, profiles=[], snapshot=json.loads(json.dumps(saved))) as sim2:
        t2 = sim2.state.cloudtower.tower(str(plan.cloudtower.ip))
        assert t2.list_backup_services() == [svc]
        assert [p["id"] for p in t2.list_packages()] == [summary["package"]["id"]]
        assert len(t2.foreign_clusters) == 1 and stale in t2.tasks
        assert any(v["id"] == summary["vlan"]["id"] and v["entityAsyncStatus"] is None for v in t2.list_vlans())
        assert t2.package_register_s == tower.package_register_s
        assert apply_preset(sim2, "components-ready")["backup"] == summary


def test_a_restore_mid_install_and_mid_vlan_task_carries_on(world, plan):
    t = world()
    pkg, vlan = _prepared(t)
    sid = t.cdata("createBackupService", Q_CREATE_SVC, {"data": _service_data(t, pkg["id"], vlan["id"]), "effect": {
        "running_cluster": t.cluster.id, "running_host": "AUTO_SCHEDULE"}})["createBackupService"]["id"]
    t.sim.advance(30)
    t.tower.vlan_task_s = 100.0     # outlasts the snapshot and the restore on a loaded machine; ends within the install
    (item,) = t.ok(t.rest("create-vm-vlan", [{"vds_id": _storage_vds(t)["id"], "name": "later-net", "vlan_id": 9}]))
    saved = t.sim.snapshot()                                                # "killed" here: INSTALLING, VLAN CREATING
    with Simulator.from_plan(plan, load_env_faults=False, profiles=[], snapshot=json.loads(json.dumps(saved))) as sim:
        tower = sim.state.cloudtower.tower(t.ip)
        (s,) = tower.list_backup_services()
        assert (s["id"], s["status"]) == (sid, "INSTALLING")
        assert next(v for v in tower.list_vlans() if v["name"] == "later-net")["entityAsyncStatus"] == "CREATING"
        assert not any(x.name == "later-net" for x in sim.fisheye.vlans.values())
        sim.advance(tower.backup_install_s)
        (s,) = tower.list_backup_services()
        assert s["status"] == "RUNNING"
        assert tower.task_view(tower.tasks[tower.backup_services[sid].task_id])["status"] == "SUCCESSED"
        (v,) = [v for v in tower.list_vlans() if v["name"] == "later-net"]
        assert v["id"] == item["data"]["id"] and v["entityAsyncStatus"] is None and v["vlan_id"] == 9
        assert any(x.name == "later-net" for x in sim.fisheye.vlans.values())
