"""Stage 07b of a simulated CloudTower: VM VLANs created through CloudTower (``create-vm-vlan``) and the
"foreign" clusters CloudTower lists beside the simulated one.

:class:`BackupVlansMixin` (composed by :class:`~mocks.cloudtower.backup.BackupMixin`; see that module's doc) holds
``vlan_creations`` (:class:`VlanCreation`: ``CREATING`` until its task ends, then a network on the simulated
cluster) and ``foreign_clusters`` (:meth:`BackupVlansMixin.add_foreign_cluster`).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .errors import RestError
from .tasks import TaskFault
from .util import cuid

VLAN_TASK_S = 3.0
MODE_TYPES = ("VLAN_ACCESS", "VLAN_TRUNK", "VXLAN", "GENEVE")
_VLAN_FIELDS = {"vds_id", "name", "vlan_id", "mode_type", "network_ids", "qos_burst_unit", "qos_burst",
                "qos_max_bandwidth_unit", "qos_max_bandwidth", "qos_min_bandwidth_unit", "qos_min_bandwidth",
                "qos_priority"}


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


class BackupVlansMixin:
    """``create-vm-vlan`` and the VLAN / VDS / cluster lists it extends (state set up by ``BackupMixin._init_backup``)."""

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
