"""Virtual machines of the simulated cluster (guide §04: the CloudTower VM) -- state only, no HTTP.

``responses.py`` maps the routes onto :class:`VmsModel`. The model lives beside fisheye's
(:class:`~mocks.fisheye.models.FisheyeModel`) and uses it for what the cluster API shares:

* jobs -- VM creation and update are fisheye :class:`~mocks.fisheye.models.Job` objects (in
  ``fisheye.jobs``, so ``GET /api/v2/jobs/{id}`` serves them; fault rules apply the same way);
  this model watches their state (computed from simulated time) and applies the effects;
* networks -- a NIC's ``vlan_uuid`` must be a VLAN of ``fisheye.vlans`` on a ready VDS whose
  ``ovsbr_name`` equals the NIC's ``ovs``;
* images -- a CD-ROM ``path`` must be the path of a finished image (``fisheye.image_by_path``).

The life of a VM: ``POST /api/v2/vms`` -> job (pending -> running -> done) -> the VM exists and,
with ``status: "running"``, boots from its CD-ROM. A CloudTower ISO (its name contains
``cloudtower``) installs openEuler unattended: after :attr:`VmsModel.os_install_s` simulated
seconds the guest agent reports ``ga_state: "Running"``. ``PUT /api/v2/vms/{uuid}`` with the
guide's NIC body (needs the guest agent) -> job -> the guest takes the address: it answers ping and,
for a CloudTower guest, its SSH (user ``cloudtower``) comes up (see ``mocks/vms/__init__.py``).

Everything :meth:`VmsModel.export_state` returns is JSON-able and holds no password.
"""
from __future__ import annotations

import copy
import dataclasses
import ipaddress
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core import SimClock
from ..deployment.models import DeploymentModel
from ..fisheye.models import (EC_BAD_REQUEST, EC_EXISTS, EC_INVALID, EC_NOT_FOUND, FisheyeError, FisheyeModel,
                              iscsi_datastore, iscsi_path)

DEFAULT_OS_INSTALL_S = 1200.0          # boot -> guest agent running: the unattended install (~20 min)
GA_RUNNING = "Running"                 # the guide's ga_state once VM tools run
GA_NOT_RUNNING = "Unknown"             # the simulator's value before that (no agent in the guest yet)
OS_VERSION = "openEuler 20.03 (LTS-SP3)"
KERNEL = "4.19.90-2307.3.0.oe1.smartx.37.x86_64"
GA_VERSION = 4000000
CLOUDTOWER_SSH_USER = "cloudtower"     # the guide: fixed account and password of the CloudTower VM
CLOUDTOWER_SSH_DEFAULT = "HC!r0cks"
NIC_MODELS = ("virtio", "e1000", "rtl8139")
NIC_LINKS = ("up", "down")
DISK_BUSES = ("virtio", "scsi", "ide", "sata")
CDROM_BUSES = ("ide", "sata", "scsi")
FIRMWARES = ("BIOS", "UEFI")
VM_STATUSES = ("running", "stopped")
GA_STALL_STAGES = ("guest-agent", "guest_agent", "ga")   # fault rule {"operation": "stuck", "stage": ...}
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _invalid(msg: str) -> FisheyeError:
    return FisheyeError(EC_INVALID, msg, 400)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _ipv4(v: Any) -> ipaddress.IPv4Address | None:
    if not isinstance(v, str):
        return None
    try:
        return ipaddress.IPv4Address(v.strip())
    except ValueError:
        return None


def _netmask(v: Any) -> int | None:
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


# --------------------------------------------------------------------------- the model
class VmsModel:
    """The cluster's VMs (and its storage policies) as the cluster API shows them."""

    family = "vms"

    def __init__(self, clock: SimClock, fisheye: FisheyeModel, deployment: DeploymentModel):
        self.clock = clock
        self.fisheye = fisheye
        self.deployment = deployment
        self.lock = threading.RLock()
        # ---- knobs (tests and presets may change them)
        self.os_install_s = DEFAULT_OS_INSTALL_S     # boot -> guest agent running (captured per VM at creation)
        self.stall_guest_agent = False               # True: no guest agent comes up (until set back to False)
        self.allow_duplicate_names = False           # False: POST /api/v2/vms with a used vm_name -> 400
        # ---- hooks (mocks.vms.install wires them): fn(vm, old_ip, new_ip) when a guest takes an address
        self.address_hooks: list[Callable[[Vm, str | None, str], None]] = []
        # ---- state
        self.vms: dict[str, Vm] = {}

    # ------------------------------------------------------------------ storage policies
    def storage_policies(self) -> list[dict]:
        """``GET /api/v2/storage_policies``: the cluster's default policy (the guide's sample shape)."""
        c = self.fisheye.cluster
        if c is None:
            return []
        storage_ips = sorted((h.storage_ip for h in self.fisheye.cluster_hosts() if h.storage_ip),
                             key=lambda a: ipaddress.IPv4Address(a))
        wall = int(c.get("activated_wall") or self.clock.wall())
        return [{"created_time": wall, "datastores": [iscsi_datastore(c["name"])],
                 "description": "default storage policy", "modified_time": wall, "name": "default",
                 "read_only": False, "replica_num": 2, "resource_state": "in-use", "storage_pool_id": "system",
                 "stripe_num": 4, "stripe_size": 262144, "thin_provision": True, "type": "replica",
                 "uuid": self.default_policy_uuid(), "whitelist": ",".join(storage_ips)}]

    def default_policy_uuid(self) -> str:
        name = self.fisheye.cluster["name"] if self.fisheye.cluster else ""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://storage-policy/{name}/default"))

    # ------------------------------------------------------------------ progress on read
    def settle(self) -> None:
        """Apply what ended by now: creation jobs (the VM appears and boots), the unattended install
        (guest agent up), update jobs (the guest takes its address)."""
        now = self.clock.now()
        effects: list[tuple[Vm, str | None, str]] = []
        with self.lock:
            for vm in self.vms.values():
                if vm.failed:
                    continue
                if not vm.ready:
                    job = self.fisheye.jobs.get(vm.create_job)
                    state = job.state(now) if job is not None else "failed"
                    if state == "failed":
                        vm.failed = True
                        continue
                    if state != "done":
                        continue
                    vm.ready = True
                    if vm.want_status == "running":
                        vm.booted_at = job.created + job.pending_s + job.running_s
                if vm.booted_at is not None and vm.ga_up_at is None and self._installs(vm) \
                        and not vm.ga_stalled and not self.stall_guest_agent and now >= vm.booted_at + vm.install_s:
                    vm.ga_up_at = vm.booted_at + vm.install_s
                for upd in vm.updates:
                    if upd["applied"]:
                        continue
                    job = self.fisheye.jobs.get(upd["job_id"])
                    state = job.state(now) if job is not None else "failed"
                    if state in ("pending", "running"):
                        continue
                    upd["applied"], upd["outcome"] = True, state
                    if state == "done":
                        effects += self._apply_update(vm, upd)
        for vm, old, new in effects:
            for hook in list(self.address_hooks):
                hook(vm, old, new)

    @staticmethod
    def _installs(vm: Vm) -> bool:
        """Whether the guest installs an OS with VM tools on its own: a CloudTower ISO in an enabled
        CD-ROM and a disk to install to."""
        return vm.flavour == "cloudtower" and any(d["type"] == "disk" for d in vm.disks)

    def _apply_update(self, vm: Vm, upd: dict) -> list[tuple[Vm, str | None, str]]:
        out = []
        for want in upd["nics"]:
            nic = vm.nic_by_mac(want["mac_address"])
            if nic is None:
                continue
            old = nic.get("ip_address")
            for k in ("vlan_uuid", "ovs", "model", "mirror", "link", "ip_address", "subnet_mask", "gateway"):
                if k in want:
                    nic[k] = want[k]
            if nic.get("ip_address") and nic["ip_address"] != old:
                out.append((vm, old, nic["ip_address"]))
        return out

    # ------------------------------------------------------------------ validation helpers
    def _vlan_problems(self, where: str, nic: dict) -> list[str]:
        errs = []
        vu, ovs = nic.get("vlan_uuid"), nic.get("ovs")
        with self.fisheye.lock:
            vlan = self.fisheye.vlans.get(vu) if isinstance(vu, str) else None
            vds = self.fisheye.vdses.get(vlan.vds_uuid) if vlan is not None else None
        if vlan is None or vds is None or not vds.ready:
            errs.append(f"{where}.vlan_uuid {vu!r} is not a network of this cluster "
                        f"(GET /api/v2/network/vds/{{vds_uuid}}/vlans lists them)")
        elif not isinstance(ovs, str) or ovs != vds.ovsbr_name:
            errs.append(f"{where}.ovs {ovs!r} is not the bridge of network {vlan.name}: its VDS {vds.name} has "
                        f"ovsbr_name {vds.ovsbr_name}")
        model = nic.get("model", "virtio")
        if model not in NIC_MODELS:
            errs.append(f"{where}.model {model!r} is not one of {', '.join(NIC_MODELS)}")
        if nic.get("link", "up") not in NIC_LINKS:
            errs.append(f"{where}.link {nic.get('link')!r} is not one of {', '.join(NIC_LINKS)}")
        if not isinstance(nic.get("mirror", False), bool):
            errs.append(f"{where}.mirror must be true or false")
        return errs

    def _taken_addresses(self, exclude_vm: str | None = None) -> dict[str, str]:
        """Addresses a guest may not take: cluster hosts, the VIP, other VMs."""
        taken: dict[str, str] = {}
        for h in self.fisheye.cluster_hosts():
            taken[h.mgmt_ip] = f"host {h.hostname} (management)"
            if h.storage_ip:
                taken[h.storage_ip] = f"host {h.hostname} (storage)"
        vip = self.fisheye.settings.get("management_vip")
        if vip:
            taken[vip] = "the cluster VIP"
        for vm in self.vms.values():
            if vm.uuid != exclude_vm and vm.ready:
                for ip in vm.ips:
                    taken[ip] = f"VM {vm.name}"
        return taken

    # ------------------------------------------------------------------ create
    def create_vm(self, body: Any, fault: dict | None = None) -> dict:
        """``POST /api/v2/vms`` (the guide's fixed payload) -> ``{"job_id"}``. Every problem found is
        reported, joined with ``; ``."""
        if not isinstance(body, dict):
            raise FisheyeError(EC_BAD_REQUEST, "request body must be a JSON object (the VM to create)")
        errs: list[str] = []
        name = body.get("vm_name")
        if not isinstance(name, str) or not name.strip():
            errs.append("vm_name is required")
        vcpu, memory = _int(body.get("vcpu")), _int(body.get("memory"))
        if vcpu is None or vcpu < 1:
            errs.append(f"vcpu {body.get('vcpu')!r} must be an integer >= 1")
        if memory is None or memory < 256 * 1024 * 1024:
            errs.append(f"memory {body.get('memory')!r} must be the size in bytes (an integer >= 256 MiB)")
        topo = (body.get("cpu") or {}).get("topology") if isinstance(body.get("cpu"), dict) else None
        sockets = _int(topo.get("sockets")) if isinstance(topo, dict) else None
        cores = _int(topo.get("cores")) if isinstance(topo, dict) else None
        if sockets is None or cores is None or sockets < 1 or cores < 1:
            errs.append("cpu.topology needs integer sockets and cores >= 1")
        elif vcpu is not None and sockets * cores != vcpu:
            errs.append(f"cpu.topology sockets x cores = {sockets * cores} does not equal vcpu {vcpu}")
        for key, allowed in (("firmware", FIRMWARES), ("status", VM_STATUSES)):
            if body.get(key, allowed[0]) not in allowed:
                errs.append(f"{key} {body.get(key)!r} is not one of {', '.join(allowed)}")
        if "status" not in body:
            errs.append("status is required (running: the VM starts once created)")
        for key in ("ha", "nested_virtualization", "auto_schedule"):
            if key in body and not isinstance(body[key], bool):
                errs.append(f"{key} must be true or false")
        if "cpu_model" in body and not isinstance(body["cpu_model"], str):
            errs.append("cpu_model must be a string (cluster_default)")
        hosts = {h.mgmt_ip: h for h in self.fisheye.cluster_hosts()}
        node_ip = body.get("node_ip")
        if node_ip is not None and node_ip not in hosts:
            errs.append(f"node_ip {node_ip!r} is not a host of this cluster")
        nics = body.get("nics")
        if not isinstance(nics, list) or not nics:
            errs.append("nics must be a non-empty list")
            nics = []
        for i, n in enumerate(nics):
            if not isinstance(n, dict):
                errs.append(f"nics[{i}] must be an object")
                continue
            for k in ("vlan_uuid", "ovs"):
                if k not in n:
                    errs.append(f"nics[{i}].{k} is required")
            errs += self._vlan_problems(f"nics[{i}]", n)
            if "mac_address" in n and not (isinstance(n["mac_address"], str) and _MAC.match(n["mac_address"])):
                errs.append(f"nics[{i}].mac_address {n['mac_address']!r} is not a MAC address")
        disks = body.get("disks")
        if not isinstance(disks, list) or not disks:
            errs.append("disks must be a non-empty list")
            disks = []
        policies = {p["uuid"] for p in self.storage_policies()}
        images: list = []
        for i, d in enumerate(disks):
            where = f"disks[{i}]"
            if not isinstance(d, dict):
                errs.append(f"{where} must be an object")
                continue
            kind = d.get("type")
            if kind == "disk":
                if d.get("bus") not in DISK_BUSES:
                    errs.append(f"{where}.bus {d.get('bus')!r} is not one of {', '.join(DISK_BUSES)}")
                size = _int(d.get("size_in_byte"))
                if size is None or size <= 0:
                    errs.append(f"{where}.size_in_byte {d.get('size_in_byte')!r} must be the size in bytes (> 0)")
                if d.get("storage_policy_uuid") not in policies:
                    errs.append(f"{where}.storage_policy_uuid {d.get('storage_policy_uuid')!r} is not a storage "
                                f"policy of this cluster (GET /api/v2/storage_policies lists them)")
                if not isinstance(d.get("name"), str) or not d.get("name"):
                    errs.append(f"{where}.name is required")
            elif kind == "cdrom":
                if d.get("bus") not in CDROM_BUSES:
                    errs.append(f"{where}.bus {d.get('bus')!r} is not one of {', '.join(CDROM_BUSES)}")
                disabled = d.get("disabled", False)
                if not isinstance(disabled, bool):
                    errs.append(f"{where}.disabled must be true or false")
                path = d.get("path")
                img = self.fisheye.image_by_path(path)
                if img is None and not (disabled is True and not path):
                    errs.append(f"{where}.path {path!r} is not the path of an image of this cluster (use the "
                                f"upload volume's image_path, or the path GET /api/v2/images shows)")
                images.append((i, img, disabled))
            else:
                errs.append(f"{where}.type {kind!r} must be disk or cdrom")
        stage = str((fault or {}).get("stage") or "").lower()
        ga_stall = bool(fault and fault.get("operation") == "stuck" and stage in GA_STALL_STAGES)
        with self.lock:
            if isinstance(name, str) and name.strip() and not self.allow_duplicate_names:
                other = next((v for v in self.vms.values() if v.name == name and not v.failed), None)
                if other is not None:
                    if not errs:
                        raise FisheyeError(EC_EXISTS, f"a VM named {name} already exists ({other.uuid})")
                    errs.append(f"a VM named {name} already exists ({other.uuid})")
            if errs:
                raise _invalid("; ".join(errs))
            vu = str(uuid.uuid4())
            if node_ip is None:
                load = {ip: 0 for ip in hosts}
                for v in self.vms.values():
                    if not v.failed and v.node_ip in load:
                        load[v.node_ip] += 1
                node_ip = min(load, key=lambda ip: (load[ip], ipaddress.IPv4Address(ip))) if load else None
            cluster = self.fisheye.cluster["name"] if self.fisheye.cluster else None
            vm_nics = [{"interface_id": str(uuid.uuid4()), "mac_address": (n.get("mac_address") or vm_mac(vu, i)).lower(),
                        "ovs": n["ovs"], "vlan_uuid": n["vlan_uuid"], "model": n.get("model", "virtio"),
                        "mirror": bool(n.get("mirror", False)), "link": n.get("link", "up"), "ip_address": None,
                        "subnet_mask": None, "gateway": None} for i, n in enumerate(nics)]
            vm_disks, boot_image = [], None
            for i, d in enumerate(disks):
                if d["type"] == "disk":
                    vol = str(uuid.uuid4())
                    vm_disks.append({"type": "disk", "bus": d["bus"], "name": d["name"], "size": d["size_in_byte"],
                                     "storage_policy_uuid": d["storage_policy_uuid"],
                                     "path": iscsi_path(cluster, self.fisheye.next_iscsi_lun()), "volume_uuid": vol,
                                     "serial": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://volume/{vol}"))})
                else:
                    img = next(x[1] for x in images if x[0] == i)
                    disabled = bool(d.get("disabled", False))
                    vm_disks.append({"type": "cdrom", "bus": d["bus"], "path": d.get("path") or "",
                                     "disabled": disabled, "image_uuid": img.image_uuid if img else None,
                                     "image_name": img.name if img else None})
                    if boot_image is None and img is not None and not disabled:
                        boot_image = img.name
            vm = Vm(uuid=vu, name=name, description=str(body.get("description") or ""), vcpu=vcpu, memory=memory,
                    sockets=sockets, cores=cores, nics=vm_nics, disks=vm_disks, ha=bool(body.get("ha", True)),
                    nested_virtualization=bool(body.get("nested_virtualization", False)),
                    cpu_model=body.get("cpu_model") or "cluster_default", firmware=body.get("firmware", "BIOS"),
                    want_status=body["status"], node_ip=node_ip, bios_uuid=str(uuid.uuid4()),
                    created=self.clock.now(), created_wall=int(self.clock.wall()), create_job="",
                    flavour=guest_flavour(boot_image), install_s=float(self.os_install_s), ga_stalled=ga_stall,
                    fault_rule=(fault or {}).get("rule") if ga_stall else None)
            with self.fisheye.lock:
                job = self.fisheye._job(
                    "VM_CREATE", "CREATE_VM", "vm_create", {"vm_uuid": vu}, fault=None if ga_stall else fault,
                    resources={vu: vm.resource()},
                    message=(f"创建虚拟机 {name}。\n", f"Created VM {name}.\n"),
                    detail=(f"创建虚拟机: {name}\nvCPU: {vcpu}\n内存: {memory} 字节\n",
                            f"Created VM: {name}\nvCPU: {vcpu}\nmemory: {memory} bytes\n"),
                    data={"vm_name": name, "uuid": vu})
            vm.create_job = job.job_id
            self.vms[vu] = vm
        return {"job_id": job.job_id}

    # ------------------------------------------------------------------ read
    def _ready(self, vm_uuid: str) -> Vm:
        vm = self.vms.get(vm_uuid)
        if vm is None or not vm.ready or vm.failed:
            raise FisheyeError(EC_NOT_FOUND, f"VM {vm_uuid} not found", 404)
        return vm

    def get_vm(self, vm_uuid: str) -> dict:
        with self.lock:
            return self.view(self._ready(vm_uuid))

    def list_vms(self) -> list[dict]:
        with self.lock:
            return [self.view(v) for v in self.vms.values() if v.ready and not v.failed]

    def by_name(self, name: str) -> Vm | None:
        with self.lock:
            return next((v for v in self.vms.values() if v.name == name and v.ready and not v.failed), None)

    def view(self, vm: Vm) -> dict:
        """``GET /api/v2/vms/{uuid}`` data: the guide's sample shape."""
        now = self.clock.now()
        running = vm.booted_at is not None
        with self.fisheye.lock:
            vlans = {u: copy.copy(v) for u, v in self.fisheye.vlans.items()}
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
        disks, boot = [], 0
        for i, d in enumerate(vm.disks):
            boot += 1
            if d["type"] == "disk":
                disks.append({"boot": boot, "bus": d["bus"], "encryption_algorithm": "PLAINTEXT", "name": d["name"],
                              "path": d["path"], "quota_policy": None, "resident_in_cache": False,
                              "resident_in_cache_percentage": 0, "serial": d["serial"], "size": d["size"],
                              "storage_policy_uuid": d["storage_policy_uuid"], "type": "disk",
                              "volume_is_sharing": False, "volume_uuid": d["volume_uuid"]})
            else:
                disks.append({"boot": boot, "bus": d["bus"], "disabled": d["disabled"], "key": 100 + i,
                              "path": d["path"], "quota_policy": None, "storage_policy_uuid": None, "type": "cdrom"})
        started = vm.wall(vm.booted_at) if running else vm.created_wall
        return {
            "auto_schedule": True, "bios_uuid": vm.bios_uuid, "boot_with_host": False, "clock_offset": "utc",
            "cloud_init_supported": False, "cluster_cpu_model": "host_passthrough",
            "cpu": {"topology": {"cores": vm.cores, "sockets": vm.sockets}},
            "cpu_exclusive": {"actual_enabled": False, "expected_enabled": False}, "cpu_model": vm.cpu_model,
            "cpu_qos": {"limit_hz": -1, "reservation_hz": 0, "shares": 1000}, "create_time": vm.created_wall,
            "description": vm.description, "disks": disks, "firmware": vm.firmware,
            "guest_cpu_model": "host_passthrough", "guest_info": self._guest_info(vm, now),
            "guest_os_type": "unknown", "ha": vm.ha, "ha_priority": 500, "hostdevs": [], "internal": False,
            "last_shutdown_time": vm.created_wall, "last_start_time": started, "memory": vm.memory,
            "nested_virtualization": vm.nested_virtualization, "nics": nics, "node_ip": vm.node_ip,
            "placement_groups": [], "quota_policy": None, "resource_state": "in-use",
            "status": "running" if running else "stopped", "svt_iso": "", "sync_vm_time_on_resume": False,
            "type": "KVM_VM", "update_time": max(started, vm.created_wall),
            "uptime": int(now - vm.booted_at) if running else 0, "uuid": vm.uuid, "vcpu": vm.vcpu,
            "video_type": "cirrus", "vm_name": vm.name, "vm_version": "elf-1.2",
            "vm_version_mode": "vm-version-auto", "win_opt": None,
        }

    def _guest_info(self, vm: Vm, now: float) -> dict:
        if not vm.ga_running:
            return {"dns_servers": [], "expired": False, "ga_state": GA_NOT_RUNNING, "ga_version": None,
                    "gateway_ips": [], "hostname": "", "kernel_info": "", "mounted": False, "nics": [],
                    "os_version": "", "storage": None, "update_time": None, "vip": None}
        nics = [{"gateway_ip": "", "gateway_ip_v6": "::", "hardware_address": "00:00:00:00:00:00",
                 "ip_addresses": [{"ip_address": "127.0.0.1", "ip_address_type": "ipv4", "netmask": "255.0.0.0",
                                   "prefix": "8"},
                                  {"ip_address": "::1", "ip_address_type": "ipv6", "netmask": "", "prefix": "128"}],
                 "ip_type": "unknown", "ip_type_v6": "unknown", "name": "lo"}]
        gateways = []
        for i, n in enumerate(vm.nics):
            ips = []
            if n.get("ip_address"):
                prefix = _netmask(n.get("subnet_mask")) or 32
                ips.append({"ip_address": n["ip_address"], "ip_address_type": "ipv4",
                            "netmask": n.get("subnet_mask") or "", "prefix": str(prefix)})
                if n.get("gateway"):
                    gateways.append(n["gateway"])
            nics.append({"gateway_ip": n.get("gateway") or "", "gateway_ip_v6": "",
                         "hardware_address": n["mac_address"], "ip_addresses": ips,
                         "ip_type": "static" if ips else "dhcp", "ip_type_v6": "dhcp", "name": f"ens{4 + i}"})
        disk = next((d for d in vm.disks if d["type"] == "disk"), None)
        size = disk["size"] if disk else 0
        storage = {"disks": [{"name": "/dev/vda", "serial": (disk["serial"] if disk else "")[:20], "size": size,
                              "used": None}],
                   "mount_points": [{"path": "/boot", "size": 466569216, "type": "ext4", "used": 128922624},
                                    {"path": "/", "size": int(size * 0.93), "type": "ext4", "used": 8683937792}],
                   "size": size, "storage_pools": [], "used": None}
        return {"dns_servers": [], "expired": False, "ga_state": GA_RUNNING, "ga_version": GA_VERSION,
                "gateway_ips": gateways or ["::"], "hostname": vm.guest_hostname, "kernel_info": KERNEL,
                "mounted": False, "nics": nics, "os_version": OS_VERSION, "storage": storage,
                "update_time": vm.wall(now), "vip": None}

    # ------------------------------------------------------------------ update (guest network through VM tools)
    def update_vm(self, vm_uuid: str, body: Any, fault: dict | None = None) -> dict:
        """``PUT /api/v2/vms/{uuid}`` with the guide's body ``{"nics": [{vlan_uuid, ovs, model, mac_address,
        mirror, gateway, subnet_mask, ip_address, link}]}`` -> ``{"job_id"}``. The address is set by the VM
        tools, so the guest agent must be running."""
        with self.lock:
            vm = self._ready(vm_uuid)
        if not isinstance(body, dict) or not isinstance(body.get("nics"), list) or not body["nics"]:
            raise FisheyeError(EC_BAD_REQUEST, 'body must be {"nics": [{"vlan_uuid", "ovs", "model", "mac_address", '
                                               '"mirror", "gateway", "subnet_mask", "ip_address", "link"}]}')
        errs: list[str] = []
        if not vm.ga_running:
            errs.append(f"the VM tools (guest agent) of VM {vm.name} are not running (ga_state {GA_NOT_RUNNING}): "
                        f"its guest network cannot be configured yet")
        taken = self._taken_addresses(exclude_vm=vm.uuid)
        out, seen_ips = [], set()
        for i, n in enumerate(body["nics"]):
            where = f"nics[{i}]"
            if not isinstance(n, dict):
                errs.append(f"{where} must be an object")
                continue
            errs += self._vlan_problems(where, n)
            mac = n.get("mac_address")
            if not isinstance(mac, str) or vm.nic_by_mac(mac) is None:
                errs.append(f"{where}.mac_address {mac!r} is not a NIC of VM {vm.name} (its NICs: "
                            f"{', '.join(x['mac_address'] for x in vm.nics)}; GET /api/v2/vms/{vm.uuid} shows them)")
            want = {k: n[k] for k in ("vlan_uuid", "ovs", "model", "mirror", "link") if k in n}
            want["mac_address"] = str(mac).lower() if isinstance(mac, str) else mac
            ip, mask, gw = n.get("ip_address"), n.get("subnet_mask"), n.get("gateway")
            if ip is not None or mask is not None or gw:
                addr, prefix = _ipv4(ip), _netmask(mask)
                if addr is None:
                    errs.append(f"{where}.ip_address {ip!r} is not an IPv4 address")
                if prefix is None:
                    errs.append(f"{where}.subnet_mask {mask!r} is not a netmask such as 255.255.255.0")
                if addr is not None and prefix is not None:
                    net = ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False)
                    if prefix < 31 and addr in (net.network_address, net.broadcast_address):
                        errs.append(f"{where}.ip_address {addr} is not a host address of {net}")
                    if gw:
                        g = _ipv4(gw)
                        if g is None or g not in net or g == addr:
                            errs.append(f"{where}.gateway {gw!r} is not another address of {net}")
                    if str(addr) in taken:
                        errs.append(f"{where}.ip_address {addr} is already used by {taken[str(addr)]}")
                    if str(addr) in seen_ips:
                        errs.append(f"{where}.ip_address {addr} is given twice")
                    seen_ips.add(str(addr))
                    want.update(ip_address=str(addr), subnet_mask=str(net.netmask),
                                gateway=str(_ipv4(gw)) if gw and _ipv4(gw) else None)
            out.append(want)
        if errs:
            raise _invalid("; ".join(errs))
        with self.lock:
            ips = ", ".join(w.get("ip_address") or "-" for w in out)
            with self.fisheye.lock:
                job = self.fisheye._job(
                    "VM_UPDATE", "UPDATE_VM", "vm_update", {"vm_uuid": vm.uuid},
                    fault=fault if fault and fault.get("operation") in ("stuck", "fail") else None,
                    resources={vm.uuid: {"type": "KVM_VM", "uuid": vm.uuid, "vm_name": vm.name,
                                         "nics": copy.deepcopy(out)}},
                    message=(f"编辑虚拟机 {vm.name} 的网卡。\n", f"Edited the NICs of VM {vm.name}.\n"),
                    detail=(f"IP 地址: {ips}\n", f"IP addresses: {ips}\n"), data={"vm_name": vm.name, "uuid": vm.uuid})
            vm.updates.append({"job_id": job.job_id, "nics": out, "applied": False, "outcome": None})
        return {"job_id": job.job_id}

    # ------------------------------------------------------------------ snapshot / restore
    def export_state(self) -> dict:
        self.settle()
        with self.lock:
            return {"knobs": {"os_install_s": self.os_install_s, "stall_guest_agent": self.stall_guest_agent,
                              "allow_duplicate_names": self.allow_duplicate_names},
                    "vms": [dataclasses.asdict(v) for v in self.vms.values()]}

    def to_dict(self) -> dict:
        d = self.export_state()
        now = self.clock.now()
        for v in d["vms"]:
            v["ga_state"] = GA_RUNNING if v["ga_up_at"] is not None else GA_NOT_RUNNING
            v["uptime"] = int(now - v["booted_at"]) if v["booted_at"] is not None else 0
        return d

    def import_state(self, state: dict) -> list[str]:
        """Restore :meth:`export_state` output. Guests that had taken an address take it again (the
        address hooks run: ping, SSH of a CloudTower guest)."""
        known = {f.name for f in dataclasses.fields(Vm)}
        knobs = state.get("knobs") or {}
        with self.lock:
            self.os_install_s = float(knobs.get("os_install_s", self.os_install_s))
            self.stall_guest_agent = bool(knobs.get("stall_guest_agent", self.stall_guest_agent))
            self.allow_duplicate_names = bool(knobs.get("allow_duplicate_names", self.allow_duplicate_names))
            self.vms = {v["uuid"]: Vm(**{k: copy.deepcopy(x) for k, x in v.items() if k in known})
                        for v in state.get("vms", [])}
            for vm in self.vms.values():
                for d in vm.disks:
                    lun = self.fisheye._lun_of(d.get("path") or "")
                    if lun is not None:
                        self.fisheye.note_iscsi_lun(lun)
            effects = [(vm, None, ip) for vm in self.vms.values() if vm.ready and not vm.failed for ip in vm.ips]
        for vm, old, new in effects:
            for hook in list(self.address_hooks):
                hook(vm, old, new)
        return []
