"""Presets: fast-forward a freshly seeded simulator to a later point of the deployment.

    from mocks.presets import apply_preset
    sim = Simulator.from_plan(plan, time_scale=1.0).start()
    summary = apply_preset(sim, "cloudtower-ready")

or ``python -m mocks serve --plan PLAN.xlsx --preset cloudtower-ready``.

Presets are cumulative; each applies what the suite's stages would have done, through the simulator's
own models with typed arguments (and the same simulated programs over the CloudTower VM's SSH
service), advancing simulated time as the operations need:

* ``cluster-deployed`` (stages 01-02): the plan's cluster deployed, fisheye running on every host. The
  simulator builds the deployment itself (:func:`deployment_operation`: the plan's hostnames, IPs, VDSes
  and networks on the seeded hosts' own hardware; the storage role of each disk from the hardware's
  disk layout and the plan's storage architecture) and lets the deployment model apply it; the
  product's payload builder is never used, so a bug in it cannot be mirrored here.
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
* ``cluster-attached`` (+ stage 05): in the CloudTower model, the datacenter ``plan.datacenter`` (created when
  missing) in the organization ``plan.customer`` (cloudtower-ready's), the cluster (its VIP, root, the plan's cluster admin
  password) connected to it, simulated time advanced until it reads CONNECTED with its hosts synced and its
  connect task SUCCESSED. A cluster already known at the VIP is not connected again: one in another datacenter
  is moved (``add-clusters-to-datacenter``), one that failed (CONNECTED_ERROR) is connected anew. The summary's
  ``cloudtower_cluster`` names its ``id``, ``local_id``, ``settings_id``, datacenter and organization.
* ``cloudtower-configured`` (+ stage 06), through the CloudTower model's own methods: default storage policy
  ``REPLICA_2_THIN_PROVISION``; the cluster's per-cluster ``zbs_cluster_data_space_use_rate`` rule customized to
  NOTICE ⌊((n−1)/n − 5 %)·100⌋ for its n hosts, CRITICAL 90 (the global rule keeps 80/90, as the guide does); the
  dashboard script's views Cluster / Host / VM with 3 / 7 / 5 graphs; the plan's rack topology (主机规划 P/Q: racks
  of height 42, 2U bricks at the planned U, hosts sharing a rack and U in one chassis brick), none -> the default
  placement stays. Every part is find-or-update (twice: nothing duplicated). Summary key ``cloudtower_config``.
* ``components-ready`` (+ stage 07): the backup package registered, the backup VLAN (on the planned backup VDS, else
  the storage VDS), the backup service RUNNING with the cluster attached (:mod:`mocks.presets_backup`; summary key
  ``backup``), and OBS (``_obs_ready``, summary key ``obs``). Find-or-create.

  ``_obs_ready(sim, summary)`` (stage 07a, :mod:`mocks.presets_obs`, through the CloudTower model): the
  Observability package (the guide's ``Observability-X86_64-v1.4.2-release.20250926-24.tar.gz``, a real stand-in
  .tar.gz through the upload accounting; both package tasks SUCCESSED), the instance ``obs`` at 集群管理信息!E4
  (management mask / gateway, the cluster's VM network ``default``) SUCCESS with its VM RUNNING and SSH
  ``o11y@<ip>:10022``, NTP = the plan's servers, the plan's cluster connected, the CloudTower system service (no
  alerting rules). Summary ``obs``: ``id, name, ip, version, package_id, status, vm_status, ntp,
  connected_clusters, system_services, ssh``; a plan without an OBS IP: ``"not applicable"``.

Every step is skipped when its result is already there, so applying a preset to a world restored from
a snapshot (or twice) is harmless. Returns a summary dict (addresses, uuids); raises ``PresetError``.
"""
from __future__ import annotations

import logging
from typing import Any

from .deployment.models import DeployOperation, SimHost

log = logging.getLogger("mocks")

PRESETS = ("cluster-deployed", "cluster-configured", "cloudtower-ready", "cluster-attached", "cloudtower-configured",
           "components-ready")
CLOUDTOWER_ISO_SIZE = 7952123904               # the guide's sample ISO
CLOUDTOWER_ROOT_PASSWORD = "HC!r0cks"          # the guide: fixed CloudTower admin password
VM_MEMORY = 20401094656                        # the guide's fixed payload values
VM_DISK = 429496729600
PRESET_OPERATION = "deploy-preset"             # id of the deployment a preset applies


class PresetError(RuntimeError):
    pass


def apply_preset(sim, name: str) -> dict[str, Any]:
    """Fast-forward ``sim`` (seeded from a plan, started or not) to preset ``name``; see the module doc."""
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if sim.plan is None:
        raise PresetError("the simulator has no plan (use Simulator.from_plan)")
    summary: dict[str, Any] = {"preset": name}
    for step in _STEPS[: PRESETS.index(name) + 1]:          # cumulative: PRESETS and _STEPS pair up in order
        step(sim, summary)
    sim.settle()
    log.info("sim preset %s applied: %s", name, summary)
    return summary


# --------------------------------------------------------------------------- helpers
def _ips(plan) -> list[str]:
    return [str(h.mgmt_ip) for h in plan.hosts if h.mgmt_ip is not None]


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def _wait_jobs(sim, job_ids: list[str], what: str) -> None:
    fe = sim.fisheye
    sim.advance(max([fe.job_pending + fe.job_running] + [fe.jobs[j].pending_s + fe.jobs[j].running_s for j in job_ids])
                + 1)
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
    dep = sim.deployment
    dep.settle()
    busy = [ip for ip in ips if ip in dep.hosts and dep.hosts[ip].deployed] or dep.running()
    if busy:
        raise PresetError(f"the hosts are being or have been deployed outside the preset ({busy})")
    op = deployment_operation(plan, dep.hosts, started=sim.clock.now(), stages=dep.stages)
    with dep.lock:
        dep.operations.append(op)
    sim.advance(op.duration + 1)                   # the deployment model applies it; fisheye comes up
    if not sim.fisheye.active:
        raise PresetError(f"the simulated deployment did not succeed: {op.progress(sim.clock.now())}")


def deployment_operation(plan, hosts: dict[str, SimHost], *, started: float,
                         stages: tuple[tuple[str, float], ...]) -> DeployOperation:
    """The deployment of the plan's cluster on the seeded ``hosts`` (management IP -> host), as the
    deployment model records an accepted one: per-host effects (what success changes on each host)
    and the accepted request as fisheye reads it (VDSes, networks, DNS, NTP).

    Who decides what: the plan names the cluster, hosts, addresses, VDSes and NICs; the hosts'
    hardware (UUIDs, NICs, disks) is the simulator's own (seeded from its disk layouts); the storage
    role of a disk is its layout's (the NVMe tier caches) on a tiered (hybrid) plan, else every disk
    holds data; the first five hosts (three when fewer than five) are masters."""
    planned = [(row, hosts[str(row.mgmt_ip)]) for row in plan.hosts
               if row.mgmt_ip is not None and str(row.mgmt_ip) in hosts]
    if len(planned) < 3:
        raise PresetError(f"a cluster needs at least 3 hosts; the plan has {len(planned)} simulated")
    masters = 5 if len(planned) >= 5 else 3
    m, st = plan.mgmt, plan.storage
    vdses = {m.vds: (tuple(m.nics), m.bond_mode)}
    vdses.setdefault(st.vds, (tuple(st.nics), st.bond_mode))
    effects = {host.host_uuid: {
        "hostname": row.hostname, "is_master": i < masters, "storage_ip": _s(row.storage_ip),
        "disks": _storage_roles(host, plan.tiered), "vhost": plan.vhost_enabled,
        "vdses": [(name, list(nics)) for name, (nics, _bond) in vdses.items()],
    } for i, (row, host) in enumerate(planned)}
    record = {
        "platform": "kvm", "cluster_name": plan.cluster_name, "dns_server": list(plan.dns),
        "vdses": [_vds_record(name, nics, bond, planned) for name, (nics, bond) in vdses.items()],
        "networks": [
            _network_record("mgt-network", "mgt", m, [(host.host_uuid, "port-mgt", row.mgmt_ip)
                                                      for row, host in planned], route=True),
            _network_record("storage-network", "storage", st, [(host.host_uuid, "port-storage", row.storage_ip)
                                                               for row, host in planned])],
        "ntp": {"mode": "internal", "ntp_server": None},     # the guide: NTP servers are set after deployment
        "vhost_enabled": plan.vhost_enabled, "rdma_enabled": plan.rdma_enabled,
    }
    return DeployOperation(id=PRESET_OPERATION, started=started, receiving_host=planned[0][1].mgmt_ip,
                           host_uuids=tuple(effects), host_ips={host.host_uuid: host.mgmt_ip for _r, host in planned},
                           cluster_name=plan.cluster_name, effects=effects, payload=record, stages=tuple(stages))


def _storage_roles(host: SimHost, tiered: bool) -> dict[str, str]:
    """drive -> cache | data for every disk but the boot disk."""
    return {d.drive: (d.function if tiered and d.function == "cache" else "data")
            for d in host.disks if d.function not in ("boot", "system")}


def _vds_record(name: str, nics: tuple[str, ...], bond: str | None, planned: list) -> dict:
    vds: dict[str, Any] = {"name": name}
    if len(nics) > 1 and bond:                     # one NIC: no bond
        vds["bond_mode"] = bond
    vds["hosts_associated"] = [{"host_uuid": host.host_uuid, "nics_associated": list(nics)} for _r, host in planned]
    return vds


def _network_record(name: str, kind: str, net, service: list[tuple], *, route: bool = False) -> dict:
    cfg: dict[str, Any] = {"service": [{"host_uuid": u, "service_interface_name": port,
                                        "service_interface_ip": _s(ip), "netmask": net.netmask}
                                       for u, port, ip in service]}
    if route:
        cfg["route"] = [{"gateway": _s(net.gateway)}]
    return {"name": name, "attached_vds": net.vds, "network_type": kind, "network_config": cfg,
            "mode": {"type": "vlan_access", "network_identities": [net.vlan_id or 0]}}


# --------------------------------------------------------------------------- stage 03
def _configured(sim, summary: dict) -> None:
    plan, fe = sim.plan, sim.fisheye
    if fe.root_login is None:
        fe.setup_root(plan.cluster_admin_password, plan.cluster_admin_password)
    hosts = {ip: sim.deployment.hosts[ip] for ip in _ips(plan)}
    jobs = _settings_jobs(sim)
    _ipmi_accounts(sim, hosts)
    vds, vds_job = _business_vds(sim, hosts)
    jobs += vds_job
    if jobs:
        _wait_jobs(sim, jobs, "stage 03 settings")
    if vds is not None:
        vds = fe.vds_by_name(vds)
        _business_vlans(sim, vds)
        summary["business_vds"] = {"name": vds.name, "uuid": vds.uuid, "ovsbr_name": vds.ovsbr_name}
    models = fe.recommended_cpu_models()
    if models and fe.settings.get("cpu_model") != models[0]:
        fe.set_cpu_compatibility(models[0])
    _host_passwords(sim)
    summary["vip"] = fe.settings.get("management_vip")


def _settings_jobs(sim) -> list[str]:
    """VIP, DNS and external NTP as planned; the ids of the jobs started."""
    plan, fe = sim.plan, sim.fisheye
    jobs = []
    if plan.vip is not None and fe.settings.get("management_vip") != str(plan.vip):
        answer = fe.set_vip(str(plan.vip), None)        # profile vip-no-job answers {}: its job is internal
        jobs.append(answer.get("job_id") or max((j for j in fe.jobs.values() if j.description == "SETTINGS_UPDATE_VIP"),
                                                key=lambda j: j.created).job_id)
    if plan.dns and fe.settings.get("dns_servers") != list(plan.dns):
        jobs.append(fe.set_dns(list(plan.dns))["job_id"])
    if plan.ntp and fe.settings.get("ntp_servers") != list(plan.ntp):
        jobs.append(fe.set_ntp("external", list(plan.ntp))["job_id"])
    return jobs


def _ipmi_accounts(sim, hosts: dict[str, SimHost]) -> None:
    from .fisheye.models import IpmiAccount

    accounts = [IpmiAccount(node_uuid=hosts[str(h.mgmt_ip)].host_uuid, host=str(h.bmc_ip), user=h.bmc_user,
                            password=h.bmc_password, node_name=h.hostname)
                for h in sim.plan.hosts if h.bmc_ip is not None and str(h.mgmt_ip) in hosts]
    if accounts:
        sim.fisheye.upsert_ipmi(accounts)


def _business_vds(sim, hosts: dict[str, SimHost]) -> tuple[str | None, list[str]]:
    """The VDS of the business networks (created when missing): its name and the creation job, if any."""
    from .fisheye.models import FisheyeError, VdsMember

    plan, fe = sim.plan, sim.fisheye
    if not plan.business:
        return None, []
    name = plan.mgmt.vds if plan.business_on_mgmt_vds else plan.business_vds
    if fe.vds_by_name(name) is not None:
        return name, []
    if plan.business_on_mgmt_vds:               # the management VDS is the deployment's: never created here
        return None, []
    members = [VdsMember(hosts[str(h.mgmt_ip)].host_uuid, list(plan.business_nics), str(h.storage_ip))
               for h in plan.hosts if str(h.mgmt_ip) in hosts]
    try:
        return name, [fe.create_vds(name, plan.business_bond_mode, members)["job_id"]]
    except FisheyeError as exc:
        raise PresetError(f"creating the business VDS {name}: {exc.msg}") from None


def _business_vlans(sim, vds) -> None:
    fe = sim.fisheye
    have = {v.name for v in fe.vlans.values() if v.vds_uuid == vds.uuid}
    for net in sim.plan.business:
        if net.name and net.name not in have:
            fe.create_vlan(vds.uuid, net.name, net.vlan_id or 0, vds.uuid)


def _host_passwords(sim) -> None:
    """Each host's ``ssh_user`` / ``admin_user`` password = the plan's (as stage 03 sets them over SSH)."""
    from .ssh import ssh_service

    for h in sim.plan.hosts:
        try:
            svc = ssh_service(sim, str(h.mgmt_ip))
        except KeyError:
            continue
        for user, password in ((h.ssh_user, h.ssh_password), (h.admin_user, h.admin_password)):
            if user in svc.users and password and not svc.password_ok(user, password):
                svc.set_password(user, password)


# --------------------------------------------------------------------------- stage 04
def _mgmt_network(sim):
    """The management VDS and the network the CloudTower VM's NIC uses: a VM network (type 3) named as
    the plan's management network, else one on its VLAN, else ``default`` (a VM NIC may not sit on the system
    network ``mgt-network``, issue 12 item 2)."""
    plan, fe = sim.plan, sim.fisheye
    vds = fe.vds_by_name(plan.mgmt.vds) or next((v for v in fe.vdses.values() if v.role == "mgt"), None)
    if vds is None:
        raise PresetError("no management VDS")
    vlans = [v for v in fe.vlans.values() if v.vds_uuid == vds.uuid]
    vm_nets = [v for v in vlans if v.type == 3]
    vlan = (next((v for v in vm_nets if v.name == plan.mgmt.name), None)
            or next((v for v in vm_nets if v.vlan_id == (plan.mgmt.vlan_id or 0)), None)
            or next((v for v in vm_nets if v.name == "default"), None))
    if vlan is None:
        raise PresetError(f"no network on the management VDS {vds.name}")
    return vds, vlan


def _cloudtower(sim, summary: dict) -> None:
    ct = sim.plan.cloudtower
    if ct.ip is None:
        raise PresetError("the plan has no CloudTower IP")
    ip = str(ct.ip)
    up = _cloudtower_iso(sim, ct)
    summary["cloudtower_iso"] = {"name": up.name, "uuid": up.image_uuid, "path": up.image_path}
    vm = _cloudtower_vm(sim, ct, up)
    summary["cloudtower_vm"] = {"name": vm.name, "uuid": vm.uuid, "ip": ip}
    _run_installer(sim, ip)
    summary["cloudtower"] = {"ip": ip, "https": f"https://{ip}", "organization": sim.plan.customer,
                             "service_started": ip in sim.install.services_started}


def _cloudtower_iso(sim, ct):
    """The CloudTower ISO, listed as uploaded (its chunks accounted as received)."""
    fe = sim.fisheye
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
    return up


def _cloudtower_vm(sim, ct, iso):
    """The CloudTower VM (the guide's payload), booted, guest agent up, with the plan's address."""
    from .fisheye.models import FisheyeError
    from .vms.schema import DiskSpec, NicSpec, VmSpec

    vms = sim.vms
    vm = vms.by_name(ct.vm_name)
    if vm is None:
        vds, vlan = _mgmt_network(sim)
        spec = VmSpec(name=ct.vm_name, description="CloudTower VM auto created by CXVoyager", vcpu=8, memory=VM_MEMORY,
                      sockets=8, cores=1, status="running",
                      nics=[NicSpec(vlan_uuid=vlan.uuid, ovs=vds.ovsbr_name)],
                      disks=[DiskSpec("disk", "virtio", name="cloudtower-os", size=VM_DISK,
                                      storage_policy_uuid=vms.default_policy_uuid()),
                             DiskSpec("cdrom", "ide", path=iso.image_path)])
        try:
            job = vms.create_vm(spec)["job_id"]
        except FisheyeError as exc:
            raise PresetError(f"creating the CloudTower VM: {exc.msg}") from None
        _wait_jobs(sim, [job], "create the CloudTower VM")
        vm = vms.by_name(ct.vm_name)
    if not vm.ga_running:
        sim.advance(max(0.0, vm.booted_at + vm.install_s - sim.clock.now()) + 1)
        if not vm.ga_running:
            raise PresetError(f"the CloudTower VM's guest agent did not come up (stalled: "
                              f"{vm.ga_stalled or vms.stall_guest_agent})")
    if str(ct.ip) not in vm.ips:
        _address_vm(sim, vm, str(ct.ip))
    return vm


def _address_vm(sim, vm, ip: str) -> None:
    from .fisheye.models import FisheyeError
    from .vms.schema import NicUpdate, VmUpdate

    plan, nic = sim.plan, vm.nics[0]
    update = VmUpdate([NicUpdate("nics[0]", nic["mac_address"], vlan_uuid=nic["vlan_uuid"], ovs=nic["ovs"],
                                 model="virtio", mirror=False, link="up", address=True, ip_address=ip,
                                 subnet_mask=plan.mgmt.netmask, gateway=str(plan.mgmt.gateway))])
    try:
        job = sim.vms.update_vm(vm.uuid, update)["job_id"]
    except FisheyeError as exc:
        raise PresetError(f"configuring the CloudTower VM's address: {exc.msg}") from None
    _wait_jobs(sim, [job], "configure the CloudTower VM's address")


def _run_installer(sim, ip: str) -> None:
    """The installer, as the guide runs it (``/etc/resolv.conf`` first), to its end."""
    from .cloudtower_install import INSTALLER, PREINSTALL
    from .ssh import ssh_service
    from .vms import CLOUDTOWER_SSH_USER

    plan, inst = sim.plan, sim.install
    if inst.state_of(ip) == "installed":
        return
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


# --------------------------------------------------------------------------- stage 05
def _plan_tower(sim):
    """The plan's CloudTower address and its model in the simulator's world (none there: :class:`PresetError`)."""
    ip = str(sim.plan.cloudtower.ip)
    try:
        return ip, sim.state.cloudtower.tower(ip)
    except KeyError:
        raise PresetError(f"no CloudTower runs at {ip}") from None


def _attached(sim, summary: dict) -> None:
    """The datacenter and the connected cluster, through the CloudTower model's own methods."""
    from .cloudtower.models import ClusterSpec, DatacenterSpec, RestError

    plan = sim.plan
    ip, tower = _plan_tower(sim)
    user = (tower.root or {}).get("id")
    org = next((o for o in tower.organizations.values() if o.name == plan.customer), None)
    if org is None:
        raise PresetError(f"CloudTower {ip} has no organization named {plan.customer!r}")
    vip = str(summary.get("vip") or plan.vip or "")
    if not vip:
        raise PresetError("the plan has no cluster VIP")
    try:
        dc = next((d for d in tower.datacenters.values()
                   if d.name == plan.datacenter and d.organization_id == org.id), None)
        if dc is None:
            (made,) = tower.create_datacenters([DatacenterSpec(org.id, plan.datacenter)], user)
            dc = tower.datacenters[made["data"]["id"]]
        c = tower.cluster_by_ip(vip)
        if c is None or tower.connect_state(c) == "CONNECTED_ERROR":
            tower.connect_clusters([ClusterSpec(vip, "root", plan.cluster_admin_password, dc.id)], user)
            c = tower.cluster_by_ip(vip)
        elif c.datacenter_ids != [dc.id]:
            tower.add_clusters_to_datacenter([(dc.id, {"id": c.id})], user)
    except RestError as exc:
        raise PresetError(f"attaching the cluster {vip} to CloudTower {ip}: {exc.message}") from None
    _wait_attached(sim, tower, c)
    summary["cloudtower_cluster"] = {
        "id": c.id, "local_id": c.local_id, "settings_id": c.settings_id, "name": c.name, "ip": c.ip,
        "connect_state": tower.connect_state(c), "task_id": c.task_id,
        "datacenter": {"id": dc.id, "name": dc.name}, "organization": {"id": org.id, "name": org.name}}


def _wait_attached(sim, tower, c) -> None:
    """Advance simulated time until the connect task has ended and the hosts are synced."""
    task = tower.tasks.get(c.task_id)
    if task is None or task.fault == "stuck":
        raise PresetError(f"the connect of {c.ip} cannot end (task {c.task_id}: stuck)")
    end = task.created + task.pending_s + task.running_s + float(c.sync_lag_s or 0.0)
    sim.advance(max(0.0, end - sim.clock.now()) + 1)
    state = tower.connect_state(c)
    status = task.status(sim.clock.now())
    if state != "CONNECTED" or status != "SUCCESSED":
        view = tower.cluster_view(c)
        raise PresetError(f"the cluster {c.ip} reads {state} (task {status}, disconnected_reason "
                          f"{view.get('disconnected_reason')}: {task.fault_msg or ''})")


# --------------------------------------------------------------------------- stage 06
CONFIGURED_STORAGE_POLICY = "REPLICA_2_THIN_PROVISION"      # the guide's §06 default storage policy
CAPACITY_ALERT_RULE = "zbs_cluster_data_space_use_rate"
CAPACITY_ALERT_CRITICAL = 90


def capacity_notice(hosts: int) -> int:
    """The guide's NOTICE threshold for ``hosts`` hosts: floor(((n - 1) / n - 5 %) * 100) -- 3 -> 61, 4 -> 70."""
    import math
    from fractions import Fraction

    return math.floor((Fraction(hosts - 1, hosts) - Fraction(1, 20)) * 100)


def _cloudtower_configured(sim, summary: dict) -> None:
    """Stage 06 through the CloudTower model's own methods: the default storage policy, the capacity alert of the
    cluster's per-cluster rule (customized; CRITICAL kept), the dashboard script's three views and their graphs,
    the plan's rack topology (主机规划 P/Q; none: the default placement stays). Each part is find-or-update."""
    from .errors import SimError

    plan = sim.plan
    ip, tower = _plan_tower(sim)
    c = tower.cluster_by_ip(str(summary.get("vip") or plan.vip or ""))
    if c is None or tower.connect_state(c) != "CONNECTED":
        raise PresetError(f"no CONNECTED cluster at {plan.vip} in CloudTower {ip}")
    hosts = sum(1 for h in tower.list_hosts() if h["cluster"]["id"] == c.id)
    if not hosts:
        raise PresetError(f"CloudTower {ip} shows no hosts of cluster {c.name} yet (host_num 0)")
    settings = tower.set_default_storage_policy(c.id, CONFIGURED_STORAGE_POLICY)
    notice = capacity_notice(hosts)
    tower.set_cluster_alert(c.id, CAPACITY_ALERT_RULE, [{"severity": "CRITICAL", "value": CAPACITY_ALERT_CRITICAL},
                                                         {"severity": "NOTICE", "value": notice}])
    dashboards = tower.ensure_dashboards(c.id)
    placements = [(h.hostname, h.rack, h.rack_u) for h in plan.hosts if h.hostname and h.rack and h.rack_u]
    try:
        racks = tower.apply_topology(c.id, placements) if placements else []
    except (ValueError, SimError) as exc:
        raise PresetError(f"rack topology: {getattr(exc, 'message', exc)}") from None
    summary["cloudtower_config"] = {
        "default_storage_policy": settings["default_storage_policy"],
        "capacity_alert": {"rule": CAPACITY_ALERT_RULE, "hosts": hosts, "NOTICE": notice,
                           "CRITICAL": CAPACITY_ALERT_CRITICAL},
        "dashboards": dashboards, "racks": racks or "default placement (the plan has no rack data)"}


def _obs_ready(sim, summary: dict) -> None:
    """Stage 07a (OBS) through the CloudTower model (:mod:`mocks.presets_obs`): the Observability package, the
    instance ``obs`` at 集群管理信息!E4 SUCCESS with its VM RUNNING (SSH o11y@:10022), NTP = the plan's, the cluster
    connected, the CloudTower system service. Summary key ``obs``; no OBS IP in the plan: "not applicable"."""
    from .presets_obs import obs_ready

    obs_ready(sim, summary, plan_tower=_plan_tower, error=PresetError)


def _components_ready(sim, summary: dict) -> None:
    """Stage 07 (``components-ready``): the backup service (:mod:`mocks.presets_backup`) and OBS (``_obs_ready``,
    when this module has it); each independent of the other, find-or-create."""
    from .presets_backup import backup_ready

    backup_ready(sim, summary, plan_tower=_plan_tower, wait_jobs=_wait_jobs, mgmt_network=_mgmt_network,
                 error=PresetError)
    obs = globals().get("_obs_ready")
    if obs is not None:
        obs(sim, summary)


_STEPS = (_deployed, _configured, _cloudtower, _attached, _cloudtower_configured,   # one per PRESETS entry, in order
          _components_ready)


# --------------------------------------------------------------------------- printing (python -m mocks serve)
def format_access(sim) -> str:
    """How to reach each simulated address from outside: the simulator's one address table
    (:func:`mocks.server.format_address_map`)."""
    from .server import format_address_map

    return format_address_map(sim)
