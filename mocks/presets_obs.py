"""Stage 07a as a preset step (``mocks.presets._obs_ready``): Observability installed and attached, through the
CloudTower model's own methods (the same checks as the API) and simulated time, never the suite's code.

What it leaves: the Observability package (the guide's file name, a real stand-in .tar.gz uploaded through the
model's chunk accounting and committed; both package tasks SUCCESSED), the instance ``obs`` at the plan's OBS IP
(集群管理信息!E4; subnet mask and gateway of the management network; the cluster's VM network ``default``, else its
first VM network) ``SUCCESS`` with its VM ``RUNNING`` and SSH on 10022, NTP = the plan's NTP servers, the plan's
cluster connected, the CloudTower system service (no alerting rules: the suite owns that list). Find-or-update:
applying it twice changes nothing. A plan without an OBS IP: summary ``obs`` = ``"not applicable"``.
"""
from __future__ import annotations

import io
import os
import tarfile
from typing import Any, Callable

from .cloudtower.obs import INSTALL_PKG_S, OBS_PACKAGE_NAME, package_of

PACKAGE_FILE = "Observability-X86_64-v1.4.2-release.20250926-24.tar.gz"     # the guide's (G L2258)
INSTANCE_NAME = "obs"                                                      # the guide's (G L2492)


def stand_in_package(size: int = 64 * 1024) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = os.urandom(size)
        info = tarfile.TarInfo("images/observability.qcow2")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _package(sim, tower, user: str | None, error: type[Exception]) -> Any:
    want = package_of(PACKAGE_FILE)
    found = next((p for p in tower.obs_packages.values()
                  if (p.name, p.version, p.arch) == (OBS_PACKAGE_NAME, want["version"], want["arch"])), None)
    if found is not None:
        return found
    up = tower.obs_upload_init(PACKAGE_FILE, user)
    tower.obs_append(up["id"], [stand_in_package()])
    tower.obs_commit(up["id"], user)
    sim.advance(INSTALL_PKG_S + 1)
    found = next((p for p in tower.obs_packages.values() if p.version == want["version"]), None)
    if found is None:
        raise error(f"the Observability package was not created (tasks: "
                    f"{[(t['description'], t['status'], t['error_message']) for t in tower.list_tasks()]})")
    return found


def _vlan(tower, cluster_id: str, error: type[Exception]) -> str:
    vdses = {v["id"] for v in tower.list_vdses() if v["cluster"]["id"] == cluster_id}
    vlans = [v for v in tower.list_vlans() if v["vds"]["id"] in vdses and v["type"] == "VM"]
    vlan = next((v for v in vlans if v["name"] == "default"), None) or (vlans[0] if vlans else None)
    if vlan is None:
        raise error(f"CloudTower shows no VM network of cluster {cluster_id}")
    return vlan["id"]


def obs_ready(sim, summary: dict, *, plan_tower: Callable, error: type[Exception]) -> None:
    from .cloudtower.errors import GqlError

    plan = sim.plan
    comp = plan.components.get("obs")
    if comp is None or comp.ip is None:
        summary["obs"] = "not applicable (集群管理信息!E4 is blank)"
        return
    ip, tower = plan_tower(sim)
    c = tower.cluster_by_ip(str(summary.get("vip") or plan.vip or ""))
    if c is None or tower.connect_state(c) != "CONNECTED":
        raise error(f"no CONNECTED cluster at {plan.vip} in CloudTower {ip}")
    user = (tower.root or {}).get("id")
    obs_ip = str(comp.ip)
    try:
        pkg = _package(sim, tower, user, error)
        inst = next((i for i in tower.obs_instances.values() if obs_ip == i.vm_spec["ip"]), None)
        if inst is None:
            view = tower.create_obs_instance({
                "name": INSTANCE_NAME, "description": "", "bundle_application_package": {"id": pkg.id},
                "cluster": {"id": c.id}, "host_id": "",
                "vm_spec": {"ip": obs_ip, "subnet_mask": plan.mgmt.netmask, "gateway": str(plan.mgmt.gateway),
                            "vlan_id": _vlan(tower, c.id, error), "vcpu_count": 16,
                            "memory_size_bytes": "34359738368", "storage_size_bytes": "549755813888",
                            "env_vars": {"PRODUCT_VENDOR": "SMARTX"}}})
            inst = tower.obs_instances[view["id"]]
        end = inst.created + inst.install_s
        if sim.clock.now() < end:
            sim.advance(end - sim.clock.now() + 1)
        if tower.obs_status(inst) != "SUCCESS":
            raise error(f"the OBS instance {inst.name} reads {tower.obs_status(inst)}")
        tower.set_obs_ntp(inst.id, ",".join(plan.ntp))
        tower.connect_obs_clusters(inst.id, [{"id": c.id}] + [{"id": x["cluster_id"]} for x in inst.connected
                                                              if x["cluster_id"] != c.id])
        tower.set_obs_system_services(inst.name, [{
            "system_service_id": "CLOUDTOWER", "system_service_name": "CloudTower", "type": "CLOUDTOWER",
            "alerting_rules": [], "instances": [{"url": f"http://{ip}/admin/observability/agent",
                                                 "info": {"service_name": "CloudTower", "vm_name": "cloudtower"}}]}])
    except GqlError as exc:
        raise error(f"OBS: {exc.message}") from None
    sim.settle()
    view = tower.obs_instance_view(inst)
    summary["obs"] = {"id": inst.id, "name": inst.name, "ip": obs_ip, "version": pkg.version, "package_id": pkg.id,
                      "status": view["status"], "vm_status": view["application"]["instances"][0]["vm"]["status"],
                      "ntp": inst.ntp_servers, "connected_clusters": [x["cluster_id"] for x in inst.connected],
                      "system_services": [s["type"] for s in inst.system_services], "ssh": f"o11y@{obs_ip}:10022"}
