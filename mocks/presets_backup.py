"""The backup part of preset ``components-ready`` (stage 07b done), through the simulator's own models (never the
suite's payload builders). Called by :func:`mocks.presets._components_ready`; every part is find-or-create:

* the package ``smtx-backup-dr-<arch>-<version>.tar.gz`` (version 集群管理信息!D5, else ``2.2.1``; the cluster's
  architecture) registered now (no upload, no delay);
* the backup VLAN: on the plan's backup VDS (虚拟网络 row 7 with a VDS name and NICs: that VDS is created first on
  the cluster, like the business VDS, with the planned NICs and bond mode), else on the storage VDS; named
  虚拟网络!D7 else ``backup-storage-network``, tag 虚拟网络!F7 else 0; created through ``create-vm-vlan``'s model
  method and its task waited for;
* the service named 集群管理信息 B5 (the component's VM name, default ``backup``), application ``backup-<name>``,
  management network = 集群管理信息!E5 on the management VM network (the one the CloudTower VM uses), storage network =
  :func:`storage_ip` on the new VLAN (``NEW_NIC``), backup network = management (``MANAGEMENT``), RUNNING (simulated
  time advanced past the install), the cluster attached (``backup_clusters``).

**Storage IP.** The workbook has no cell for it: the address of the storage subnet with the same host part as the
backup management IP (the guide: 10.0.20.4 -> 10.0.21.4), when free; else the highest free address of the storage
subnet. "Free": not a host's storage IP, the storage gateway, the VIP, a component address.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable

DEFAULT_VERSION = "2.2.1"
DEFAULT_VLAN = "backup-storage-network"


def storage_ip(plan) -> str | None:
    net = plan.storage.subnet
    if net is None:
        return None
    used = {str(h.storage_ip) for h in plan.hosts if h.storage_ip} | {str(plan.storage.gateway), str(plan.vip)}
    used |= {str(c.ip) for c in plan.components.values() if c.ip is not None}
    comp = plan.components.get("backup")
    if comp is not None and comp.ip is not None:
        mgmt = plan.mgmt.subnet
        if mgmt is not None and comp.ip in mgmt:
            host_part = int(comp.ip) - int(mgmt.network_address)
            cand = ipaddress.IPv4Address(int(net.network_address) + host_part)
            if cand in net and cand not in (net.network_address, net.broadcast_address) and str(cand) not in used:
                return str(cand)
    for cand in reversed(list(net.hosts())):
        if str(cand) not in used:
            return str(cand)
    return None


def _backup_vds(sim, wait_jobs: Callable, error: type) -> Any:
    """The fisheye VDS the backup VLAN goes on (the planned backup VDS, created when missing; else storage)."""
    from .fisheye.models import FisheyeError, VdsMember

    plan, fe = sim.plan, sim.fisheye
    b = plan.backup
    if b.vds and b.nics:
        vds = fe.vds_by_name(b.vds)
        if vds is None:
            hosts = {ip: sim.deployment.hosts[ip] for ip in (str(h.mgmt_ip) for h in plan.hosts if h.mgmt_ip)}
            members = [VdsMember(hosts[str(h.mgmt_ip)].host_uuid, list(b.nics), None)
                       for h in plan.hosts if str(h.mgmt_ip) in hosts]
            try:
                job = fe.create_vds(b.vds, b.bond_mode if len(b.nics) > 1 else None, members)["job_id"]
            except FisheyeError as exc:
                raise error(f"creating the backup VDS {b.vds}: {exc.msg}") from None
            wait_jobs(sim, [job], "backup VDS")
            vds = fe.vds_by_name(b.vds)
        return vds
    vds = fe.vds_by_name(plan.storage.vds or "") or next((v for v in fe.vdses.values() if v.role == "storage"), None)
    if vds is None:
        raise error("no storage VDS on the cluster")
    return vds


def _vlan(sim, tower, c, fe_vds, error: type) -> dict:
    plan = sim.plan
    name, tag = plan.backup.name or DEFAULT_VLAN, plan.backup.vlan_id or 0
    vds_id = tower._vds_id(c, fe_vds.uuid)
    have = [v for v in tower.list_vlans() if v["name"] == name and v["vds"]["id"] == vds_id]
    if have:
        return have[0]
    (made,) = tower.create_vm_vlans([{"vds_id": vds_id, "name": name, "vlan_id": tag}], (tower.root or {}).get("id"))
    t = tower.tasks[made["task_id"]]
    sim.advance(max(0.0, t.created + t.pending_s + t.running_s - sim.clock.now()) + 1)
    (vlan,) = [v for v in tower.list_vlans() if v["id"] == made["data"]["id"]]
    if vlan["entityAsyncStatus"] is not None:
        raise error(f"the backup VLAN {name} is still {vlan['entityAsyncStatus']}")
    return vlan


def _mgmt_vlan_id(sim, tower, c, mgmt_network: Callable) -> str:
    _vds, vlan = mgmt_network(sim)
    return tower._vlan_id(c, vlan.uuid)


def backup_ready(sim, summary: dict, *, plan_tower: Callable, wait_jobs: Callable, mgmt_network: Callable,
                 error: type) -> None:
    plan = sim.plan
    comp = plan.components.get("backup")
    if comp is None or comp.ip is None:
        summary["backup"] = "not applicable: 集群管理信息!E5 (backup address) is blank"
        return
    ip, tower = plan_tower(sim)
    c = tower.cluster_by_ip(str(summary.get("vip") or plan.vip or ""))
    if c is None or tower.connect_state(c) != "CONNECTED":
        raise error(f"no CONNECTED cluster at {plan.vip} in CloudTower {ip}")
    arch = tower.cluster_view(c)["architecture"].lower()
    pkg = tower.register_package(f"smtx-backup-dr-{arch}-{comp.version or DEFAULT_VERSION}.tar.gz")
    fe_vds = _backup_vds(sim, wait_jobs, error)
    vlan = _vlan(sim, tower, c, fe_vds, error)
    name = comp.vm_name or "backup"
    svc = next((s for s in tower.backup_services.values() if s.name == name), None)
    sip = storage_ip(plan)
    if svc is None:
        mgmt_vlan = _mgmt_vlan_id(sim, tower, c, mgmt_network)
        mgmt = {"ip": str(comp.ip), "subnet_mask": plan.mgmt.netmask, "gateway": _s(plan.mgmt.gateway),
                "vlan": mgmt_vlan}
        data = {"name": name, "entityAsyncStatus": "CREATING", "status": "INSTALLING", "kube_config": "",
                "application": {"create": {"instances": {"create": []}, "state": "INSTALLING", "instanceStatuses": [],
                                           "name": f"backup-{name}", "resourceVersion": 0, "vmSpec": {},
                                           "targetPackage": pkg.id}},
                "storage_network_type": "NEW_NIC", "backup_network_type": "MANAGEMENT",
                **{f"management_network_{k}": v for k, v in mgmt.items()},
                **{f"backup_network_{k}": v for k, v in mgmt.items()},
                "storage_network_ip": sip, "storage_network_subnet_mask": plan.storage.netmask,
                "storage_network_vlan": vlan["id"]}
        made = tower.create_backup_service(data, {"running_cluster": c.id, "running_host": "AUTO_SCHEDULE"},
                                           (tower.root or {}).get("id"))
        svc = tower.backup_services[made["id"]]
        t = tower.tasks[svc.task_id]
        sim.advance(max(0.0, t.created + t.pending_s + t.running_s - sim.clock.now()) + 1)
    if tower.backup_status(svc) != "RUNNING":
        raise error(f"the backup service {name} reads {tower.backup_status(svc)}")
    if c.id not in svc.backup_cluster_ids:
        tower.update_backup_service({"id": svc.id}, {"backup_clusters": {"connect": [{"id": c.id}]}})
    summary["backup"] = {
        "package": {"id": pkg.id, "filename": pkg.filename, "version": pkg.version, "architecture": pkg.architecture},
        "service": {"id": svc.id, "name": svc.name, "application": svc.app_name, "status": tower.backup_status(svc)},
        "storage_vds": fe_vds.name, "vlan": {"id": vlan["id"], "name": vlan["name"], "vlan_id": vlan["vlan_id"]},
        "storage_ip": svc.networks.get("storage_network_ip"), "management_ip": svc.networks.get("management_network_ip"),
        "clusters": list(svc.backup_cluster_ids)}


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


__all__ = ["backup_ready", "storage_ip"]
