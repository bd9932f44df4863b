"""Stage 07a of a simulated CloudTower: Observability bundle application instances, their NTP, connected clusters
and connected system services.

:class:`ObsInstancesMixin` (composed by :class:`~mocks.cloudtower.obs.ObsMixin`; see that module's doc) keeps
``obs_instances`` (:class:`ObsInstance`: ``INSTALLING`` for ``install_s``, the VM ``RUNNING`` ``vm_lead_s`` before
``SUCCESS``; an ``operation`` fault ``stuck`` / ``fail``). NTP, clusters and system services need ``SUCCESS``.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .errors import GqlError
from .tasks import TaskFault
from .util import is_ntp_server

OBS_INSTALL_S = 600.0        # INSTALLING -> SUCCESS (CX allows 30 min; the typical time is unknown)
OBS_VM_LEAD_S = 120.0        # the VM is RUNNING this long before the instance reads SUCCESS
INSTANCE_FAIL_S = 300.0      # operation fault "fail": FAILED after this long [inf]
SYSTEM_SERVICE_S = 60.0      # a connected system service: INSTALLING -> RUNNING [inf]
CLOUDTOWER_VERSION = "4.7.1"


@dataclass
class ObsInstance:
    id: str
    name: str
    description: str
    package_id: str
    cluster_id: str
    host_id: str
    vm_spec: dict
    application_id: str
    app_instance_id: str
    vm_id: str
    created: float                       # simulated s
    install_s: float
    vm_lead_s: float
    fault: str | None = None             # None | stuck | fail
    fault_msg: str | None = None
    ntp_servers: list = field(default_factory=list)
    connected: list = field(default_factory=list)          # [{id, cluster_id, occ_id, host_plugin_id, traffic}]
    system_services: list = field(default_factory=list)    # [{id, system_service_id, name, type, created, ...}]
    networked: bool = False              # the VM has taken its IP on the simulated network


class ObsInstancesMixin:
    """Bundle application instances and what hangs off them (state set up by ``ObsMixin._init_obs``)."""

    def _vm_running(self, i: ObsInstance, now: float) -> bool:
        if i.fault == "fail":
            return False
        return now >= i.created + max(0.0, i.install_s - i.vm_lead_s)

    def obs_status(self, i: ObsInstance, now: float | None = None) -> str:
        now = self.clock.now() if now is None else now
        if i.fault == "fail":
            return "FAILED" if now >= i.created + min(INSTANCE_FAIL_S, i.install_s) else "INSTALLING"
        if i.fault == "stuck" or now < i.created + i.install_s:
            return "INSTALLING"
        return "SUCCESS"

    def _cluster_vlans(self, cluster_id: str) -> set[str]:
        return {v["id"] for c, info in self._connected() if c.id == cluster_id
                for v in ({"id": self._vlan_id(c, x["local_id"])} for x in info["vlans"])}

    def create_obs_instance(self, data: dict, fault: TaskFault | None = None) -> dict:
        """``createBundleApplicationInstance``: the checks CloudTower makes, then INSTALLING."""
        spec = dict(data["vm_spec"])
        pid = (data.get("bundle_application_package") or {}).get("id")
        cid = (data.get("cluster") or {}).get("id")
        self._check_instance(data, spec, pid, cid)
        with self.lock:
            iid = self._new_id("bundle-instance")
            inst = ObsInstance(
                id=iid, name=data["name"], description=data.get("description") or "", package_id=pid, cluster_id=cid,
                host_id=data.get("host_id") or "", vm_spec=spec,
                application_id=self._new_id("application"), app_instance_id=self._new_id("application-instance"),
                vm_id=self._new_id("vm"), created=self.clock.now(), install_s=float(self.obs_install_s),
                vm_lead_s=float(self.obs_vm_lead_s), fault=fault.mode if fault else None,
                fault_msg=fault.msg if fault else None)
            self.obs_instances[iid] = inst
            return self.obs_instance_view(inst)

    def _check_instance(self, data: dict, spec: dict, pid: str | None, cid: str | None) -> None:
        if pid not in self.obs_packages:
            raise GqlError(f"bundle_application_package: no BundleApplicationPackage with id {pid}", "NOT_FOUND")
        c = self.clusters.get(cid)
        if c is None:
            raise GqlError(f"cluster: no cluster with id {cid}", "NOT_FOUND")
        if self.connect_state(c) != "CONNECTED":
            raise GqlError(f"cluster {c.name or c.ip} is {self.connect_state(c)}, not CONNECTED", "BAD_USER_INPUT")
        for k in ("ip", "subnet_mask", "gateway"):
            try:
                ipaddress.IPv4Address(str(spec.get(k, "")).strip())
            except ValueError:
                raise GqlError(f"vm_spec.{k}: {spec.get(k)!r} is not an IPv4 address", "BAD_USER_INPUT") from None
        for k in ("memory_size_bytes", "storage_size_bytes"):
            if not str(spec.get(k, "")).isdigit():
                raise GqlError(f"vm_spec.{k}: {spec.get(k)!r} is not a byte count", "BAD_USER_INPUT")
        if spec["vlan_id"] not in self._cluster_vlans(cid):
            other = any(v["id"] == spec["vlan_id"] for v in self.list_vlans())
            raise GqlError(f"vm_spec.vlan_id: {spec['vlan_id']} is "
                           + (f"not a VLAN of cluster {c.name}'s VDSes" if other else "no VLAN CloudTower knows"),
                           "BAD_USER_INPUT")
        with self.lock:
            for i in self.obs_instances.values():                   # [inf] the real error text is unknown
                if i.name == data["name"]:
                    raise GqlError(f"a bundle application instance named {i.name!r} already exists", "ALREADY_EXISTS")
                if i.vm_spec["ip"] == spec["ip"]:
                    raise GqlError(f"the IP {spec['ip']} is already used by bundle application instance {i.name!r}",
                                   "ALREADY_EXISTS")

    def obs_instance(self, iid: str | None) -> ObsInstance:
        inst = self.obs_instances.get(iid or "")
        if inst is None:
            raise GqlError(f"no BundleApplicationInstance with id {iid}", "NOT_FOUND")
        return inst

    def _running(self, iid: str | None) -> ObsInstance:
        inst = self.obs_instance(iid)
        st = self.obs_status(inst)
        if st != "SUCCESS":                                             # [inf] the OVM is not reachable yet
            raise GqlError(f"bundle application instance {inst.name} is {st}: the observability service is not "
                           f"running yet", "BAD_USER_INPUT")
        return inst

    def set_obs_ntp(self, iid: str | None, ntp_service_url: str) -> str:
        servers = [s.strip() for s in re.split(r"[,;]", ntp_service_url or "") if s.strip()]
        bad = [s for s in servers if not is_ntp_server(s)]
        if not servers or bad:
            raise GqlError(f"ntp_service_url: {ntp_service_url!r} is not a list of NTP servers", "BAD_USER_INPUT")
        with self.lock:
            inst = self._running(iid)
            inst.ntp_servers = servers
            return ";".join(servers)

    def connect_obs_clusters(self, iid: str | None, clusters: list[dict]) -> dict:
        """``connected_clusters: {id_in}``: the instance's connected clusters become exactly these [inf]."""
        with self.lock:
            inst = self._running(iid)
            keep = {x["cluster_id"]: x for x in inst.connected}
            inst.connected = [keep.get(c["id"]) or {
                "id": self._new_id("connected-cluster"), "cluster_id": c["id"],
                "occ_id": self._obs_id("occ"), "host_plugin_id": self._new_id("host-plugin"), "traffic": False}
                for c in clusters]
            return self.obs_instance_view(inst)

    def set_obs_system_services(self, ovm_name: str, services: list[dict]) -> list[dict]:
        with self.lock:
            insts = list(self.obs_instances.values())
            inst = next((i for i in insts if i.name == ovm_name), None) or (insts[0] if len(insts) == 1 else None)
            if inst is None:            # G sends ovm_name "observability" for its instance "obs"
                raise GqlError(f"no observability instance for ovm_name {ovm_name!r}", "NOT_FOUND")
            inst = self._running(inst.id)
            have = {s["system_service_id"]: s for s in inst.system_services}
            out = []
            for s in services:
                old = have.get(s["system_service_id"])
                out.append({"id": old["id"] if old else self._obs_id("system-service"),
                            "system_service_id": s["system_service_id"], "name": s["system_service_name"],
                            "type": s["type"], "created": self.clock.now(),
                            "alerting_rules": [r["name"] for r in s.get("alerting_rules") or []],
                            "instances": [{"url": x["url"], **(x.get("info") or {})} for x in s["instances"]]})
            inst.system_services = [have[k] for k in have if k not in {s["system_service_id"] for s in out}] + out
            return [self._system_service_view(inst, s) for s in out]

    # ------------------------------------------------------------------ views
    def _system_service_view(self, inst: ObsInstance, s: dict) -> dict:
        running = self.clock.now() >= s["created"] + SYSTEM_SERVICE_S
        return {"id": s["id"], "type": s["type"], "status": "RUNNING" if running else "INSTALLING",
                "tenant_id": inst.id, "system_service": {"id": s["system_service_id"], "name": s["name"],
                                                         "version": CLOUDTOWER_VERSION},
                "instances": [{"state": "STATE_UNSPECIFIED", "url": x["url"]} for x in s["instances"]]}

    def _obs_cluster(self, cid: str) -> dict | None:
        c = self.clusters.get(cid)
        if c is None:
            return None
        state = self.connect_state(c)
        info = self._view_info(c, state) or {}
        return {"id": c.id, "name": c.name or c.ip, "local_id": c.local_id, "connect_state": state,
                "version": c.version, "type": "SMTX_OS", "architecture": "X86_64",
                "hosts": [self._host_nested(c, h) for h in info.get("hosts", [])]}

    def _connected_view(self, inst: ObsInstance, x: dict, *, nested: bool = True) -> dict:
        cl = self._obs_cluster(x["cluster_id"]) or {"id": x["cluster_id"], "name": None}
        v = {"id": x["id"], "name": cl.get("name"), "status": "CONNECTED", "migration_status": None, "cluster": cl,
             "host_plugin": {"id": x["host_plugin_id"], "host_plugin_instances": []},
             "observability_connected_cluster": {"id": x["occ_id"], "traffic_enabled": bool(x.get("traffic")),
                                                 "status": "CONNECTED"}}
        if nested:
            v["bundle_application_instance"] = self.obs_instance_view(inst)
        return v

    def obs_instance_view(self, inst: ObsInstance) -> dict:
        now = self.clock.now()
        status = self.obs_status(inst, now)
        vm_up = self._vm_running(inst, now)
        pkg = self.obs_packages.get(inst.package_id)
        return {
            "id": inst.id, "name": inst.name, "description": inst.description, "status": status,
            "error_code": "INSTALL_FAILED" if status == "FAILED" else "",
            "health_status": "NORMAL" if status == "SUCCESS" else None,
            "application": {"id": inst.application_id, "name": f"observability-{inst.name}",
                            "instances": [{"id": inst.app_instance_id, "vm": {
                                "id": inst.vm_id, "name": f"observability-{inst.name}", "status": "RUNNING",
                                "cpu_usage": 0.68, "memory_usage": 5.54}}] if vm_up else []},
            "vm_spec": {k: inst.vm_spec.get(k) for k in ("ip", "subnet_mask", "gateway", "vlan_id", "vcpu_count",
                                                          "memory_size_bytes", "storage_size_bytes", "env_vars")},
            "cluster": self._obs_cluster(inst.cluster_id),
            "bundle_application_package": self.obs_package_view(pkg) if pkg else None,
            "connected_clusters": [self._connected_view(inst, x, nested=False) for x in inst.connected],
            "connected_system_services": [self._system_service_view(inst, s) for s in inst.system_services],
        }

    def list_obs_instances(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.obs_instance_view(i) for i in self.obs_instances.values()]

    def list_obs_connected_clusters(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self._connected_view(i, x) for i in self.obs_instances.values() for x in i.connected]
