"""Request bodies built from the plan and what the cluster reported (never from guesses)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from plan.model import Host, Plan

# The guide (§02, annotated payload): the deploy API takes this encoded value, whose clear text is the
# post-deploy default P@ssw0rd!123. The plan's own passwords are applied over SSH in stage 03.
DEFAULT_ENCODED_HOST_PASSWORD = "c+G6KvJYsKyQyY4U"
SKIP_DISK_FUNCTIONS = {"boot", "system"}


class PayloadError(AssertionError):
    pass


def speed_class(disk: dict) -> int:
    """3 = NVMe, 2 = other SSD, 1 = HDD."""
    if disk.get("drive", "").startswith("nvme") or "nvme" in str(disk.get("model", "")).lower():
        return 3
    return 2 if disk.get("type") == "SSD" else 1


def disk_roles(disks: list[dict], tiered: bool) -> tuple[list[dict], bool]:
    """Assign cache/data per storage architecture. Returns (payload disks, disk_data_with_cache).

    Tiered with two speed classes: the faster class is cache, the rest data, disk_data_with_cache false.
    One class (or not tiered): every disk is data and disk_data_with_cache true. The boot disk is left out.
    """
    usable = [d for d in disks if d.get("function") not in SKIP_DISK_FUNCTIONS]
    classes = {speed_class(d) for d in usable}
    split = tiered and len(classes) >= 2
    fastest = max(classes) if classes else 0
    out = []
    for d in usable:
        role = "cache" if split and speed_class(d) == fastest else "data"
        out.append({"drive": d["drive"], "function": role, "model": d.get("model"), "serial": d.get("serial"),
                    "size": d.get("size"), "type": d.get("type")})
    return out, not split


def l2_host_ips(cluster_scan: list[dict]) -> dict[str, str]:
    """host uuid -> ``host_ip`` as the layer-2 scan (``GET /api/v2/deployment/cluster``) reports it."""
    return {h["host_uuid"]: h["host_ip"] for h in cluster_scan
            if isinstance(h, dict) and h.get("host_uuid") and isinstance(h.get("host_ip"), str) and h["host_ip"]}


def host_ip(scan: dict, host: Host, mgmt_nics: tuple[str, ...], l2: dict[str, str] | None = None) -> str:
    """The payload's ``host_ip``: the layer-2 scan's string verbatim where it reports the host (every captured
    payload in examples/ -- deploy-cluster-payload-converged-network.json, deploy-payloads-by-disk-layout.json --
    carries exactly what scan-cluster-response.json reports, zone included, and that zone is often not the NIC
    the IPv4 sits on); where it does not (LACP bonds, VLAN sub-interfaces: guide line 28, field notes), the
    per-host construction (:func:`mgmt_link_local`)."""
    found = (l2 or {}).get(scan.get("host_uuid") or "")
    return found if found else mgmt_link_local(scan, host, mgmt_nics)


def mgmt_link_local(scan: dict, host: Host, mgmt_nics: tuple[str, ...]) -> str:
    """host_ip in the payload: the management NIC's IPv6 link-local address, '%' and the NIC name (annotated
    payload: "主机管理网卡的IPv6地址%拼接网卡名 ... ipv6地址和网卡来源于主机扫描结果")."""
    ifaces = {i["name"]: i for i in scan.get("ifaces", [])}
    candidates = [i for i in scan.get("ifaces", []) if i.get("ipv4") == str(host.mgmt_ip) and i.get("ipv6")]
    candidates += [ifaces[n] for n in mgmt_nics if n in ifaces and ifaces[n].get("ipv6")]
    if not candidates:
        raise PayloadError(f"主机 {host.mgmt_ip} 的管理网卡 {', '.join(mgmt_nics)} 没有 IPv6 链路本地地址（网卡未连线？）/ "
                           f"host {host.mgmt_ip}: no management NIC has an IPv6 link-local address (link down?)")
    nic = candidates[0]
    return f"{nic['ipv6']}%{nic['name']}"


def _service(plan: Plan, scans: dict[str, dict], attr: str, port: str, netmask: str) -> list[dict]:
    return [{"host_uuid": scans[str(h.mgmt_ip)]["host_uuid"], "service_interface_name": port,
             "service_interface_ip": str(getattr(h, attr)), "netmask": netmask} for h in plan.hosts]


def _vds(plan: Plan, scans: dict[str, dict], name: str, nics: tuple[str, ...], bond: str | None) -> dict:
    vds: dict[str, Any] = {"name": name}
    if len(nics) > 1 and bond:
        vds["bond_mode"] = bond
    vds["hosts_associated"] = [{"host_uuid": scans[str(h.mgmt_ip)]["host_uuid"], "nics_associated": list(nics)}
                               for h in plan.hosts]
    return vds


def deploy_payload(plan: Plan, scans: dict[str, dict], now: datetime | None = None,
                   l2: dict[str, str] | None = None) -> dict[str, Any]:
    """The body of POST /api/v2/deployment/cluster (guide §02), from the plan plus each host's scan.

    ``scans`` maps each host's management IP to its scan (``GET /api/v2/deployment/host`` data); ``l2``: host
    uuid -> ``host_ip`` from the layer-2 scan (:func:`l2_host_ips`), used verbatim where it has the host.
    Bond modes go as the plan names them (``balance-tcp`` for LACP): the captured LACP deploy payload
    (examples/deploy-cluster-payload-converged-network.json, both vdses) sends ``"bond_mode": "balance-tcp"``.
    Both supported network architectures deploy with a management and a storage VDS; in
    存储独立 the business networks later join the management VDS (stage 03).
    """
    if plan.network_arch not in ("separate", "mgmt-business-shared"):
        raise PayloadError(f"不支持的网络架构 {plan.network_arch} / unsupported network architecture")
    missing = [str(h.mgmt_ip) for h in plan.hosts if str(h.mgmt_ip) not in scans]
    if missing:
        raise PayloadError(f"缺少主机扫描结果 / no scan for host(s): {', '.join(missing)}")
    now = now or datetime.now(timezone.utc)
    m, s = plan.mgmt, plan.storage
    hosts = []
    masters = {h.row for h in plan.masters}
    for h in plan.hosts:
        scan = scans[str(h.mgmt_ip)]
        disks, data_with_cache = disk_roles(scan.get("disks", []), plan.tiered)
        hosts.append({
            "host_ip": host_ip(scan, h, m.nics, l2),
            "host_uuid": scan["host_uuid"],
            "hostname": h.hostname,
            "disk_data_with_cache": data_with_cache,
            "host_passwords": [{"user": "root", "password": DEFAULT_ENCODED_HOST_PASSWORD},
                               {"user": "smartx", "password": DEFAULT_ENCODED_HOST_PASSWORD}],
            "tags": [],
            "ifaces": [{"ip": str(h.mgmt_ip), "function": "mgt"}, {"ip": str(h.storage_ip), "function": "storage"}],
            "disks": disks,
            "is_master": h.row in masters,
            "with_faster_ssd_as_cache": True,
        })
    return {
        "platform": "kvm",
        "cluster_name": plan.cluster_name,
        "dns_server": list(plan.dns),
        "vdses": [_vds(plan, scans, m.vds, m.nics, m.bond_mode), _vds(plan, scans, s.vds, s.nics, s.bond_mode)],
        "networks": [
            {"name": "mgt-network", "attached_vds": m.vds, "network_type": "mgt",
             "network_config": {"service": _service(plan, scans, "mgmt_ip", "port-mgt", m.netmask),
                                "route": [{"gateway": str(m.gateway)}]},
             "mode": {"type": "vlan_access", "network_identities": [m.vlan_id or 0]}},
            {"name": "storage-network", "attached_vds": s.vds, "network_type": "storage",
             "network_config": {"service": _service(plan, scans, "storage_ip", "port-storage", s.netmask)},
             "mode": {"type": "vlan_access", "network_identities": [s.vlan_id or 0]}},
        ],
        "hosts": hosts,
        # The guide deploys with internal NTP (external servers can fail the deploy) and sets the plan's
        # NTP servers after deployment (stage 03).
        "ntp": {"mode": "internal", "ntp_server": None,
                "current_time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"},
        "vhost_enabled": plan.vhost_enabled,
        "rdma_enabled": plan.rdma_enabled,
    }


def check_scan(plan: Plan, host: Host, scan: dict) -> list[str]:
    """Problems with one host's scan against the plan (empty when it is fit to deploy)."""
    problems = []
    if not scan.get("host_uuid"):
        problems.append("扫描结果没有 host_uuid / scan has no host_uuid")
    names = {i.get("name") for i in scan.get("ifaces", [])}
    planned = set(plan.mgmt.nics) | set(plan.storage.nics)
    if plan.business and not plan.business_on_mgmt_vds:
        planned |= set(plan.business_nics)
    if plan.backup.used:
        planned |= set(plan.backup.nics)
    for nic in sorted(planned - names):
        problems.append(f"规划的网卡 {nic} 不存在 / planned NIC {nic} not found on the host")
    usable = [d for d in scan.get("disks", []) if d.get("function") not in SKIP_DISK_FUNCTIONS]
    if not usable:
        problems.append("没有可用于存储的磁盘 / no disks available for storage")
    return problems


def disk_roles_of(payload: dict) -> dict[str, list[dict]]:
    """Management IP -> the disks (drive, function, type, size) a deploy payload gives that host."""
    ip_of = {h["host_uuid"]: next(i["ip"] for i in h["ifaces"] if i["function"] == "mgt") for h in payload["hosts"]}
    return {ip_of[h["host_uuid"]]: [{k: d[k] for k in ("drive", "function", "type", "size")} for d in h["disks"]]
            for h in payload["hosts"]}


# LACP has two spellings. Evidence: the plan template's drop-down (K4, K6:K8) offers active-backup / balance-slb /
# balance-tcp (plan-fields.md line 29); the deploy API takes balance-tcp (the captured LACP deploy payload,
# examples/deploy-cluster-payload-converged-network.json lines 10 and 44); the VDS API's section (guide lines
# 700-704) says bond_mode is "规划表中业务交换机的绑定模式" (the plan's value) but its sample shows active-backup only;
# the older tool, which ran on real clusters, sent `lacp` to the VDS API for balance-tcp. The VDS API's word is
# therefore ambiguous: the simulator plays both (profiles vds-lacp-balance-tcp / vds-lacp-lacp) and the suite sends
# the plan's word, and the other one only when the API refuses the bond mode (see FisheyeClient.ensure_vds).
LACP_MODES = ("balance-tcp", "lacp")


def same_bond_mode(got: str | None, planned: str | None) -> bool:
    """A VDS's bond mode as the API reports it equals the plan's (either LACP spelling counts as LACP)."""
    return got == planned or (got in LACP_MODES and planned in LACP_MODES)


def other_lacp_word(bond: str | None) -> str | None:
    """The other LACP spelling (None when ``bond`` is not LACP)."""
    return {"balance-tcp": "lacp", "lacp": "balance-tcp"}.get(bond or "")


def business_vds_body(plan: Plan, host_uuid: Callable[[Any], str | None]) -> dict:
    """The business VDS (guide §03): the plan's name, bond mode and business NICs on every host;
    ``host_uuid(mgmt_ip)``: the host's UUID from its scan."""
    return {"name": plan.business_vds, "bond_mode": plan.business_bond_mode, "hosts_associated": [
        {"host_uuid": host_uuid(h.mgmt_ip), "nics_associated": list(plan.business_nics), "data_ip": str(h.storage_ip)}
        for h in plan.hosts]}


# VLAN ``type`` 3 is a VM network: the guide's CloudTower VM sits on ``default``, type 3, on the management VDS (lines
# 1522-1532; CloudTower lists it as type VM, lines 3900-3915), and business networks are type 3 (line 866). The
# management VDS holds both ``mgt-network`` (the system network the deployment creates) and ``default`` (lines
# 3176-3187); a VM NIC belongs on the VM network, never on the system one.
VM_NETWORK_TYPE = 3
DEFAULT_VM_NETWORK = "default"


def cloudtower_network(plan: Plan):
    """The plan's network the CloudTower VM lives on: the extra management network (虚拟网络 row 5) when the plan has
    it and the CloudTower IP is in its subnet, else the management network (row 4)."""
    ct, extra = plan.cloudtower, plan.extra_mgmt
    return extra if extra.used and ct.ip is not None and ct.ip in extra.subnet else plan.mgmt


def vm_network(vlans: list[dict], name: str | None, vlan_id: int | None, *, fallback: bool = True) -> dict | None:
    """The VM network (type 3) for a planned network among a VDS's ``vlans``: by the plan's name, else by its VLAN
    (``default`` first), else (``fallback``) ``default``. System networks never qualify."""
    vm = [v for v in vlans if v.get("type") == VM_NETWORK_TYPE]
    by_vlan = sorted((v for v in vm if v.get("vlan_id") == (vlan_id or 0)),
                     key=lambda v: v.get("name") != DEFAULT_VM_NETWORK)
    return (next((v for v in vm if name and v.get("name") == name), None)
            or (by_vlan[0] if by_vlan and fallback else None)
            or (next((v for v in vm if v.get("name") == DEFAULT_VM_NETWORK), None) if fallback else None))


def cloudtower_vm_body(name: str, *, ovs: str, vlan_uuid: str, policy_uuid: str, iso_path: str) -> dict:
    """The guide's fixed CloudTower VM shape (§04), with the looked-up names and UUIDs."""
    return {
        "vm_name": name, "description": "CloudTower VM auto created by CXVoyager", "vcpu": 8,
        "memory": 20401094656, "cpu": {"topology": {"sockets": 8, "cores": 1}},
        "nics": [{"ovs": ovs, "model": "virtio", "mirror": False, "vlan_uuid": vlan_uuid, "link": "up"}],
        "disks": [{"type": "disk", "bus": "virtio", "storage_policy_uuid": policy_uuid, "name": "cloudtower-os",
                   "quota_policy": None, "size_in_byte": 429496729600},
                  {"type": "cdrom", "bus": "ide", "path": iso_path, "disabled": False}],
        "ha": True, "nested_virtualization": False, "hasNormalVol": False, "hasSharedVol": False,
        "hasVolume": False, "cpu_model": "cluster_default", "firmware": "BIOS", "diskNamePrefix": "cloudtower",
        "folder_uuid": None, "node_ip": None, "auto_schedule": True, "existDisks": [], "quota_policy": None,
        "status": "running",
    }
