"""A VM of the simulated cluster: its record (:class:`Vm`) and how the cluster API shows it.

State only, no HTTP and no validation: :mod:`.schema` checks request bodies, :mod:`.models` keeps the
VMs and applies their jobs. The shapes here are the guide's samples (``GET /api/v2/vms/{uuid}``, the
``VM_CREATE`` job resource, the guest agent's ``guest_info``).
"""
from __future__ import annotations

import copy
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

DEFAULT_OS_INSTALL_S = 1200.0          # boot -> guest agent running: the unattended install (~20 min)
GA_RUNNING = "Running"                 # the guide's ga_state once VM tools run
GA_NOT_RUNNING = "Unknown"             # the simulator's value before that (no agent in the guest yet)
OS_VERSION = "openEuler 20.03 (LTS-SP3)"
KERNEL = "4.19.90-2307.3.0.oe1.smartx.37.x86_64"
GA_VERSION = 4000000
CLOUDTOWER_SSH_USER = "cloudtower"     # the guide: fixed account and password of the CloudTower VM
CLOUDTOWER_SSH_DEFAULT = "HC!r0cks"


def netmask_prefix(v: Any) -> int | None:
    """Prefix length of a dotted netmask (``255.255.255.0`` -> 24); None when not a netmask."""
    if not isinstance(v, str):
        return None
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{v.strip()}").prefixlen if "." in v else None
    except ValueError:
        return None


def vm_mac(vm_uuid: str, index: int) -> str:
    """A stable KVM-style MAC (``52:54:00:xx:xx:xx``) for NIC ``index`` of a VM."""
    b = uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://vm/{vm_uuid}/nic/{index}").bytes
    return "52:54:00:" + ":".join(f"{x:02x}" for x in b[:3])


def guest_flavour(image_name: str | None) -> str:
    """What a VM booted from that image becomes: ``cloudtower`` (unattended openEuler install, VM
    tools, SSH user ``cloudtower``), ``generic`` (boots the ISO; no unattended install, no agent) or
    ``none`` (no OS medium)."""
    if not image_name:
        return "none"
    return "cloudtower" if "cloudtower" in image_name.lower() else "generic"


# --------------------------------------------------------------------------- the VM
@dataclass
class Vm:
    uuid: str
    name: str
    description: str
    vcpu: int
    memory: int
    sockets: int
    cores: int
    nics: list[dict]           # {interface_id, mac_address, ovs, vlan_uuid, model, mirror, link, ip_address, subnet_mask, gateway}
    disks: list[dict]          # disk: {type, bus, name, size, storage_policy_uuid, path, volume_uuid, serial}
    #                            cdrom: {type, bus, path, disabled, image_uuid, image_name}
    ha: bool
    nested_virtualization: bool
    cpu_model: str
    firmware: str
    want_status: str           # running | stopped (the payload's status)
    node_ip: str | None
    bios_uuid: str
    created: float             # simulated seconds
    created_wall: int          # UNIX seconds
    create_job: str
    flavour: str               # cloudtower | generic | none
    install_s: float = DEFAULT_OS_INSTALL_S
    ga_stalled: bool = False   # a fault rule stalled this VM's guest agent
    fault_rule: str | None = None
    ready: bool = False        # the creation job is done: the VM exists
    failed: bool = False       # the creation job failed: the VM never existed (kept for inspection)
    booted_at: float | None = None      # simulated seconds
    ga_up_at: float | None = None       # simulated seconds the guest agent came up
    updates: list[dict] = field(default_factory=list)   # {"job_id", "nics": [...], "applied", "outcome"}
    guest_hostname: str = "localhost.localdomain"

    # ---- times
    def wall(self, sim_t: float | None) -> int:
        return 0 if sim_t is None else int(self.created_wall + (sim_t - self.created))

    @property
    def ga_running(self) -> bool:
        return self.ga_up_at is not None

    @property
    def exists(self) -> bool:
        """The creation job is done (and did not fail): the cluster API shows the VM."""
        return self.ready and not self.failed

    @property
    def installs_os(self) -> bool:
        """Whether the guest installs an OS with VM tools on its own: a CloudTower ISO in an enabled
        CD-ROM and a disk to install to."""
        return self.flavour == "cloudtower" and any(d["type"] == "disk" for d in self.disks)

    @property
    def ips(self) -> list[str]:
        return [n["ip_address"] for n in self.nics if n.get("ip_address")]

    def nic_by_mac(self, mac: str) -> dict | None:
        return next((n for n in self.nics if n["mac_address"].lower() == str(mac).lower()), None)

    # ---- shapes
    def resource(self) -> dict:
        """The VM as a job resource (the guide's VM_CREATE job: ``resources[<vm uuid>]``)."""
        return {"type": "KVM_VM", "uuid": self.uuid, "vm_name": self.name, "description": self.description,
                "vcpu": self.vcpu, "cpu": {"topology": {"sockets": self.sockets, "cores": self.cores}},
                "memory": self.memory, "ha": self.ha, "nested_virtualization": self.nested_virtualization,
                "cpu_model": self.cpu_model, "firmware": self.firmware, "status": self.want_status,
                "node_ip": self.node_ip,
                "nics": [{k: n[k] for k in ("ovs", "model", "mirror", "vlan_uuid", "link", "mac_address")}
                         for n in self.nics],
                "disks": [self._disk_request(d) for d in self.disks]}

    @staticmethod
    def _disk_request(d: dict) -> dict:
        if d["type"] == "cdrom":
            return {"type": "cdrom", "bus": d["bus"], "path": d["path"], "disabled": d["disabled"]}
        return {"type": "disk", "bus": d["bus"], "storage_policy_uuid": d["storage_policy_uuid"], "name": d["name"],
                "quota_policy": None, "size_in_byte": d["size"]}


# --------------------------------------------------------------------------- GET /api/v2/vms/{uuid}
def vm_view(vm: Vm, vlans: dict, now: float) -> dict:
    """``GET /api/v2/vms/{uuid}`` data: the guide's sample shape. ``vlans``: fisheye's VLANs by uuid."""
    running = vm.booted_at is not None
    started = vm.wall(vm.booted_at) if running else vm.created_wall
    return {
        "auto_schedule": True, "bios_uuid": vm.bios_uuid, "boot_with_host": False, "clock_offset": "utc",
        "cloud_init_supported": False, "cluster_cpu_model": "host_passthrough",
        "cpu": {"topology": {"cores": vm.cores, "sockets": vm.sockets}},
        "cpu_exclusive": {"actual_enabled": False, "expected_enabled": False}, "cpu_model": vm.cpu_model,
        "cpu_qos": {"limit_hz": -1, "reservation_hz": 0, "shares": 1000}, "create_time": vm.created_wall,
        "description": vm.description, "disks": _disks_view(vm), "firmware": vm.firmware,
        "guest_cpu_model": "host_passthrough", "guest_info": guest_info(vm, now),
        "guest_os_type": "unknown", "ha": vm.ha, "ha_priority": 500, "hostdevs": [], "internal": False,
        "last_shutdown_time": vm.created_wall, "last_start_time": started, "memory": vm.memory,
        "nested_virtualization": vm.nested_virtualization, "nics": _nics_view(vm, vlans), "node_ip": vm.node_ip,
        "placement_groups": [], "quota_policy": None, "resource_state": "in-use",
        "status": "running" if running else "stopped", "svt_iso": "", "sync_vm_time_on_resume": False,
        "type": "KVM_VM", "update_time": max(started, vm.created_wall),
        "uptime": int(now - vm.booted_at) if running else 0, "uuid": vm.uuid, "vcpu": vm.vcpu,
        "video_type": "cirrus", "vm_name": vm.name, "vm_version": "elf-1.2",
        "vm_version_mode": "vm-version-auto", "win_opt": None,
    }


def _nics_view(vm: Vm, vlans: dict) -> list[dict]:
    nics = []
    for i, n in enumerate(vm.nics):
        vlan = vlans.get(n["vlan_uuid"])
        nics.append({"gateway": n.get("gateway") or "", "interface_id": n["interface_id"], "link": n["link"],
                     "mac_address": n["mac_address"], "mirror": n["mirror"], "model": n["model"], "ovs": n["ovs"],
                     "ovs_health_status": "healthy", "pci_address": f"0000:00:{4 + i:02x}.0", "queues": vm.vcpu,
                     "type": "VLAN", "vlan_uuid": n["vlan_uuid"],
                     "vlans": [{"enable_dhcp": None, "mode_type": "vlan_access", "mtu": None, "name": vlan.name,
                                "type": vlan.type, "uuid": vlan.uuid, "vds_uuid": vlan.vds_uuid,
                                "vlan_id": vlan.vlan_id}] if vlan is not None else []})
    return nics


def _disks_view(vm: Vm) -> list[dict]:
    disks = []
    for i, d in enumerate(vm.disks):
        boot = i + 1
        if d["type"] == "disk":
            disks.append({"boot": boot, "bus": d["bus"], "encryption_algorithm": "PLAINTEXT", "name": d["name"],
                          "path": d["path"], "quota_policy": None, "resident_in_cache": False,
                          "resident_in_cache_percentage": 0, "serial": d["serial"], "size": d["size"],
                          "storage_policy_uuid": d["storage_policy_uuid"], "type": "disk",
                          "volume_is_sharing": False, "volume_uuid": d["volume_uuid"]})
        else:
            disks.append({"boot": boot, "bus": d["bus"], "disabled": d["disabled"], "key": 100 + i,
                          "path": d["path"], "quota_policy": None, "storage_policy_uuid": None, "type": "cdrom"})
    return disks


# --------------------------------------------------------------------------- the guest agent (VM tools)
_NO_AGENT = {"dns_servers": [], "expired": False, "ga_state": GA_NOT_RUNNING, "ga_version": None,
             "gateway_ips": [], "hostname": "", "kernel_info": "", "mounted": False, "nics": [],
             "os_version": "", "storage": None, "update_time": None, "vip": None}
_LOOPBACK_NIC = {"gateway_ip": "", "gateway_ip_v6": "::", "hardware_address": "00:00:00:00:00:00",
                 "ip_addresses": [{"ip_address": "127.0.0.1", "ip_address_type": "ipv4", "netmask": "255.0.0.0",
                                   "prefix": "8"},
                                  {"ip_address": "::1", "ip_address_type": "ipv6", "netmask": "", "prefix": "128"}],
                 "ip_type": "unknown", "ip_type_v6": "unknown", "name": "lo"}


def guest_info(vm: Vm, now: float) -> dict:
    """What the VM tools report (``guest_info``): empty values until the guest agent runs."""
    if not vm.ga_running:
        return copy.deepcopy(_NO_AGENT)
    nics = [copy.deepcopy(_LOOPBACK_NIC)]
    gateways = []
    for i, n in enumerate(vm.nics):
        ips = []
        if n.get("ip_address"):
            prefix = netmask_prefix(n.get("subnet_mask")) or 32
            ips.append({"ip_address": n["ip_address"], "ip_address_type": "ipv4",
                        "netmask": n.get("subnet_mask") or "", "prefix": str(prefix)})
            if n.get("gateway"):
                gateways.append(n["gateway"])
        nics.append({"gateway_ip": n.get("gateway") or "", "gateway_ip_v6": "",
                     "hardware_address": n["mac_address"], "ip_addresses": ips,
                     "ip_type": "static" if ips else "dhcp", "ip_type_v6": "dhcp", "name": f"ens{4 + i}"})
    return {"dns_servers": [], "expired": False, "ga_state": GA_RUNNING, "ga_version": GA_VERSION,
            "gateway_ips": gateways or ["::"], "hostname": vm.guest_hostname, "kernel_info": KERNEL,
            "mounted": False, "nics": nics, "os_version": OS_VERSION, "storage": _guest_storage(vm),
            "update_time": vm.wall(now), "vip": None}


def _guest_storage(vm: Vm) -> dict:
    disk = next((d for d in vm.disks if d["type"] == "disk"), None)
    size = disk["size"] if disk else 0
    return {"disks": [{"name": "/dev/vda", "serial": (disk["serial"] if disk else "")[:20], "size": size,
                       "used": None}],
            "mount_points": [{"path": "/boot", "size": 466569216, "type": "ext4", "used": 128922624},
                             {"path": "/", "size": int(size * 0.93), "type": "ext4", "used": 8683937792}],
            "size": size, "storage_pools": [], "used": None}

