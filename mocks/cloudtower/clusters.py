"""Clusters connected to a simulated CloudTower and what it syncs from them (hosts, VDSes, VLANs).

``connect_state`` is computed on read from the connect task and the simulated network:

* ``connect-cluster`` first reaches the cluster (:class:`mocks.cloudtower.smtx.SmtxSource`) and answers a
  synchronous 400 ``ErrorBody`` with a ``ClusterConnectorErrorCode`` when it cannot: tcp/443 down
  (``LOAD_CLUSTER_NETWORK_ERROR``), no SMTX OS there (``LOAD_CLUSTER_NOT_FOUND``), the cluster refuses root's
  password (``LOAD_CLUSTER_UNAUTHORIZED``, profile ``connect-auth-refused``, the default). An address CloudTower
  already knows (any state but ``CONNECTED_ERROR``) -> 400 "already connected".
* Otherwise a task connects it: ``INITIALIZING`` while the task is PENDING / EXECUTING (``connect_seconds``
  simulated seconds in all), ``CONNECTED`` once it SUCCESSED.
* ``CONNECTED_ERROR`` when the task FAILED, with ``disconnected_reason`` the task's ``error_code``: profile
  ``connect-auth-late`` accepts a wrong password and fails the task after ``AUTH_FAIL_S`` (or
  ``connect_seconds`` when shorter) with ``LOAD_CLUSTER_UNAUTHORIZED`` and an ``error_message``; an
  ``operation`` fault ``fail`` gives ``LOAD_CLUSTER_FAILED`` (``stuck``: INITIALIZING forever). A later
  ``connect-cluster`` to the same address replaces the failed record.
* ``DISCONNECTED`` (``disconnected_reason`` ``LOAD_CLUSTER_NETWORK_ERROR``, ``disconnected_date`` when
  CloudTower first noticed) while a connected cluster's address stops answering (its tcp/443 down, or fisheye
  gone); ``CONNECTED`` again once it answers.
* Once CONNECTED every view reads the cluster live from fisheye (hosts, VDSes, VLANs, DNS, NTP, license ...),
  except for the first ``sync_lag_s`` simulated seconds (profile ``cluster-sync-lags``): then the cluster reads
  CONNECTED with ``host_num`` 0 and no hosts / VDSes / VLANs (``get-hosts`` / ``get-vdses`` / ``get-vlans``
  leave it out), as CloudTower syncs the resources after the connection.
* Datacenters: a (non-stretched) cluster belongs to at most one datacenter (``ClusterCreationParams`` has one
  ``datacenter_id``; the zone datacenters are for stretched clusters only), so ``add-clusters-to-datacenter``
  *moves* it: afterwards it is in exactly the target datacenter (see :mod:`mocks.cloudtower.orgs`).

Knobs (``tower = sim.state.cloudtower.tower(ip)``; read when ``connect-cluster`` is called, so set them before):

* ``tower.connect_seconds`` (default ``CONNECT_S`` = 150 simulated s): how long a connect stays INITIALIZING.
  ``tower.connect_seconds = 10**6`` keeps a connect INITIALIZING past any limit (the "stuck connect" fault
  without a fault rule). It is a snapshot tunable (``export_state``/``import_state``); a connect already
  running keeps the duration it started with (it lives in its task, which snapshots keep as well).
* ``tower.connect_auth``: ``"refused"`` | ``"late"`` (profile group ``connect-auth``).
* ``tower.sync_lag_s``: simulated seconds after CONNECTED before hosts / VDSes / VLANs show (profile group
  ``cluster-sync``; ``SYNC_LAG_S`` = 40 under ``cluster-sync-lags``, else 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import RestError
from .smtx import LOAD_CLUSTER_FAILED, LOAD_CLUSTER_NETWORK_ERROR, LOAD_CLUSTER_UNAUTHORIZED
from .tasks import TaskFault
from .util import cuid, iso_ms

CONNECT_S = 150.0               # connect-cluster: INITIALIZING -> CONNECTED (field note: a few minutes; 10 min cap)
AUTH_FAIL_S = 20.0              # connect-auth-late: simulated s before a refused password fails the connect task
SYNC_LAG_S = 40.0               # cluster-sync-lags: simulated s after CONNECTED before hosts / VDSes / VLANs show
CONNECT_AUTH_MODES = ("refused", "late")
_CONNECT_STATE = {"PENDING": "INITIALIZING", "EXECUTING": "INITIALIZING", "SUCCESSED": "CONNECTED",
                  "FAILED": "CONNECTED_ERROR"}
_NOT_SYNCED = {"hosts": [], "vdses": [], "vlans": []}


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
    sync_lag_s: float = 0.0           # the tower's sync_lag_s when it was connected
    disconnected_wall: float | None = None   # UNIX s CloudTower first saw it DISCONNECTED (None: it answers)


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
    """State: ``clusters`` (id -> :class:`Cluster`), ``connect_seconds``, ``connect_auth``, ``sync_lag_s``,
    ``smtx``."""

    connect_auth = "refused"          # class defaults; CloudTowerModel and the profiles set them per tower
    sync_lag_s = 0.0

    def connect_state(self, c: Cluster) -> str:
        t = self.tasks.get(c.task_id)
        st = t.status(self.clock.now()) if t else "SUCCESSED"
        state = _CONNECT_STATE.get(st, "CONNECTED_ERROR")
        if state != "CONNECTED":
            return state
        with self.lock:
            if self.smtx is not None and not self.smtx.reachable(c.ip):
                if c.disconnected_wall is None:
                    c.disconnected_wall = self.clock.wall()
                return "DISCONNECTED"
            c.disconnected_wall = None
        return state

    def _connected_at(self, c: Cluster) -> float | None:
        """Simulated time the connect task ended (None: still running, or no task)."""
        t = self.tasks.get(c.task_id)
        if t is None:
            return None
        return t.created + t.pending_s + t.running_s

    def _disconnect(self, c: Cluster, state: str) -> tuple[str | None, str | None]:
        """``(disconnected_reason, disconnected_date)`` of a cluster in ``state``."""
        if state == "DISCONNECTED":
            return LOAD_CLUSTER_NETWORK_ERROR, iso_ms(c.disconnected_wall)
        if state == "CONNECTED_ERROR":
            t = self.tasks.get(c.task_id)
            return (t.fault_code if t else None) or LOAD_CLUSTER_FAILED, self._iso_sim(self._connected_at(c))
        return None, None

    def _info(self, c: Cluster) -> dict | None:
        return self.smtx.info(c.ip) if self.smtx is not None else None

    def synced(self, c: Cluster) -> bool:
        """Whether CloudTower has synced the cluster's hosts / VDSes / VLANs (``sync_lag_s`` after CONNECTED)."""
        if c.task_id not in self.tasks:                 # no connect task on record: nothing to wait for
            return True
        end = self._connected_at(c)
        return self.clock.now() >= end + float(c.sync_lag_s or 0.0)

    def _view_info(self, c: Cluster, state: str) -> dict | None:
        """What CloudTower shows of the cluster in ``state``: read live once CONNECTED (or DISCONNECTED: the
        last sync, which the simulator reads live while fisheye still runs), without hosts / VDSes / VLANs
        until synced; None before the connection (or when nothing answers)."""
        if state not in ("CONNECTED", "DISCONNECTED"):
            return None
        info = self._info(c)
        if info is not None and not self.synced(c):
            info = info | _NOT_SYNCED
        return info

    def _check_connect(self, i: int, s: ClusterSpec) -> TaskFault | None:
        """Raise the synchronous refusal of item ``i``; a password refused later (``connect-auth-late``)
        comes back as the fault its task fails with."""
        if s.datacenter_id is not None and s.datacenter_id not in self.datacenters:
            raise RestError(404, f"[{i}].datacenter_id: no datacenter with id {s.datacenter_id}")
        if any(c.ip == s.ip and self.connect_state(c) != "CONNECTED_ERROR" for c in self.clusters.values()):
            raise RestError(400, f"[{i}]: the cluster at {s.ip} is already connected to this CloudTower")
        if self.smtx is None:
            raise RestError(400, f"[{i}]: no SMTX OS cluster answers at {s.ip}", "LOAD_CLUSTER_NOT_FOUND")
        problem = self.smtx.probe(s.ip, s.username, s.password)
        if problem is None:
            return None
        if problem[0] == LOAD_CLUSTER_UNAUTHORIZED and self.connect_auth == "late":
            return TaskFault("fail", f"failed to connect cluster {s.ip}: {problem[1]}", LOAD_CLUSTER_UNAUTHORIZED)
        raise RestError(400, f"[{i}]: {problem[1]}", problem[0])

    def connect_clusters(self, specs: list[ClusterSpec], user_id: str | None,
                         fault: TaskFault | None = None) -> list[dict]:
        """``connect-cluster``: CloudTower reaches each cluster first (synchronous 400 with a
        ClusterConnectorErrorCode when it cannot), then a task connects it. All or nothing."""
        if self.connect_auth not in CONNECT_AUTH_MODES:
            raise ValueError(f"connect_auth must be one of {CONNECT_AUTH_MODES}, got {self.connect_auth!r}")
        with self.lock:
            late = [self._check_connect(i, s) for i, s in enumerate(specs)]
            return [self._connect(s, user_id, refused or fault) for s, refused in zip(specs, late)]

    def _connect(self, s: ClusterSpec, user_id: str | None, fault: TaskFault | None) -> dict:
        info = self.smtx.info(s.ip) or {}
        for old in [c for c in self.clusters.values() if c.ip == s.ip]:     # a failed earlier attempt
            self.clusters.pop(old.id, None)
        cid = self._new_id("cluster")
        total = float(self.connect_seconds)
        if fault is not None and fault.code == LOAD_CLUSTER_UNAUTHORIZED:
            total = min(total, AUTH_FAIL_S)
        t = self._task(description=f"connect cluster {s.ip}", key="connect_cluster", resource_type="Cluster",
                       resource_id=cid, mutation="connectCluster",
                       args={"ip": s.ip, "datacenter_id": s.datacenter_id, "username": "root",
                             "name": info.get("name")},
                       running_s=max(0.0, total - float(self.task_pending)),
                       user_id=user_id, cluster_id=cid, fault=fault)
        c = Cluster(id=cid, ip=s.ip, name=info.get("name"), version=info.get("version") or "6.2.0",
                    local_id=(info.get("license") or {}).get("serial"),
                    settings_id=cuid("smtx-sim://cloudtower", self.ip, "cluster-settings", cid),
                    datacenter_ids=[s.datacenter_id] if s.datacenter_id else [], task_id=t.id,
                    connected_wall=self.clock.wall(), sync_lag_s=float(self.sync_lag_s or 0.0))
        self.clusters[cid] = c
        return {"data": self.cluster_view(c, basic=True), "task_id": t.id}

    def cluster_by_ip(self, ip: str) -> Cluster | None:
        with self.lock:
            return next((c for c in self.clusters.values() if c.ip == ip), None)

    def cluster_view(self, c: Cluster, *, basic: bool = False) -> dict:
        state = self.connect_state(c)
        v: dict[str, Any] = {
            "id": c.id, "name": c.name or c.ip, "ip": c.ip, "version": c.version, "architecture": "X86_64",
            "type": "SMTX_OS", "hypervisor": "ELF", "connect_state": state,
            "dns": [], "ntp_servers": [], "recommended_cpu_models": [], "total_cpu_models": [], "labels": [],
        }
        if basic:                                      # connect-cluster's answer (the guide's keys)
            return v
        info = self._view_info(c, state)
        v.update(self._cluster_details(c, state, info or {}, connected=info is not None))
        return v

    def _cluster_details(self, c: Cluster, state: str, info: dict, *, connected: bool) -> dict:
        hosts = [self._host_nested(c, h) for h in info.get("hosts", [])]
        rec = list(info.get("recommended_cpu_models") or [])
        dcs = [self.datacenters[d] for d in c.datacenter_ids if d in self.datacenters]
        reason, since = self._disconnect(c, state)
        return {
            "application_highest_version": c.version, "applications": [], "auto_converge": True,
            "consistency_groups": [], "current_cpu_model": info.get("current_cpu_model"),
            "datacenters": [{"id": d.id, "name": d.name} for d in dcs],
            "disconnected_date": since,
            "disconnected_reason": reason,
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
        """CONNECTED clusters and what CloudTower shows of them (no hosts / VDSes / VLANs until synced)."""
        return [(c, info) for c, info, state in self._synced_clusters() if state == "CONNECTED"]

    def _synced_clusters(self) -> list[tuple[Cluster, dict, str]]:
        """``(cluster, info, connect_state)`` of every cluster CloudTower has resources of: CONNECTED, and
        DISCONNECTED ones (CloudTower keeps their last sync)."""
        self.settle()
        out = []
        with self.lock:
            for c in self.clusters.values():
                state = self.connect_state(c)
                info = self._view_info(c, state)
                if info is not None:
                    out.append((c, info, state))
        return out

    # ------------------------------------------------------------------ synced cluster objects
    def _host_nested(self, c: Cluster, h: dict) -> dict:
        return {"id": cuid("smtx-sim://cloudtower", self.ip, "host", c.id, h["local_id"]),
                "management_ip": h["management_ip"], "name": h["name"]}

    def list_hosts(self) -> list[dict]:
        out = []
        for c, info, state in self._synced_clusters():
            up = state == "CONNECTED"
            out += [self._host_nested(c, h) | {
                        "local_id": h["local_id"], "data_ip": h["data_ip"], "cluster": {"id": c.id, "name": c.name},
                        "os_version": h["version"], "status": "CONNECTED_HEALTHY" if up else "CONNECTED_ERROR",
                        "merged_status": "HEALTHY" if up else "DISCONNECTED",
                        "connect_status": "CONNECTED" if up else "DISCONNECTED", "state": "IDLE", "labels": [],
                        "vms": []}
                    for h in info["hosts"]]
        return out

    def _vds_id(self, c: Cluster, local_id: str) -> str:
        return cuid("smtx-sim://cloudtower", self.ip, "vds", c.id, local_id)

    def _vlan_id(self, c: Cluster, local_id: str) -> str:
        return cuid("smtx-sim://cloudtower", self.ip, "vlan", c.id, local_id)

    def _vds_views(self, c: Cluster, info: dict | None) -> list[dict]:
        if not info or not info.get("vdses"):          # not connected, or not synced yet
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
        return [v for c, info, _state in self._synced_clusters() for v in self._vds_views(c, info)]

    def list_vlans(self) -> list[dict]:
        out = []
        for c, info, _state in self._synced_clusters():
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
