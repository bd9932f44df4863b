"""Presets: fast-forward a freshly seeded simulator to a later point of the deployment.

    from mocks.presets import apply_preset
    sim = Simulator.from_plan(plan, time_scale=1.0).start()
    summary = apply_preset(sim, "cloudtower-ready")

or ``python -m mocks serve --plan PLAN.xlsx --preset cloudtower-ready``.

Presets are cumulative; each applies what the suite's stages would have done, through the same
models (and the same simulated programs over the CloudTower VM's SSH service), advancing simulated
time as the operations need:

* ``cluster-deployed`` (stages 01-02): the plan's cluster deployed (``clients.payloads.deploy_payload``
  from the hosts' scans), fisheye running on every host.
* ``cluster-configured`` (+ stage 03): fisheye root password = the plan's cluster admin password, VIP
  applied (up), DNS and external NTP as planned, IPMI accounts, the business VDS (or the management VDS
  when business networks share it) and the planned business VLANs, CPU compatibility = the recommended
  model, each host's SSH passwords = the plan's (``ssh_user``/``ssh_password``,
  ``admin_user``/``admin_password``). No SVT image is uploaded.
* ``cloudtower-ready`` (+ stage 04): the CloudTower ISO (``cloudtower-v<version>.oe2003.x86_64.iso``, the
  guide's size, chunks accounted as received) in ``GET /api/v2/images``; the CloudTower VM created from
  the guide's payload (management network and bridge, default storage policy, the ISO in the CD-ROM),
  booted, its OS installed (guest agent running), its NIC given the plan's CloudTower IP (ping, SSH
  ``cloudtower``/``HC!r0cks``); ``/etc/resolv.conf`` with the plan's DNS servers; ``preinstall.sh`` and
  the installer run (``/home/cloudtower/nohup.out`` ends with ``Install Operation Center Successfully``);
  ``mocks.cloudtower.service.start(sim, ip, setup={"organization": plan.customer, "root_password":
  "HC!r0cks", "ntp_service_url": <plan NTP, comma-separated>})``.

Every step is skipped when its result is already there, so applying a preset to a world restored from
a snapshot (or twice) is harmless. Returns a summary dict (addresses, uuids); raises ``PresetError``.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("mocks")

PRESETS = ("cluster-deployed", "cluster-configured", "cloudtower-ready")
CLOUDTOWER_ISO_SIZE = 7952123904               # the guide's sample ISO
CLOUDTOWER_ROOT_PASSWORD = "HC!r0cks"          # the guide: fixed CloudTower admin password
VM_MEMORY = 20401094656                        # the guide's fixed payload values
VM_DISK = 429496729600


class PresetError(RuntimeError):
    pass


def apply_preset(sim, name: str) -> dict[str, Any]:
    """Fast-forward ``sim`` (seeded from a plan, started or not) to preset ``name``; see the module doc."""
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if sim.plan is None:
        raise PresetError("the simulator has no plan (use Simulator.from_plan)")
    summary: dict[str, Any] = {"preset": name}
    _deployed(sim, summary)
    if name != "cluster-deployed":
        _configured(sim, summary)
    if name == "cloudtower-ready":
        _cloudtower(sim, summary)
    sim.state.settle()
    log.info("sim preset %s applied: %s", name, summary)
    return summary


# --------------------------------------------------------------------------- helpers
def _ips(plan) -> list[str]:
    return [str(h.mgmt_ip) for h in plan.hosts if h.mgmt_ip is not None]


def _wait_jobs(sim, job_ids: list[str], what: str) -> None:
    fe = sim.fisheye
    sim.advance(fe.job_pending + fe.job_running + 1)
    now = sim.clock.now()
    for j in job_ids:
        state = fe.jobs[j].state(now)
        if state != "done":
            raise PresetError(f"{what}: job {j} ended {state}: {fe.jobs[j].message or fe.jobs[j].fault_msg or ''}")


# --------------------------------------------------------------------------- stages 01-02
def _deployed(sim, summary: dict) -> None:
    plan = sim.plan
    ips = _ips(plan)
    if not ips:
        raise PresetError("the plan has no host with a management IP")
    summary["hosts"] = ips
    if sim.fisheye.active:
        return
    from clients.payloads import deploy_payload

    scans = {ip: sim.deployment.scan_host(ip) for ip in ips}
    op = sim.deployment.deploy(deploy_payload(plan, scans), ips[0])
    sim.advance(op.duration + 1)
    if not sim.fisheye.active:
        raise PresetError(f"the simulated deployment did not succeed: {op.progress(sim.clock.now())}")


# --------------------------------------------------------------------------- stage 03
def _configured(sim, summary: dict) -> None:
    from .fisheye.models import FisheyeError
    from .ssh import ssh_service

    plan, fe = sim.plan, sim.fisheye
    pw = plan.cluster_admin_password
    if fe.root_login is None:
        fe.setup_root({"password": pw, "repeat": pw, "encrypted": False})
    jobs = []
    if plan.vip is not None and fe.settings.get("management_vip") != str(plan.vip):
        jobs.append(fe.set_vip({"iscsi_vip": None, "management_vip": str(plan.vip)})["job_id"])
    if plan.dns and fe.settings.get("dns_servers") != list(plan.dns):
        jobs.append(fe.set_dns({"dns_servers": list(plan.dns)})["job_id"])
    if plan.ntp and fe.settings.get("ntp_servers") != list(plan.ntp):
        jobs.append(fe.set_ntp({"ntp_mode": "external", "ntp_servers": list(plan.ntp)})["job_id"])
    hosts = {ip: sim.deployment.hosts[ip] for ip in _ips(plan)}
    accounts = [{"node_name": h.hostname, "host": str(h.bmc_ip), "user": h.bmc_user,
                 "node_uuid": hosts[str(h.mgmt_ip)].host_uuid, "password": h.bmc_password}
                for h in plan.hosts if h.bmc_ip is not None and str(h.mgmt_ip) in hosts]
    if accounts:
        fe.upsert_ipmi({"accounts": accounts})
    vds = None
    if plan.business:
        if plan.business_on_mgmt_vds:
            vds = fe.vds_by_name(plan.mgmt.vds)
        else:
            vds = fe.vds_by_name(plan.business_vds)
            if vds is None:
                body = {"name": plan.business_vds, "bond_mode": plan.business_bond_mode, "hosts_associated": [
                    {"host_uuid": hosts[str(h.mgmt_ip)].host_uuid, "nics_associated": list(plan.business_nics),
                     "data_ip": str(h.storage_ip)} for h in plan.hosts if str(h.mgmt_ip) in hosts]}
                try:
                    jobs.append(fe.create_vds(body)["job_id"])
                except FisheyeError as exc:
                    raise PresetError(f"creating the business VDS {plan.business_vds}: {exc.msg}") from None
                vds = fe.vds_by_name(plan.business_vds)
    if jobs:
        _wait_jobs(sim, jobs, "stage 03 settings")
    if vds is not None:
        have = {v.name for v in fe.vlans.values() if v.vds_uuid == vds.uuid}
        for net in plan.business:
            if net.name and net.name not in have:
                fe.create_vlan(vds.uuid, {"name": net.name, "vlan_id": net.vlan_id or 0, "vds_uuid": vds.uuid})
        summary["business_vds"] = {"name": vds.name, "uuid": vds.uuid, "ovsbr_name": vds.ovsbr_name}
    models = fe.recommended_cpu_models()
    if models and fe.settings.get("cpu_model") != models[0]:
        fe.set_cpu_compatibility({"cpu_model": models[0]})
    for h in plan.hosts:
        try:
            svc = ssh_service(sim, str(h.mgmt_ip))
        except KeyError:
            continue
        for user, password in ((h.ssh_user, h.ssh_password), (h.admin_user, h.admin_password)):
            if user in svc.users and password and not svc.password_ok(user, password):
                svc.set_password(user, password)
    summary["vip"] = fe.settings.get("management_vip")


# --------------------------------------------------------------------------- stage 04
def _mgmt_network(sim):
    """The management VDS and the network the CloudTower VM's NIC uses: a VM network (type 3) named as
    the plan's management network if there is one, else the deployment's management network."""
    plan, fe = sim.plan, sim.fisheye
    vds = fe.vds_by_name(plan.mgmt.vds) or next((v for v in fe.vdses.values() if v.role == "mgt"), None)
    if vds is None:
        raise PresetError("no management VDS")
    vlans = [v for v in fe.vlans.values() if v.vds_uuid == vds.uuid]
    vlan = (next((v for v in vlans if v.type == 3 and v.name == plan.mgmt.name), None)
            or next((v for v in vlans if v.type == 1), None) or (vlans[0] if vlans else None))
    if vlan is None:
        raise PresetError(f"no network on the management VDS {vds.name}")
    return vds, vlan


def _cloudtower(sim, summary: dict) -> None:
    from .cloudtower_install import INSTALLER, PREINSTALL
    from .fisheye.models import FisheyeError
    from .ssh import ssh_service
    from .vms import CLOUDTOWER_SSH_USER

    plan, fe, vms = sim.plan, sim.fisheye, sim.vms
    ct = plan.cloudtower
    if ct.ip is None:
        raise PresetError("the plan has no CloudTower IP")
    ip = str(ct.ip)
    # the ISO
    iso_name = f"cloudtower-v{ct.version or '4.7.1'}.oe2003.x86_64.iso"
    up = fe.upload_by_name(iso_name, "ISO")
    if up is None or up.status != "ready":
        vol = fe.create_volume(iso_name, str(CLOUDTOWER_ISO_SIZE), kind="ISO", description="cloudtower os image",
                               device="nfs")
        up = fe.uploads[vol["image_uuid"]]
        with fe.lock:
            up.received = [1] * up.chunks
            up.bytes_received = up.size
            up.status = "ready"
    summary["cloudtower_iso"] = {"name": up.name, "uuid": up.image_uuid, "path": up.image_path}
    # the VM
    vm = vms.by_name(ct.vm_name)
    if vm is None:
        vds, vlan = _mgmt_network(sim)
        body = {"vm_name": ct.vm_name, "description": "CloudTower VM auto created by CXVoyager", "vcpu": 8,
                "memory": VM_MEMORY, "cpu": {"topology": {"sockets": 8, "cores": 1}},
                "nics": [{"ovs": vds.ovsbr_name, "model": "virtio", "mirror": False, "vlan_uuid": vlan.uuid,
                          "link": "up"}],
                "disks": [{"type": "disk", "bus": "virtio", "storage_policy_uuid": vms.default_policy_uuid(),
                           "name": "cloudtower-os", "quota_policy": None, "size_in_byte": VM_DISK},
                          {"type": "cdrom", "bus": "ide", "path": up.image_path, "disabled": False}],
                "ha": True, "nested_virtualization": False, "hasNormalVol": False, "hasSharedVol": False,
                "hasVolume": False, "cpu_model": "cluster_default", "firmware": "BIOS",
                "diskNamePrefix": "cloudtower", "folder_uuid": None, "node_ip": None, "auto_schedule": True,
                "existDisks": [], "quota_policy": None, "status": "running"}
        try:
            job = vms.create_vm(body)["job_id"]
        except FisheyeError as exc:
            raise PresetError(f"creating the CloudTower VM: {exc.msg}") from None
        _wait_jobs(sim, [job], "create the CloudTower VM")
        vm = vms.by_name(ct.vm_name)
    if not vm.ga_running:
        sim.advance(max(0.0, vm.booted_at + vm.install_s - sim.clock.now()) + 1)
        if not vm.ga_running:
            raise PresetError(f"the CloudTower VM's guest agent did not come up (stalled: "
                              f"{vm.ga_stalled or vms.stall_guest_agent})")
    if ip not in vm.ips:
        vds, vlan = _mgmt_network(sim)
        nic = vm.nics[0]
        body = {"nics": [{"vlan_uuid": nic["vlan_uuid"], "ovs": nic["ovs"], "model": "virtio",
                          "mac_address": nic["mac_address"], "mirror": False, "gateway": str(plan.mgmt.gateway),
                          "subnet_mask": plan.mgmt.netmask, "ip_address": ip, "link": "up"}]}
        try:
            job = vms.update_vm(vm.uuid, body)["job_id"]
        except FisheyeError as exc:
            raise PresetError(f"configuring the CloudTower VM's address: {exc.msg}") from None
        _wait_jobs(sim, [job], "configure the CloudTower VM's address")
    summary["cloudtower_vm"] = {"name": vm.name, "uuid": vm.uuid, "ip": ip}
    # the installer, as the guide runs it (resolv.conf first)
    inst = sim.install
    if inst.state_of(ip) != "installed":
        svc = ssh_service(sim, ip)
        svc.fs.write("/etc/resolv.conf", "".join(f"nameserver {d}\n" for d in plan.dns))
        inst.service_setup[ip] = {"organization": plan.customer, "root_password": CLOUDTOWER_ROOT_PASSWORD,
                                  "ntp_service_url": ",".join(plan.ntp)}
        log_path = f"{svc.home(CLOUDTOWER_SSH_USER)}/nohup.out"
        if not svc.fs.is_file(log_path):
            svc.fs.write(log_path, b"", owner="root", mode=0o600)
        status, out, err = svc.run_command(f"sh {PREINSTALL} && nohup {INSTALLER} deploy >> {log_path} 2>&1 &",
                                           user="root")
        if status != 0:
            raise PresetError(f"running the CloudTower installer failed (exit {status}): {(out + err).decode()}")
        sim.advance(inst.duration_s + 1)
        if inst.state_of(ip) != "installed":
            raise PresetError(f"the CloudTower install on {ip} ended {inst.state_of(ip)}: "
                              f"{svc.fs.text(log_path)[-500:]}")
    summary["cloudtower"] = {"ip": ip, "https": f"https://{ip}", "organization": plan.customer,
                             "service_started": ip in inst.services_started}


# --------------------------------------------------------------------------- printing (python -m mocks serve)
def format_access(sim) -> str:
    """How to reach each simulated address from outside: URL (send ``Host: <address>``), SSH, DNS/NTP."""
    from .core import LOOPBACK
    from .server import _sort_ip

    lines = [f"{'ADDRESS':<18} {'PORT':<9} {'STATE':<5} HOW TO REACH IT"]
    for e in sorted(sim.hub.endpoints(), key=lambda e: (_sort_ip(e.address), e.proto, e.port)):
        port = f"{e.port}/{e.proto}"
        state = "up" if e.up else "down"
        if e.proto == "udp":
            how = (f"dig @{LOOPBACK} -p {e.local_port} <name>" if e.port == 53
                   else f"ntpdate -q -p 1 {LOOPBACK}:{e.local_port}  (udp {LOOPBACK}:{e.local_port})")
        elif e.scheme in ("http", "https"):
            host = e.address if e.port in (80, 443) else f"{e.address}:{e.port}"
            how = f"{e.scheme}://{LOOPBACK}:{e.local_port}/  Host: {host}"
        else:
            how = f"ssh -p {e.local_port} <user>@{LOOPBACK}   (simulates {e.address}:{e.port})"
        lines.append(f"{e.address:<18} {port:<9} {state:<5} {how}")
    return "\n".join(lines)
