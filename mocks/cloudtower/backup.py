"""Stage 07b of a simulated CloudTower (guide §07 backup part): application packages and their upload tasks, VM
VLANs created through CloudTower (``create-vm-vlan``), the backup service and its install task.

:class:`BackupMixin` (first among :class:`~mocks.cloudtower.models.CloudTowerModel`'s bases, so its ``settle`` /
``list_*`` / ``task_view`` wrap the others through ``super()``) holds:

* ``upload_tasks`` (:class:`UploadTask`): ``createUploadTask`` -> ``INITIALIZING``; chunks are **1-based**, the one
  expected is the last accepted + 1; a non-final chunk must be exactly ``chunk_size`` bytes, the final one
  (``ceil(size / chunk_size)``) the remainder; anything else is refused (GraphQL ``errors[]``, HTTP 200) and counted
  in ``rejected``. ``current_chunk`` answers the last accepted chunk (1 before any: then the status is still
  ``INITIALIZING``). The last chunk sets ``SUCCESSED``; a chunk after that is refused (``resent_after_complete``).
  Bytes are hashed, never kept (``sha256`` of the whole package once complete, in memory only).
* ``app_packages`` (:class:`AppPackage`): a complete ``CLOUDTOWER_APPLICATION_PACKAGE`` upload named like
  ``smtx-backup-dr-<arch>-<version>.tar.gz`` registers ``package_register_s`` simulated seconds later (default 20;
  ``> 30`` is the "registration slower than CX's 30 s sleep" fault). The same name, version and architecture again
  replaces the file of the package already there (same id): a rerun never lists two.
* ``vlan_creations`` (:class:`VlanCreation`): ``create-vm-vlan`` answers the VLAN ``entityAsyncStatus: CREATING``
  with a task (``vlan_task_s``); when the task SUCCESSED the network exists on the simulated cluster (fisheye: its
  VDS's networks, ``get-vlans``, the cluster's VDS ``vlans``); before that ``get-vlans`` lists it ``CREATING``.
* ``backup_services`` (:class:`BackupService`): ``createBackupService`` -> ``INSTALLING`` / ``CREATING`` with the task
  ``Install Application <application name>`` (steps ``HANDLE_SCOS_VM``, ``DEPLOY_PACKAGE``); the VM
  ``<application name>-0`` reads RUNNING after ``backup_vm_s`` (default 120) while the service is still INSTALLING
  (the guide's intermediate state); at ``backup_install_s`` (default 156, the guide's 2 min 36 s) the task SUCCESSED
  and the service RUNNING with ``running_vm``. An ``operation: fail`` fault on the call (GraphQL ``operation_name``
  ``createBackupService``) ends it ``INSTALL_FAILED``, the task FAILED with an ``error_message``; ``stuck`` keeps it
  INSTALLING. ``updateBackupService`` ``backup_clusters: {set: [{id}]}`` replaces the list (``connect`` /
  ``disconnect`` add / remove); each cluster must exist and read CONNECTED, and the service must be RUNNING [inf].
* ``foreign_clusters``: a second cluster's record (:meth:`BackupMixin.add_foreign_cluster`) whose VDSes may share the
  storage VDS's name (the "VDS-name collision with another cluster" fault: the simulated world has one fisheye
  cluster, so the other one is a record CloudTower lists, CONNECTED, with VDSes and VLANs but no hosts).

Knobs (``tower = sim.state.cloudtower.tower(ip)``; snapshot tunables): ``upload_chunk_size`` (4194304: what
``createUploadTask`` answers whatever the client asked), ``package_register_s``, ``vlan_task_s``, ``backup_vm_s``,
``backup_install_s``. Helpers: :meth:`BackupMixin.register_package`, :meth:`BackupMixin.add_stale_install_task`,
:meth:`BackupMixin.add_foreign_cluster`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from .errors import GqlError, RestError
from .tasks import Task, TaskFault
from .util import cuid, iso_ms

UPLOAD_CHUNK_SIZE = 4194304
PACKAGE_REGISTER_S = 20.0
VLAN_TASK_S = 3.0
BACKUP_VM_S = 120.0
BACKUP_INSTALL_S = 156.0
BACKUP_PACKAGE = "iomesh-backup"
UPLOAD_STATUSES = ("INITIALIZING", "UPLOADING", "PAUSED", "SUCCESSED", "FAILED")
RESOURCE_TYPES = ("CLOUDTOWER_APPLICATION_PACKAGE", "CLOUDTOWER_K8S_APP_PACKAGE", "CLUSTER_IMAGE", "CLUSTER_IMAGE_META",
                  "CONTENT_LIBRARY_IMAGE", "ELF_IMAGE", "EVEROUTE_PACKAGE", "HOST_PLUGIN_PACKAGE", "MONITOR_IMAGE", "OVF",
                  "SVT_IMAGE", "VM_VOLUME_QCOW2", "VM_VOLUME_RAW", "VM_VOLUME_VMDK")
MODE_TYPES = ("VLAN_ACCESS", "VLAN_TRUNK", "VXLAN", "GENEVE")
NETWORK_TYPES = ("MANAGEMENT", "NEW_NIC", "STORAGE")
PACKAGE_FILE = re.compile(r"^smtx-backup-dr-(?P<arch>x86_64|aarch64)-(?P<version>\d+(?:\.\d+)*)\.tar\.gz$")
_VLAN_FIELDS = {"vds_id", "name", "vlan_id", "mode_type", "network_ids", "qos_burst_unit", "qos_burst",
                "qos_max_bandwidth_unit", "qos_max_bandwidth", "qos_min_bandwidth_unit", "qos_min_bandwidth",
                "qos_priority"}
_NET_KEYS = tuple(f"{net}_network_{k}" for net in ("management", "storage", "backup")
                  for k in ("ip", "subnet_mask", "gateway", "vlan"))
VM_CPU, VM_MEMORY, VM_DISK = 4, 17179869184, 21474836480          # the guide's backup VM (L3328)


@dataclass
class Upload:
    """One file part of a GraphQL multipart request (the request's body is read whole: one chunk, 4 MiB; the
    package is never kept: each chunk feeds the upload's running SHA-256 and is dropped with the request)."""

    filename: str | None
    content_type: str | None
    size: int
    blocks: list = field(default_factory=list, repr=False, compare=False)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for b in self.blocks:
            h.update(b)
        return h.hexdigest()


@dataclass
class UploadTask:
    id: str
    status: str
    size: int
    chunk_size: int
    resource_type: str
    args: dict
    started_at: str | None
    created_wall: float
    updated_wall: float
    finished_wall: float | None = None
    received: int = 0                     # chunks accepted (the last accepted is chunk ``received``)
    bytes_received: int = 0
    rejected: int = 0                     # chunk calls refused
    resent_after_complete: int = 0        # chunks sent after SUCCESSED (a blind re-send of the last chunk)
    sha256: str | None = None             # the whole file, once complete (None after a restore mid-upload)
    package_id: str | None = None
    error: str | None = None

    @property
    def total_chunks(self) -> int:
        return max(1, math.ceil(self.size / self.chunk_size))

    def expected_length(self, k: int) -> int:
        return self.chunk_size if k < self.total_chunks else self.size - (self.total_chunks - 1) * self.chunk_size


@dataclass
class AppPackage:
    id: str
    name: str
    filename: str
    version: str
    architecture: str
    size: int
    visible_at: float                     # simulated seconds: listed from then on
    sha256: str | None = None
    upload_task_id: str | None = None
    scos_version: str = "1.2.0"


@dataclass
class VlanCreation:
    id: str
    local_id: str
    cluster_id: str
    vds_id: str
    vds_local_id: str
    vds_name: str
    name: str
    vlan_id: int
    mode_type: str
    network_ids: list
    task_id: str
    foreign: bool = False
    applied: bool = False


@dataclass
class BackupService:
    id: str
    name: str
    app_id: str
    app_name: str
    package_id: str
    task_id: str
    vm_id: str
    cluster_id: str
    running_host: str
    created: float
    vm_s: float
    networks: dict
    kube_config: str = ""
    backup_cluster_ids: list = field(default_factory=list)


def _gql(msg: str, code: str = "BAD_USER_INPUT") -> GqlError:
    return GqlError(msg, code)


def _ipv4(name: str, v: Any) -> None:
    if v is None:
        return
    try:
        ipaddress.IPv4Address(str(v))
    except ValueError:
        raise _gql(f"{name}: {v!r} is not an IPv4 address") from None


class BackupMixin:
    """State and knobs: see the module doc."""

    def _init_backup(self) -> None:
        self.upload_chunk_size = UPLOAD_CHUNK_SIZE
        self.package_register_s = PACKAGE_REGISTER_S
        self.vlan_task_s = VLAN_TASK_S
        self.backup_vm_s = BACKUP_VM_S
        self.backup_install_s = BACKUP_INSTALL_S
        self.upload_tasks: dict[str, UploadTask] = {}
        self.app_packages: dict[str, AppPackage] = {}
        self.vlan_creations: dict[str, VlanCreation] = {}
        self.backup_services: dict[str, BackupService] = {}
        self.foreign_clusters: list[dict] = []
        self._install_tasks: set[str] = set()
        self._hashers: dict[str, Any] = {}

    # ================================================================== upload tasks
    def create_upload_task(self, data: dict) -> dict:
        size = data.get("size")
        if not isinstance(size, (int, float)) or isinstance(size, bool) or size <= 0 or int(size) != size:
            raise _gql(f"size must be a positive integer, got {size!r}")
        if data.get("status") not in (None, "INITIALIZING"):
            raise _gql(f"status of a new upload task must be INITIALIZING, got {data.get('status')!r}")
        if data.get("current_chunk") not in (None, 1):
            raise _gql(f"current_chunk of a new upload task must be 1 (chunks are 1-based), got {data['current_chunk']!r}")
        args = data.get("args")
        if not isinstance(args, dict) or not isinstance(args.get("name"), str) or not args["name"]:
            raise _gql("args must be an object with the file name: {name, package_name}")
        now = self.clock.wall()
        with self.lock:
            t = UploadTask(id=self._new_id("upload-task"), status="INITIALIZING", size=int(size),
                           chunk_size=int(self.upload_chunk_size), resource_type=data.get("resource_type"),
                           args=dict(args), started_at=data.get("started_at") or iso_ms(now), created_wall=now,
                           updated_wall=now)
            self.upload_tasks[t.id] = t
            self._hashers[t.id] = hashlib.sha256()
            return self.upload_task_view(t)

    def upload_task_view(self, t: UploadTask) -> dict:
        return {"id": t.id, "status": t.status, "current_chunk": max(1, t.received), "chunk_size": t.chunk_size,
                "resource_type": t.resource_type, "size": t.size, "args": dict(t.args), "started_at": t.started_at,
                "finished_at": iso_ms(t.finished_wall), "updatedAt": iso_ms(t.updated_wall)}

    def list_upload_tasks(self) -> list[dict]:
        with self.lock:
            return [self.upload_task_view(t) for t in self.upload_tasks.values()]

    def _backup_chunk_problem(self, t: UploadTask, k: Any, part: Any) -> str | None:
        if t.status == "SUCCESSED":
            t.resent_after_complete += 1
            return f"upload task {t.id} is already SUCCESSED: chunk {k} refused"
        if t.status == "FAILED":
            return f"upload task {t.id} has FAILED: {t.error or 'start a new upload task'}"
        if not isinstance(k, int) or isinstance(k, bool):
            return f"current_chunk must be an integer, got {k!r}"
        if k != t.received + 1:
            return (f"current_chunk {k} is not the chunk expected: {t.received + 1} (chunks are 1-based; "
                    f"{t.received} of {t.total_chunks} received)")
        if not isinstance(part, Upload):
            return "no file: send the chunk as multipart part mapped to variables.data.file"
        want = t.expected_length(k)
        if part.size != want:
            kind = "the last chunk" if k == t.total_chunks else f"chunk {k} of {t.total_chunks}"
            return f"{kind} must be {want} bytes, got {part.size}"
        return None

    def upload_chunk(self, task_id: Any, k: Any, part: Any, fault: TaskFault | None = None) -> dict:
        """``uploadCloudTowerApplicationPackage``: accept chunk ``k`` (1-based) of upload task ``task_id``."""
        with self.lock:
            t = self.upload_tasks.get(task_id)
            if t is None:
                raise _gql(f"upload task {task_id} not found", "NOT_FOUND")
            problem = self._backup_chunk_problem(t, k, part)
            if problem is None and fault is not None and fault.mode == "fail":
                t.status, t.error = "FAILED", fault.msg or "injected fault: the upload failed"
                problem = t.error
            if problem is not None:
                t.rejected += 1
                raise _gql(problem)
            hasher = self._hashers.get(t.id)
            if hasher is not None:
                for block in part.blocks:
                    hasher.update(block)
            t.received, t.bytes_received, t.updated_wall = k, t.bytes_received + part.size, self.clock.wall()
            t.status = "UPLOADING"
            if k == t.total_chunks:
                t.status, t.finished_wall = "SUCCESSED", t.updated_wall
                digest = self._hashers.pop(t.id, None)
                t.sha256 = digest.hexdigest() if digest is not None else None
                self._backup_register_upload(t)
            return self.upload_task_view(t)

    def _backup_register_upload(self, t: UploadTask) -> None:
        if t.resource_type != "CLOUDTOWER_APPLICATION_PACKAGE":
            return
        name = t.args.get("name") or ""
        m = PACKAGE_FILE.match(name)
        if m is None:
            t.error = f"{name}: not an application package this CloudTower knows (smtx-backup-dr-<arch>-<ver>.tar.gz)"
            return
        pkg = self.register_package(name, size=t.size, sha256=t.sha256, package_name=t.args.get("package_name"),
                                    delay=self.package_register_s, upload_task_id=t.id)
        t.package_id = pkg.id

    def register_package(self, filename: str, *, size: int = 0, sha256: str | None = None,
                         package_name: str | None = None, delay: float = 0.0,
                         upload_task_id: str | None = None) -> AppPackage:
        """The package of ``filename`` (``smtx-backup-dr-<arch>-<version>.tar.gz``), listed ``delay`` simulated s from
        now; one already there with the same name, version and architecture is updated (same id)."""
        m = PACKAGE_FILE.match(filename)
        if m is None:
            raise ValueError(f"{filename!r} is not named smtx-backup-dr-<x86_64|aarch64>-<version>.tar.gz")
        arch, version = m.group("arch").upper(), m.group("version")
        name = package_name or BACKUP_PACKAGE
        visible = self.clock.now() + float(delay)
        with self.lock:
            pkg = next((p for p in self.app_packages.values()
                        if (p.name, p.version, p.architecture) == (name, version, arch)), None)
            if pkg is None:
                pkg = AppPackage(self._new_id("app-package"), name, filename, version, arch, int(size), visible)
                self.app_packages[pkg.id] = pkg
            else:
                pkg.filename, pkg.size, pkg.visible_at = filename, int(size), min(pkg.visible_at, visible)
            pkg.sha256, pkg.upload_task_id = sha256, upload_task_id
            return pkg

    def _backup_packages(self) -> list[AppPackage]:
        now = self.clock.now()
        return [p for p in self.app_packages.values() if p.visible_at <= now]

    def package_view(self, p: AppPackage, *, rest: bool = False) -> dict:
        apps = [{"id": s.app_id, "name": s.app_name} for s in self.backup_services.values() if s.package_id == p.id]
        v = {"id": p.id, "name": p.name, "filename": p.filename, "version": p.version, "architecture": p.architecture,
             "scosVersion": p.scos_version, "containers": {}, "images": {}, "applications": apps}
        if rest:
            del v["filename"]                                  # the SDK's REST model has no filename
        return v

    def list_packages(self, *, rest: bool = False) -> list[dict]:
        with self.lock:
            return [self.package_view(p, rest=rest) for p in self._backup_packages()]

    # ================================================================== create-vm-vlan
    def _backup_vds_target(self, i: int, vds_id: str) -> tuple[str, dict, bool]:
        """``(cluster id, CloudTower VDS view, foreign)`` of ``vds_id`` (a CONNECTED cluster's); RestError else."""
        for c, info, state in self._synced_clusters():
            for v in self._vds_views(c, info):
                if v["id"] == vds_id:
                    if state != "CONNECTED":
                        raise RestError(400, f"[{i}].vds_id: the cluster {c.name} of VDS {v['name']} is {state}")
                    if v["internal"]:
                        raise RestError(400, f"[{i}].vds_id: {v['name']} is an internal VDS")
                    return c.id, v, False
        for fc in self.foreign_clusters:
            for v in fc["vdses"]:
                if v["id"] == vds_id:
                    return fc["id"], v, True
        raise RestError(404, f"[{i}].vds_id: no VDS with id {vds_id}")

    def _backup_vlan_names(self, vds_id: str) -> set[str]:
        names = {v["name"] for v in self.list_vlans() if (v.get("vds") or {}).get("id") == vds_id}
        return names

    def _backup_vlan_spec(self, i: int, it: Any) -> dict:
        if not isinstance(it, dict):
            raise RestError(400, f"[{i}] must be an object {{vds_id, name, vlan_id?, mode_type?}}")
        unknown = set(it) - _VLAN_FIELDS
        if unknown:
            raise RestError(400, f"[{i}]: unknown field(s) {sorted(unknown)} for VmVlanCreationParams")
        for k in ("vds_id", "name"):
            if not isinstance(it.get(k), str) or not it[k].strip():
                raise RestError(400, f"[{i}].{k} is required")
        vlan_id = it.get("vlan_id", 0)
        vlan_id = 0 if vlan_id is None else vlan_id
        if not isinstance(vlan_id, int) or isinstance(vlan_id, bool) or not 0 <= vlan_id <= 4094:
            raise RestError(400, f"[{i}].vlan_id must be an integer from 0 to 4094, got {vlan_id!r}")
        mode = it.get("mode_type") or "VLAN_ACCESS"
        if mode not in MODE_TYPES:
            raise RestError(400, f"[{i}].mode_type must be one of {', '.join(MODE_TYPES)}, got {mode!r}")
        ids = it.get("network_ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(x, str) for x in ids)):
            raise RestError(400, f"[{i}].network_ids must be a list of strings")
        return {"vds_id": it["vds_id"], "name": it["name"], "vlan_id": vlan_id, "mode_type": mode,
                "network_ids": list(ids) if ids else [str(vlan_id)]}

    def create_vm_vlans(self, items: list, user_id: str | None, fault: TaskFault | None = None) -> list[dict]:
        """``create-vm-vlan``: every item checked first (all or nothing), then one task per VLAN."""
        with self.lock:
            specs, seen = [], set()
            for i, it in enumerate(items):
                s = self._backup_vlan_spec(i, it)
                cid, vds, foreign = self._backup_vds_target(i, s["vds_id"])
                if s["name"] in self._backup_vlan_names(s["vds_id"]) or (s["vds_id"], s["name"]) in seen:
                    raise RestError(400, f"[{i}]: a VLAN named {s['name']} already exists on VDS {vds['name']}")
                seen.add((s["vds_id"], s["name"]))
                specs.append((s, cid, vds, foreign))
            return [self._backup_create_vlan(s, cid, vds, foreign, user_id, fault) for s, cid, vds, foreign in specs]

    def _backup_create_vlan(self, s: dict, cid: str, vds: dict, foreign: bool, user_id: str | None,
                     fault: TaskFault | None) -> dict:
        local = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://vlan/{vds['local_id']}/{s['name']}/{self._seq}"))
        vid = self._vlan_id(self.clusters[cid], local) if not foreign else cuid("smtx-sim://foreign-vlan", cid, local)
        t = self._task(description=f"Create VM network {s['name']}", key="create_vm_vlan", resource_type="Vlan",
                       resource_id=vid, mutation="createVmVlan", args={"name": s["name"], "vds_id": s["vds_id"]},
                       running_s=self.vlan_task_s, user_id=user_id, cluster_id=None if foreign else cid, fault=fault)
        rec = VlanCreation(vid, local, cid, vds["id"], vds["local_id"], vds["name"], s["name"], s["vlan_id"],
                           s["mode_type"], s["network_ids"], t.id, foreign=foreign)
        self.vlan_creations[vid] = rec
        return {"data": self._backup_vlan_view(rec, "CREATING"), "task_id": t.id}

    def _backup_vlan_view(self, r: VlanCreation, status: str | None) -> dict:
        return {"id": r.id, "local_id": r.local_id, "name": r.name, "type": "VM", "vlan_id": r.vlan_id,
                "gateway_ip": None, "subnetmask": None, "mode_type": r.mode_type, "entityAsyncStatus": status,
                "gateway_subnetmask": None, "qos_min_bandwidth": None, "qos_max_bandwidth": None,
                "qos_priority": None, "qos_burst": None, "network_ids": list(r.network_ids),
                "vds": {"id": r.vds_id, "name": r.vds_name}, "labels": [], "vm_nics": []}

    def _backup_apply_vlans(self) -> None:
        """VLAN tasks that have ended: SUCCESSED -> the network on the cluster (fisheye); FAILED -> gone."""
        now = self.clock.now()
        for r in list(self.vlan_creations.values()):
            if r.applied:
                continue
            t = self.tasks.get(r.task_id)
            st = t.status(now) if t else "FAILED"
            if st == "FAILED":
                del self.vlan_creations[r.id]
            elif st == "SUCCESSED":
                r.applied = True
                if not r.foreign:
                    self._backup_fisheye_vlan(r)

    def _backup_fisheye_vlan(self, r: VlanCreation) -> None:
        fe = self.smtx.fisheye if self.smtx is not None else None
        if fe is None:
            return
        from ..fisheye.network import VLAN_TYPE_VM, Vlan

        with fe.lock:
            if r.vds_local_id in fe.vdses and r.local_id not in fe.vlans:
                fe.vlans[r.local_id] = Vlan(r.local_id, r.name, r.vds_local_id, r.vlan_id, VLAN_TYPE_VM)

    def settle(self) -> None:
        super().settle()
        with self.lock:
            self._backup_apply_vlans()

    # ---- views CloudTower lists (the VLANs being created, a foreign cluster's objects)
    def list_vlans(self) -> list[dict]:
        out = super().list_vlans()
        with self.lock:
            pending = [self._backup_vlan_view(r, "CREATING") for r in self.vlan_creations.values() if not r.applied]
            foreign = [self._backup_vlan_view(r, None) for r in self.vlan_creations.values() if r.applied and r.foreign]
            base = [dict(v, id=cuid("smtx-sim://foreign-vlan", fc["id"], v["name"]), local_id=v["name"],
                         entityAsyncStatus=None, vm_nics=[])
                    for fc in self.foreign_clusters for v in fc["vlans"]]
        return out + pending + base + foreign

    def list_vdses(self) -> list[dict]:
        out = super().list_vdses()
        first = [v for fc in self.foreign_clusters if fc["first"] for v in fc["vdses"]]
        last = [v for fc in self.foreign_clusters if not fc["first"] for v in fc["vdses"]]
        return first + out + last

    def list_clusters(self) -> list[dict]:
        return super().list_clusters() + [dict(fc["view"]) for fc in self.foreign_clusters]

    def add_foreign_cluster(self, name: str = "CN-SH-SMTX-Other-Cls02", ip: str = "10.0.30.10", *,
                            vdses: tuple[str, ...] = ("vDS-Storage-Network",), first: bool = True) -> dict:
        """Another cluster CloudTower manages (CONNECTED, no hosts) with VDSes named ``vdses`` -- e.g. the same
        name as this cluster's storage VDS. ``first``: its VDSes come before the simulated cluster's in
        ``get-vdses`` (a client that takes the first name match, unscoped, picks the wrong one)."""
        cid = cuid("smtx-sim://foreign-cluster", self.ip, name, ip)
        common = {"internal": False, "work_mode": "single", "cluster": {"id": cid, "name": name},
                  "entityAsyncStatus": None, "everoute_cluster": None, "labels": [], "nics": [], "bond_mode": "",
                  "type": "VM"}
        vds_views = []
        for n in vdses:
            local = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://foreign-vds/{cid}/{n}"))
            vds_views.append({"id": cuid("smtx-sim://foreign-vds", cid, n), "name": n, "local_id": local,
                              "ovsbr_name": "ovsbr-" + local[:9].replace("-", "x"), "vlans_num": 0, "vlans": [],
                              **common})
        view = {"id": cid, "name": name, "ip": ip, "version": "6.1.0", "architecture": "X86_64", "type": "SMTX_OS",
                "hypervisor": "ELF", "connect_state": "CONNECTED", "dns": [], "ntp_servers": [],
                "recommended_cpu_models": [], "total_cpu_models": [], "labels": [], "host_num": 0, "hosts": [],
                "local_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://foreign-cluster/{cid}")),
                "vdses": [{"id": v["id"], "name": v["name"]} for v in vds_views], "datacenters": [],
                "entityAsyncStatus": None}
        fc = {"id": cid, "name": name, "ip": ip, "first": bool(first), "view": view, "vdses": vds_views, "vlans": []}
        with self.lock:
            self.foreign_clusters = [f for f in self.foreign_clusters if f["id"] != cid] + [fc]
        return fc

    # ================================================================== backup service
    def _check_backup_service(self, data: dict, effect: dict | None) -> tuple[AppPackage, str, str, dict]:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _gql("name is required")
        if any(s.name == name for s in self.backup_services.values()):
            raise _gql(f"a backup service named {name} already exists", "ALREADY_EXISTS")
        app = ((data.get("application") or {}).get("create")) or {}
        pkg = self.app_packages.get(app.get("targetPackage"))
        if pkg is None or pkg not in self._backup_packages():
            raise _gql(f"application.create.targetPackage: no application package {app.get('targetPackage')!r}")
        cid = (effect or {}).get("running_cluster")
        c = self.clusters.get(cid) if isinstance(cid, str) else None
        if c is None or self.connect_state(c) != "CONNECTED":
            raise _gql(f"effect.running_cluster: {cid!r} is not a CONNECTED cluster")
        host = (effect or {}).get("running_host") or "AUTO_SCHEDULE"
        hosts = {h["id"] for h in self.list_hosts() if h["cluster"]["id"] == c.id}
        if host != "AUTO_SCHEDULE" and host not in hosts:
            raise _gql(f"effect.running_host: {host!r} is neither AUTO_SCHEDULE nor a host of {c.name}")
        nets = {k: data.get(k) for k in _NET_KEYS}
        for k in ("storage_network_type", "backup_network_type"):
            if data.get(k) not in (None, *NETWORK_TYPES):
                raise _gql(f"{k} must be one of {', '.join(NETWORK_TYPES)}")
            nets[k] = data.get(k)
        vlans = {v["id"] for v in self.list_vlans()}
        for k, v in nets.items():
            if k.endswith("_vlan") and v is not None and v not in vlans:
                raise _gql(f"{k}: no VLAN {v!r}")
            if k.endswith(("_ip", "_subnet_mask", "_gateway")):
                _ipv4(k, v)
        if not nets.get("management_network_ip") or not nets.get("management_network_vlan"):
            raise _gql("management_network_ip and management_network_vlan are required")
        return pkg, c.id, host, nets

    def create_backup_service(self, data: dict, effect: dict | None, user_id: str | None,
                              fault: TaskFault | None = None) -> dict:
        with self.lock:
            pkg, cid, host, nets = self._check_backup_service(data, effect)
            name = data["name"]
            app_name = ((data.get("application") or {}).get("create") or {}).get("name") or f"backup-{name}"
            sid, app_id = self._new_id("backup-service"), self._new_id("cloudtower-application")
            install = float(self.backup_install_s)
            if fault is not None and fault.mode == "fail" and not fault.msg:
                fault = TaskFault("fail", f"install application {app_name} failed: the VM {app_name}-0 did not "
                                          f"become ready (injected fault)", "APPLICATION_INSTALL_FAILED")
            t = self._task(description=f"Install Application {app_name}", key=None, resource_type="CloudTowerApplication",
                           resource_id=app_id, mutation=None, args={}, running_s=max(0.0, install - self.task_pending),
                           user_id=user_id, cluster_id=None, fault=fault)
            self._install_tasks.add(t.id)
            s = BackupService(sid, name, app_id, app_name, pkg.id, t.id, self._new_id("vm"), cid, host,
                              self.clock.now(), min(float(self.backup_vm_s), install), nets,
                              kube_config=data.get("kube_config") or "")
            self.backup_services[sid] = s
            return self.backup_service_view(s)

    def backup_status(self, s: BackupService) -> str:
        t = self.tasks.get(s.task_id)
        st = t.status(self.clock.now()) if t else "SUCCESSED"
        return {"SUCCESSED": "RUNNING", "FAILED": "INSTALL_FAILED"}.get(st, "INSTALLING")

    def _backup_vm_running(self, s: BackupService) -> bool:
        return self.backup_status(s) == "RUNNING" or (self.backup_status(s) == "INSTALLING"
                                                      and self.clock.now() >= s.created + s.vm_s)

    def _backup_instances(self, s: BackupService, status: str) -> list[dict]:
        if not self._backup_vm_running(s) and status != "INSTALL_FAILED":
            return []
        n = s.networks
        nics = [{"vlanId": n.get("management_network_vlan"), "ip": n.get("management_network_ip"),
                 "mask": n.get("management_network_subnet_mask"), "gateway": n.get("management_network_gateway")},
                {"vlanId": n.get("storage_network_vlan"), "ip": n.get("storage_network_ip"),
                 "mask": n.get("storage_network_subnet_mask")}]
        failed = status == "INSTALL_FAILED"
        t = self.tasks.get(s.task_id)
        vm = {"id": s.vm_id, "name": f"{s.app_name}-0", "cluster": s.cluster_id, "cpu": VM_CPU, "memory": VM_MEMORY,
              "vmStatus": "STOPPED" if failed else "RUNNING", "storages": [{"size": VM_DISK}],
              "network": {"nics": nics}, "vmUsage": "BACKUP_CONTROLLER", "bootWithHost": True,
              "env": [{"name": "TOWER_ENDPOINT", "value": self.ip}, {"name": "BACKUP_SERVICE_ID", "value": s.id},
                      {"name": "SERVICE_NAMESPACE", "value": BACKUP_PACKAGE}],
              "status": {"vmIps": [""], "message": "STOPPED" if failed else "RUNNING"}}
        return [{"applicationId": s.app_id, "vm": vm, "package": {"id": s.package_id},
                 "status": {"phase": "FAILED" if failed else "RUNNING", "containerStatuses": [],
                            "error": {"message": t.fault_msg} if failed and t else {}}}]

    def backup_service_view(self, s: BackupService) -> dict:
        status = self.backup_status(s)
        pkg = self.app_packages.get(s.package_id)
        clusters = [{"id": c, "name": (self.clusters[c].name if c in self.clusters else c)}
                    for c in s.backup_cluster_ids]
        running = status == "RUNNING"
        return {
            "id": s.id, "name": s.name, "status": status, "entityAsyncStatus": "CREATING" if status == "INSTALLING"
            else None, "description": None, "kube_config": s.kube_config,
            "application": {"id": s.app_id, "name": s.app_name, "state": status if status != "INSTALL_FAILED"
                            else "INSTALL_FAILED", "targetPackage": s.package_id, "resourceVersion": 0, "vmSpec": {},
                            "package": {"id": pkg.id, "name": pkg.name, "version": pkg.version,
                                        "architecture": pkg.architecture} if pkg else None,
                            "instanceStatuses": self._backup_instances(s, status)},
            "backup_clusters": clusters, "backup_plans": [], "backup_store_repositories": [],
            "running_vm": {"id": s.vm_id, "name": f"{s.app_name}-0", "status": "RUNNING", "cpu_usage": 7.5,
                           "memory_usage": 21.3} if running else None,
            **{k: s.networks.get(k) for k in (*_NET_KEYS, "storage_network_type", "backup_network_type")},
        }

    def list_backup_services(self, *, rest: bool = False) -> list[dict]:
        with self.lock:
            views = [self.backup_service_view(s) for s in self.backup_services.values()]
        if rest:
            for v in views:
                v["application"] = {"id": v["application"]["id"], "name": v["application"]["name"]}
                if v["running_vm"]:
                    v["running_vm"] = {"id": v["running_vm"]["id"], "name": v["running_vm"]["name"]}
        return views

    def update_backup_service(self, where: dict, data: dict) -> dict:
        with self.lock:
            s = self.backup_services.get((where or {}).get("id"))
            if s is None:
                raise _gql(f"no backup service with id {(where or {}).get('id')!r}", "NOT_FOUND")
            rel = (data or {}).get("backup_clusters")
            if rel is None:
                return self.backup_service_view(s)
            status = self.backup_status(s)
            if status != "RUNNING":
                raise _gql(f"backup service {s.name} is {status}: clusters can be associated once it is RUNNING")
            ids = {k: [x.get("id") for x in (rel.get(k) or [])] for k in ("set", "connect", "disconnect")}
            for cid in ids["set"] + ids["connect"]:
                c = self.clusters.get(cid)
                if c is None or self.connect_state(c) != "CONNECTED":
                    raise _gql(f"backup_clusters: {cid!r} is not a CONNECTED cluster")
            have = list(ids["set"]) if "set" in rel else list(s.backup_cluster_ids)
            have += [c for c in ids["connect"] if c not in have]
            s.backup_cluster_ids = [c for c in dict.fromkeys(have) if c not in ids["disconnect"]]
            return self.backup_service_view(s)

    # ---- tasks: the install task's steps; a stale one from an earlier attempt
    def task_view(self, t: Task) -> dict:
        v = super().task_view(t)
        if t.id in self._install_tasks:
            done = v["status"] == "SUCCESSED"
            v["steps"] = [{"key": k, "finished": done or (k == "HANDLE_SCOS_VM" and v["status"] != "PENDING"),
                           "current": 0, "per_second": 0, "total": None, "unit": None}
                          for k in ("HANDLE_SCOS_VM", "DEPLOY_PACKAGE")]
            v["user"] = {"id": t.user_id, "name": "system service"} if t.user_id else None
            v["snapshot"] = '{"typename":"CloudTowerApplication"}'
        return v

    def add_stale_install_task(self, app_name: str = "backup-backup", *, status: str = "SUCCESSED",
                               age_s: float = 3600.0) -> str:
        """An ``Install Application <app_name>`` task of an earlier attempt, ended ``age_s`` simulated s ago
        (``SUCCESSED`` or ``FAILED``), for an application that no longer exists: a waiter that matches tasks by
        description alone takes it for the new install."""
        if status not in ("SUCCESSED", "FAILED"):
            raise ValueError("status must be SUCCESSED or FAILED")
        with self.lock:
            t = self._task(description=f"Install Application {app_name}", key=None,
                           resource_type="CloudTowerApplication", resource_id=self._new_id("stale-application"),
                           mutation=None, args={}, running_s=10.0, user_id=(self.root or {}).get("id"),
                           fault=TaskFault("fail", f"install application {app_name} failed") if status == "FAILED"
                           else None)
            span = t.pending_s + t.running_s + float(age_s)
            t.created -= span
            t.created_wall -= span
            self._install_tasks.add(t.id)
            t.applied, t.outcome = True, status
            return t.id

    # ================================================================== snapshot
    def export_backup(self) -> dict:
        with self.lock:
            return {
                "upload_tasks": [dataclasses.asdict(t) for t in self.upload_tasks.values()],
                "app_packages": [dataclasses.asdict(p) for p in self.app_packages.values()],
                "vlan_creations": [dataclasses.asdict(r) for r in self.vlan_creations.values()],
                "backup_services": [dataclasses.asdict(s) for s in self.backup_services.values()],
                "foreign_clusters": [dict(fc) for fc in self.foreign_clusters],
                "install_tasks": sorted(self._install_tasks),
                "tunables": {k: getattr(self, k) for k in ("upload_chunk_size", "package_register_s", "vlan_task_s",
                                                           "backup_vm_s", "backup_install_s")},
            }

    def import_backup(self, saved: dict) -> None:
        def table(cls, rows):
            known = {f.name for f in dataclasses.fields(cls)}
            return {r["id"]: cls(**{k: v for k, v in r.items() if k in known}) for r in rows or []}

        with self.lock:
            self.upload_tasks = table(UploadTask, saved.get("upload_tasks"))
            self.app_packages = table(AppPackage, saved.get("app_packages"))
            self.vlan_creations = table(VlanCreation, saved.get("vlan_creations"))
            self.backup_services = table(BackupService, saved.get("backup_services"))
            self.foreign_clusters = [dict(fc) for fc in saved.get("foreign_clusters") or []]
            self._install_tasks = set(saved.get("install_tasks") or [])
            self._hashers = {}                  # a partial upload's whole-file hash is not kept: sha256 stays None
            for k, v in (saved.get("tunables") or {}).items():
                if hasattr(self, k):
                    setattr(self, k, int(v) if k == "upload_chunk_size" else float(v))
