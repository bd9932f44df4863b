"""Clusters connected to a simulated CloudTower and what it syncs from them (hosts, VDSes, VLANs).

``connect-cluster`` probes the cluster first (:class:`mocks.cloudtower.smtx.SmtxSource`), then a task
connects it: ``connect_state`` INITIALIZING -> CONNECTED (or CONNECTED_ERROR when the task fails).
Once CONNECTED every view reads the cluster live from fisheye.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import RestError
from .tasks import TaskFault
from .util import cuid, iso_ms

CONNECT_S = 150.0               # connect-cluster: INITIALIZING -> CONNECTED (field note: a few minutes; 10 min cap)
_CONNECT_STATE = {"PENDING": "INITIALIZING", "EXECUTING": "INITIALIZING", "SUCCESSED": "CONNECTED"}


@dataclass
class Cluster:
    id: str
    ip: str
    name: str | None
    version: str
    local_id: str | None              # the cluster's license serial (as the guide's sample shows)
    settings_id: str
    datacenter_ids: list[str]
    task_id: str
    connected_wall: float


@dataclass(frozen=True)
class ClusterSpec:
    """One ``connect-cluster`` item (``ClusterCreationParams``), already checked for shape."""

    ip: str                           # normalized IPv4
    username: str
    password: str
    datacenter_id: str | None = None


def _license_fields(lic: dict) -> dict:
    sign = lic.get("sign_date")
    return {"license_expire_date": iso_ms(sign + lic["period"]) if sign else None,
            "license_serial": lic.get("serial"),
            "license_sign_date": iso_ms(sign) if sign else None,
            "license_type": lic.get("type"),
            "max_chunk_num": lic.get("max_chunk_num"),
            "software_edition": lic.get("edition")}


class ClustersMixin:
    """State: ``clusters`` (id -> :class:`Cluster`), ``connect_seconds``, ``smtx``."""

    def connect_state(self, c: Cluster) -> str:
        t = self.tasks.get(c.task_id)
        st = t.status(self.clock.now()) if t else "SUCCESSED"
        return _CONNECT_STATE.get(st, "CONNECTED_ERROR")

    def _info(self, c: Cluster) -> dict | None:
        return self.smtx.info(c.ip) if self.smtx is not None else None

    def _check_connect(self, i: int, s: ClusterSpec) -> None:
        if s.datacenter_id is not None and s.datacenter_id not in self.datacenters:
            raise RestError(404, f"[{i}].datacenter_id: no datacenter with id {s.datacenter_id}")
        if any(c.ip == s.ip and self.connect_state(c) != "CONNECTED_ERROR" for c in self.clusters.values()):
            raise RestError(400, f"[{i}]: the cluster at {s.ip} is already connected to this CloudTower")
        if self.smtx is None:
            raise RestError(400, f"[{i}]: no SMTX OS cluster answers at {s.ip}", "LOAD_CLUSTER_NOT_FOUND")
        problem = self.smtx.probe(s.ip, s.username, s.password)
        if problem is not None:
            raise RestError(400, f"[{i}]: {problem[1]}", problem[0])

    def connect_clusters(self, specs: list[ClusterSpec], user_id: str | None,
                         fault: TaskFault | None = None) -> list[dict]:
        """``connect-cluster``: CloudTower reaches each cluster first (synchronous 400 with a
        ClusterConnectorErrorCode when it cannot), then a task connects it."""
        with self.lock:
            for i, s in enumerate(specs):
                self._check_connect(i, s)
            return [self._connect(s, user_id, fault) for s in specs]

    def _connect(self, s: ClusterSpec, user_id: str | None, fault: TaskFault | None) -> dict:
        info = self.smtx.info(s.ip) or {}
        for old in [c for c in self.clusters.values() if c.ip == s.ip]:     # a failed earlier attempt
            self.clusters.pop(old.id, None)
        cid = self._new_id("cluster")
        t = self._task(description=f"connect cluster {s.ip}", key="connect_cluster", resource_type="Cluster",
                       resource_id=cid, mutation="connectCluster",
                       args={"ip": s.ip, "datacenter_id": s.datacenter_id, "username": "root",
                             "name": info.get("name")},
                       running_s=max(0.0, float(self.connect_seconds) - float(self.task_pending)),
                       user_id=user_id, cluster_id=cid, fault=fault)
        c = Cluster(id=cid, ip=s.ip, name=info.get("name"), version=info.get("version") or "6.2.0",
                    local_id=(info.get("license") or {}).get("serial"),
                    settings_id=cuid("smtx-sim://cloudtower", self.ip, "cluster-settings", cid),
                    datacenter_ids=[s.datacenter_id] if s.datacenter_id else [], task_id=t.id,
                    connected_wall=self.clock.wall())
        self.clusters[cid] = c
        return {"data": self.cluster_view(c, basic=True), "task_id": t.id}

    def cluster_view(self, c: Cluster, *, basic: bool = False) -> dict:
        state = self.connect_state(c)
        v: dict[str, Any] = {
            "id": c.id, "name": c.name, "ip": c.ip, "version": c.version, "architecture": "X86_64",
            "type": "SMTX_OS", "hypervisor": "ELF", "connect_state": state,
            "dns": [], "ntp_servers": [], "recommended_cpu_models": [], "total_cpu_models": [], "labels": [],
        }
        if basic:                                      # connect-cluster's answer (the guide's keys)
            return v
        info = self._info(c) if state == "CONNECTED" else None
        v.update(self._cluster_details(c, state, info or {}, connected=info is not None))
        return v

    def _cluster_details(self, c: Cluster, state: str, info: dict, *, connected: bool) -> dict:
        hosts = [self._host_nested(c, h) for h in info.get("hosts", [])]
        rec = list(info.get("recommended_cpu_models") or [])
        dcs = [self.datacenters[d] for d in c.datacenter_ids if d in self.datacenters]
        return {
            "application_highest_version": c.version, "applications": [], "auto_converge": True,
            "consistency_groups": [], "current_cpu_model": info.get("current_cpu_model"),
            "datacenters": [{"id": d.id, "name": d.name} for d in dcs],
            "disconnected_date": None,
            "disconnected_reason": "LOAD_CLUSTER_FAILED" if state == "CONNECTED_ERROR" else None,
            "dns": list(info.get("dns") or []),
            "entityAsyncStatus": None, "everoute_cluster": None, "has_metrox": True,
            "host_num": len(hosts), "hosts": hosts,
            "iscsi_vip": info.get("iscsi_vip"), "is_all_flash": bool(info.get("is_all_flash")),
            **_license_fields(info.get("license") or {}),
            "local_id": c.local_id,
            "management_vip": info.get("management_vip"),
            "mgt_gateway": info.get("mgt_gateway"), "mgt_netmask": info.get("mgt_netmask"),
            "ntp_mode": info.get("ntp_mode"), "ntp_servers": list(info.get("ntp_servers") or []),
            "recommended_cpu_models": rec,
            "settings": {"id": c.settings_id},
            "stretch": False,
            "total_cpu_models": (["host_passthrough"] + rec) if connected else [],
            "vcenterAccount": None,
            "vdses": [{"id": x["id"], "name": x["name"]} for x in self._vds_views(c, info if connected else None)],
            "vhost_enabled": True, "vm_folders": [], "vm_num": 0, "vm_templates": [], "vms": [],
            "witness": None, "zones": [],
        }

    def list_clusters(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.cluster_view(c) for c in self.clusters.values()]

    def _connected(self) -> list[tuple[Cluster, dict]]:
        self.settle()
        out = []
        with self.lock:
            for c in self.clusters.values():
                info = self._info(c) if self.connect_state(c) == "CONNECTED" else None
                if info is not None:
                    out.append((c, info))
        return out

    # ------------------------------------------------------------------ synced cluster objects
    def _host_nested(self, c: Cluster, h: dict) -> dict:
        return {"id": cuid("smtx-sim://cloudtower", self.ip, "host", c.id, h["local_id"]),
                "management_ip": h["management_ip"], "name": h["name"]}

    def list_hosts(self) -> list[dict]:
        return [self._host_nested(c, h) | {
                    "local_id": h["local_id"], "data_ip": h["data_ip"], "cluster": {"id": c.id, "name": c.name},
                    "os_version": h["version"], "status": "CONNECTED_HEALTHY", "merged_status": "HEALTHY",
                    "connect_status": "CONNECTED", "state": "IDLE", "labels": [], "vms": []}
                for c, info in self._connected() for h in info["hosts"]]

    def _vds_id(self, c: Cluster, local_id: str) -> str:
        return cuid("smtx-sim://cloudtower", self.ip, "vds", c.id, local_id)

    def _vlan_id(self, c: Cluster, local_id: str) -> str:
        return cuid("smtx-sim://cloudtower", self.ip, "vlan", c.id, local_id)

    def _vds_views(self, c: Cluster, info: dict | None) -> list[dict]:
        if not info:
            return []
        common = {"internal": False, "work_mode": "single", "cluster": {"id": c.id, "name": c.name},
                  "entityAsyncStatus": None, "everoute_cluster": None, "labels": [], "nics": []}
        out = []
        for v in info["vdses"]:
            mine = [x for x in info["vlans"] if x["vds_local_id"] == v["local_id"]]
            out.append({"id": self._vds_id(c, v["local_id"]), "name": v["name"], "local_id": v["local_id"],
                        "bond_mode": v["bond_mode"], "ovsbr_name": v["ovsbr_name"], "type": v["type"],
                        "vlans_num": len(mine), **common,
                        "vlans": [{"id": self._vlan_id(c, x["local_id"]), "name": x["name"]} for x in mine]})
        out.append({"id": self._vds_id(c, "ovsbr-internal"), "name": "vds-ovsbr-internal",
                    "local_id": f"{c.local_id or c.id}-ovsbr-internal", "bond_mode": "",
                    "ovsbr_name": "ovsbr-internal", "type": "ACCESS", "vlans_num": 0, **common, "internal": True,
                    "vlans": []})
        return out

    def list_vdses(self) -> list[dict]:
        return [v for c, info in self._connected() for v in self._vds_views(c, info)]

    def list_vlans(self) -> list[dict]:
        out = []
        for c, info in self._connected():
            names = {v["local_id"]: v["name"] for v in info["vdses"]}
            for x in info["vlans"]:
                out.append({"id": self._vlan_id(c, x["local_id"]), "name": x["name"], "local_id": x["local_id"],
                            "type": x["type"], "vlan_id": x["vlan_id"], "mode_type": "VLAN_ACCESS",
                            "network_ids": [], "vds": {"id": self._vds_id(c, x["vds_local_id"]),
                                                       "name": names.get(x["vds_local_id"])},
                            "gateway_ip": None, "gateway_subnetmask": None, "subnetmask": None,
                            "qos_burst": None, "qos_max_bandwidth": None, "qos_min_bandwidth": None,
                            "qos_priority": None, "entityAsyncStatus": None, "labels": [], "vm_nics": []})
        return out
