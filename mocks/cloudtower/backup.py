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

Split by concept: ``backup_uploads.py`` (upload tasks, packages), ``backup_vlans.py`` (``create-vm-vlan``,
foreign clusters), this module (the backup service, its install task, fault helpers, snapshot).

Knobs (``tower = sim.state.cloudtower.tower(ip)``; snapshot tunables): ``upload_chunk_size`` (4194304: what
``createUploadTask`` answers whatever the client asked), ``package_register_s``, ``vlan_task_s``, ``backup_vm_s``,
``backup_install_s``. Helpers: :meth:`BackupMixin.register_package`, :meth:`BackupMixin.add_stale_install_task`,
:meth:`BackupMixin.add_foreign_cluster`.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .backup_uploads import (BACKUP_PACKAGE, PACKAGE_FILE, PACKAGE_REGISTER_S, RESOURCE_TYPES, UPLOAD_CHUNK_SIZE,
                             UPLOAD_STATUSES, AppPackage, BackupUploadsMixin, Upload, UploadTask, _gql)
from .backup_vlans import MODE_TYPES, VLAN_TASK_S, BackupVlansMixin, VlanCreation
from .tasks import Task, TaskFault

__all__ = ["AppPackage", "BACKUP_INSTALL_S", "BACKUP_PACKAGE", "BACKUP_VM_S", "BackupMixin", "BackupService",
           "BackupUploadsMixin", "BackupVlansMixin", "MODE_TYPES", "NETWORK_TYPES", "PACKAGE_FILE",
           "PACKAGE_REGISTER_S", "RESOURCE_TYPES", "UPLOAD_CHUNK_SIZE", "UPLOAD_STATUSES", "Upload", "UploadTask",
           "VLAN_TASK_S", "VM_CPU", "VM_DISK", "VM_MEMORY", "VlanCreation"]

BACKUP_VM_S = 120.0
BACKUP_INSTALL_S = 156.0
NETWORK_TYPES = ("MANAGEMENT", "NEW_NIC", "STORAGE")
_NET_KEYS = tuple(f"{net}_network_{k}" for net in ("management", "storage", "backup")
                  for k in ("ip", "subnet_mask", "gateway", "vlan"))
VM_CPU, VM_MEMORY, VM_DISK = 4, 17179869184, 21474836480          # the guide's backup VM (L3328)


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


def _ipv4(name: str, v: Any) -> None:
    if v is None:
        return
    try:
        ipaddress.IPv4Address(str(v))
    except ValueError:
        raise _gql(f"{name}: {v!r} is not an IPv4 address") from None


class BackupMixin(BackupUploadsMixin, BackupVlansMixin):
    """State and knobs: see the module doc. Upload tasks and packages come from :class:`BackupUploadsMixin`,
    ``create-vm-vlan`` and foreign clusters from :class:`BackupVlansMixin`; the backup service is here."""

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
