"""Virtual machines of the simulated cluster (guide §04: the CloudTower VM) -- state only, no HTTP.

``responses.py`` parses the routes' bodies (:mod:`.schema`) and calls :class:`VmsModel` with typed
specs; :mod:`.vm` holds the VM record and its shapes. The model lives beside fisheye's
(:class:`~mocks.fisheye.models.FisheyeModel`) and uses it for what the cluster API shares:

* jobs -- VM creation and update are fisheye :class:`~mocks.fisheye.models.Job` objects (in
  ``fisheye.jobs``, so ``GET /api/v2/jobs/{id}`` serves them; fault rules apply the same way);
  this model watches their state (computed from simulated time) and applies the effects;
* networks -- a NIC's ``vlan_uuid`` must be a VM network (type 3, not the system ``mgt-network`` / storage
  network) of ``fisheye.vlans`` on a ready VDS whose ``ovsbr_name`` equals the NIC's ``ovs``;
* images -- a CD-ROM ``path`` must be the path of a finished image (``fisheye.image_by_path``).

The life of a VM: ``POST /api/v2/vms`` -> job (pending -> running -> done) -> the VM exists and,
with ``status: "running"``, boots from its CD-ROM. A CloudTower ISO (its name contains
``cloudtower``) installs openEuler unattended: after :attr:`VmsModel.os_install_s` simulated
seconds the guest agent reports ``ga_state: "Running"``. ``PUT /api/v2/vms/{uuid}`` with the
guide's NIC body (needs the guest agent) -> job -> the guest takes the address (event
``vm_address``): it answers ping and, for a CloudTower guest, its SSH (user ``cloudtower``) comes up.

Operation faults reach the model typed, as fisheye's do: ``outcome`` (``"fail"`` | ``"stuck"`` | None),
``outcome_msg``, ``outcome_stage``, ``rule`` (the fault rule's id). Errors are raised, moto-style, as
:class:`~mocks.fisheye.models.FisheyeError` (a :class:`mocks.errors.SimError`: v2 envelopes).
Everything :meth:`VmsModel.export_state` returns is JSON-able and holds no password.
"""
from __future__ import annotations

import copy
import dataclasses
import ipaddress
import threading
import uuid
from typing import TYPE_CHECKING, Any

from ..clock import SimClock
from ..deployment.models import DeploymentModel
from ..events import Events
from ..fisheye.models import (EC_EXISTS, EC_INVALID, EC_NOT_FOUND, FisheyeError, FisheyeModel, iscsi_datastore,
                              iscsi_path)
from .schema import DiskSpec, NicUpdate, VmSpec, VmUpdate
from .vm import (CLOUDTOWER_SSH_DEFAULT, CLOUDTOWER_SSH_USER, DEFAULT_OS_INSTALL_S, GA_NOT_RUNNING, GA_RUNNING, Vm,
                 guest_flavour, vm_mac, vm_view)

if TYPE_CHECKING:                   # pragma: no cover
    from ..http import Outcome

__all__ = ["CLOUDTOWER_SSH_DEFAULT", "CLOUDTOWER_SSH_USER", "DEFAULT_OS_INSTALL_S", "GA_NOT_RUNNING", "GA_RUNNING",
           "GA_STALL_STAGES", "Vm", "VmsModel", "guest_flavour", "vm_mac"]

GA_STALL_STAGES = ("guest-agent", "guest_agent", "ga")   # fault rule {"operation": "stuck", "stage": ...}


def _invalid(msg: str) -> FisheyeError:
    return FisheyeError(EC_INVALID, msg, 400)


class VmsModel:
    """The cluster's VMs (and its storage policies) as the cluster API shows them."""

    family = "vms"

    def __init__(self, clock: SimClock, fisheye: FisheyeModel, deployment: DeploymentModel, *,
                 events: Events | None = None):
        self.clock = clock
        self.events = events if events is not None else Events()   # emits "vm_address" (vm, old, new)
        self.fisheye = fisheye
        self.deployment = deployment
        self.lock = threading.RLock()
        # ---- knobs (tests and presets may change them)
        self.os_install_s = DEFAULT_OS_INSTALL_S     # boot -> guest agent running (captured per VM at creation)
        self.stall_guest_agent = False               # True: no guest agent comes up (until set back to False)
        self.allow_duplicate_names = False           # False: POST /api/v2/vms with a used vm_name -> 400
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
                if vm.failed or not self._settle_creation(vm, now):
                    continue
                self._settle_agent(vm, now)
                effects += self._settle_updates(vm, now)
        for vm, old, new in effects:
            self.events.emit("vm_address", vm=vm, old=old, new=new)

    def _job_state(self, job_id: str, now: float) -> str:
        job = self.fisheye.jobs.get(job_id)
        return job.state(now) if job is not None else "failed"

    def _settle_creation(self, vm: Vm, now: float) -> bool:
        """Whether the VM exists by ``now`` (its creation job is done); boots it then."""
        if vm.ready:
            return True
        state = self._job_state(vm.create_job, now)
        if state == "failed":
            vm.failed = True
        if state != "done":
            return False
        vm.ready = True
        if vm.want_status == "running":
            job = self.fisheye.jobs[vm.create_job]
            vm.booted_at = job.created + job.pending_s + job.running_s
        return True

    def _settle_agent(self, vm: Vm, now: float) -> None:
        if vm.booted_at is None or vm.ga_up_at is not None or not vm.installs_os:
            return
        if not vm.ga_stalled and not self.stall_guest_agent and now >= vm.booted_at + vm.install_s:
            vm.ga_up_at = vm.booted_at + vm.install_s

    def _settle_updates(self, vm: Vm, now: float) -> list[tuple[Vm, str | None, str]]:
        effects = []
        for upd in vm.updates:
            if upd["applied"]:
                continue
            state = self._job_state(upd["job_id"], now)
            if state in ("pending", "running"):
                continue
            upd["applied"], upd["outcome"] = True, state
            if state == "done":
                effects += self._apply_update(vm, upd)
        return effects

    @staticmethod
    def _apply_update(vm: Vm, upd: dict) -> list[tuple[Vm, str | None, str]]:
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

    # ------------------------------------------------------------------ checks against the cluster
    def _vlan_problems(self, where: str, vlan_uuid: Any, ovs: Any) -> list[str]:
        with self.fisheye.lock:
            vlan = self.fisheye.vlans.get(vlan_uuid) if isinstance(vlan_uuid, str) else None
            vds = self.fisheye.vdses.get(vlan.vds_uuid) if vlan is not None else None
        if vlan is None or vds is None or not vds.ready:
            return [f"{where}.vlan_uuid {vlan_uuid!r} is not a network of this cluster "
                    f"(GET /api/v2/network/vds/{{vds_uuid}}/vlans lists them)"]
        if not isinstance(ovs, str) or ovs != vds.ovsbr_name:
            return [f"{where}.ovs {ovs!r} is not the bridge of network {vlan.name}: its VDS {vds.name} has "
                    f"ovsbr_name {vds.ovsbr_name}"]
        system = self.fisheye.network.vm_network_problem(vlan_uuid)     # real gear: no VM NIC on a system network
        return [f"{where}.vlan_uuid: {system}"] if system else []

    def _disk_problems(self, where: str, d: DiskSpec, policies: set[str]) -> list[str]:
        if d.type == "disk":
            if d.storage_policy_uuid in policies:
                return []
            return [f"{where}.storage_policy_uuid {d.storage_policy_uuid!r} is not a storage policy of this "
                    f"cluster (GET /api/v2/storage_policies lists them)"]
        if self.fisheye.image_by_path(d.path) is None and not (d.disabled is True and not d.path):
            return [f"{where}.path {d.path!r} is not the path of an image of this cluster (use the upload "
                    f"volume's image_path, or the path GET /api/v2/images shows)"]
        return []

    def _create_problems(self, spec: VmSpec, hosts: set[str]) -> list[str]:
        errs = list(spec.problems)
        if spec.node_ip is not None and spec.node_ip not in hosts:
            errs.append(f"node_ip {spec.node_ip!r} is not a host of this cluster")
        for i, n in enumerate(spec.nics):
            errs += self._vlan_problems(f"nics[{i}]", n.vlan_uuid, n.ovs)
        policies = {p["uuid"] for p in self.storage_policies()}
        for i, d in enumerate(spec.disks):
            errs += self._disk_problems(f"disks[{i}]", d, policies)
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
    def create_vm(self, spec: VmSpec, *, outcome: Outcome | None = None, outcome_msg: str | None = None,
                  outcome_stage: int | str | None = None, rule: str | None = None) -> dict:
        """``POST /api/v2/vms`` (the guide's fixed payload, parsed by :func:`.schema.parse_create`) ->
        ``{"job_id"}``. Every problem found is reported, joined with ``; ``. ``outcome="stuck"`` with
        ``outcome_stage`` ``"guest-agent"``: the job succeeds, but the guest agent never comes up."""
        hosts = {h.mgmt_ip for h in self.fisheye.cluster_hosts()}
        errs = self._create_problems(spec, hosts)
        ga_stall = outcome == "stuck" and str(outcome_stage or "").lower() in GA_STALL_STAGES
        with self.lock:
            other = self._same_name(spec.name)
            if other is not None:
                if not errs:
                    raise FisheyeError(EC_EXISTS, f"a VM named {spec.name} already exists ({other.uuid})")
                errs.append(f"a VM named {spec.name} already exists ({other.uuid})")
            if errs:
                raise _invalid("; ".join(errs))
            vm = self._new_vm(spec, self._place(spec.node_ip, hosts))
            vm.ga_stalled, vm.fault_rule = ga_stall, rule if ga_stall else None
            with self.fisheye.lock:
                job = self.fisheye.new_job(
                    "VM_CREATE", "CREATE_VM", "vm_create", {"vm_uuid": vm.uuid},
                    outcome=None if ga_stall else outcome, outcome_msg=outcome_msg, rule=rule,
                    resources={vm.uuid: vm.resource()},
                    message=(f"创建虚拟机 {vm.name}。\n", f"Created VM {vm.name}.\n"),
                    detail=(f"创建虚拟机: {vm.name}\nvCPU: {vm.vcpu}\n内存: {vm.memory} 字节\n",
                            f"Created VM: {vm.name}\nvCPU: {vm.vcpu}\nmemory: {vm.memory} bytes\n"),
                    data={"vm_name": vm.name, "uuid": vm.uuid})
            vm.create_job = job.job_id
            self.vms[vm.uuid] = vm
        return {"job_id": job.job_id}

    def _same_name(self, name: Any) -> Vm | None:
        """Another VM (creation pending or done) with that name, unless duplicates are allowed."""
        if not isinstance(name, str) or not name.strip() or self.allow_duplicate_names:
            return None
        return next((v for v in self.vms.values() if v.name == name and not v.failed), None)

    def _place(self, node_ip: str | None, hosts: set[str]) -> str | None:
        """The host a new VM runs on: the one asked for, else the least loaded."""
        if node_ip is not None:
            return node_ip
        load = {ip: 0 for ip in hosts}
        for v in self.vms.values():
            if not v.failed and v.node_ip in load:
                load[v.node_ip] += 1
        return min(load, key=lambda ip: (load[ip], ipaddress.IPv4Address(ip))) if load else None

    def _new_vm(self, spec: VmSpec, node_ip: str | None) -> Vm:
        vu = str(uuid.uuid4())
        nics = [{"interface_id": str(uuid.uuid4()), "mac_address": (n.mac_address or vm_mac(vu, i)).lower(),
                 "ovs": n.ovs, "vlan_uuid": n.vlan_uuid, "model": n.model, "mirror": n.mirror, "link": n.link,
                 "ip_address": None, "subnet_mask": None, "gateway": None} for i, n in enumerate(spec.nics)]
        disks = [self._new_disk(d) for d in spec.disks]
        boot_image = next((d["image_name"] for d in disks
                           if d["type"] == "cdrom" and d["image_name"] is not None and not d["disabled"]), None)
        return Vm(uuid=vu, name=spec.name, description=spec.description, vcpu=spec.vcpu, memory=spec.memory,
                  sockets=spec.sockets, cores=spec.cores, nics=nics, disks=disks, ha=spec.ha,
                  nested_virtualization=spec.nested_virtualization, cpu_model=spec.cpu_model,
                  firmware=spec.firmware, want_status=spec.status, node_ip=node_ip, bios_uuid=str(uuid.uuid4()),
                  created=self.clock.now(), created_wall=int(self.clock.wall()), create_job="",
                  flavour=guest_flavour(boot_image), install_s=float(self.os_install_s))

    def _new_disk(self, d: DiskSpec) -> dict:
        if d.type == "disk":
            cluster = self.fisheye.cluster["name"] if self.fisheye.cluster else None
            vol = str(uuid.uuid4())
            return {"type": "disk", "bus": d.bus, "name": d.name, "size": d.size,
                    "storage_policy_uuid": d.storage_policy_uuid,
                    "path": iscsi_path(cluster, self.fisheye.next_iscsi_lun()), "volume_uuid": vol,
                    "serial": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://volume/{vol}"))}
        img = self.fisheye.image_by_path(d.path)
        return {"type": "cdrom", "bus": d.bus, "path": d.path or "", "disabled": bool(d.disabled),
                "image_uuid": img.image_uuid if img else None, "image_name": img.name if img else None}

    # ------------------------------------------------------------------ read
    def existing(self, vm_uuid: str) -> Vm:
        """The VM (its creation job done); 404 ``ENOTFOUND`` otherwise."""
        with self.lock:
            vm = self.vms.get(vm_uuid)
        if vm is None or not vm.exists:
            raise FisheyeError(EC_NOT_FOUND, f"VM {vm_uuid} not found", 404)
        return vm

    def get_vm(self, vm_uuid: str) -> dict:
        with self.lock:
            return self.view(self.existing(vm_uuid))

    def list_vms(self) -> list[dict]:
        with self.lock:
            return [self.view(v) for v in self.vms.values() if v.exists]

    def by_name(self, name: str) -> Vm | None:
        with self.lock:
            return next((v for v in self.vms.values() if v.name == name and v.exists), None)

    def view(self, vm: Vm) -> dict:
        """``GET /api/v2/vms/{uuid}`` data: the guide's sample shape."""
        with self.fisheye.lock:
            vlans = {u: copy.copy(v) for u, v in self.fisheye.vlans.items()}
        return vm_view(vm, vlans, self.clock.now())

    # ------------------------------------------------------------------ update (guest network through VM tools)
    def update_vm(self, vm_uuid: str, update: VmUpdate, *, outcome: Outcome | None = None,
                  outcome_msg: str | None = None, rule: str | None = None) -> dict:
        """``PUT /api/v2/vms/{uuid}`` with the guide's body ``{"nics": [{vlan_uuid, ovs, model, mac_address,
        mirror, gateway, subnet_mask, ip_address, link}]}`` (parsed by :func:`.schema.parse_update`) ->
        ``{"job_id"}``. The address is set by the VM tools, so the guest agent must be running."""
        vm = self.existing(vm_uuid)
        errs = self._agent_problems(vm) + update.problems + self._update_problems(vm, update.nics)
        if errs:
            raise _invalid("; ".join(errs))
        out = [n.applied() for n in update.nics]
        with self.lock:
            ips = ", ".join(w.get("ip_address") or "-" for w in out)
            with self.fisheye.lock:
                job = self.fisheye.new_job(
                    "VM_UPDATE", "UPDATE_VM", "vm_update", {"vm_uuid": vm.uuid},
                    outcome=outcome, outcome_msg=outcome_msg, rule=rule,
                    resources={vm.uuid: {"type": "KVM_VM", "uuid": vm.uuid, "vm_name": vm.name,
                                         "nics": copy.deepcopy(out)}},
                    message=(f"编辑虚拟机 {vm.name} 的网卡。\n", f"Edited the NICs of VM {vm.name}.\n"),
                    detail=(f"IP 地址: {ips}\n", f"IP addresses: {ips}\n"), data={"vm_name": vm.name, "uuid": vm.uuid})
            vm.updates.append({"job_id": job.job_id, "nics": out, "applied": False, "outcome": None})
        return {"job_id": job.job_id}

    @staticmethod
    def _agent_problems(vm: Vm) -> list[str]:
        if vm.ga_running:
            return []
        return [f"the VM tools (guest agent) of VM {vm.name} are not running (ga_state {GA_NOT_RUNNING}): "
                f"its guest network cannot be configured yet"]

    def _update_problems(self, vm: Vm, nics: list[NicUpdate]) -> list[str]:
        errs: list[str] = []
        taken = self._taken_addresses(exclude_vm=vm.uuid)
        seen: set[str] = set()
        for n in nics:
            errs += self._vlan_problems(n.where, n.vlan_uuid, n.ovs)
            if not isinstance(n.mac_address, str) or vm.nic_by_mac(n.mac_address) is None:
                errs.append(f"{n.where}.mac_address {n.mac_address!r} is not a NIC of VM {vm.name} (its NICs: "
                            f"{', '.join(x['mac_address'] for x in vm.nics)}; GET /api/v2/vms/{vm.uuid} shows them)")
            iface = n.interface() if n.address else None
            if iface is None:
                continue
            addr = str(iface.ip)
            if addr in taken:
                errs.append(f"{n.where}.ip_address {addr} is already used by {taken[addr]}")
            if addr in seen:
                errs.append(f"{n.where}.ip_address {addr} is given twice")
            seen.add(addr)
        return errs

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
        """Restore :meth:`export_state` output. Guests that had taken an address take it again (event
        ``vm_address``: ping, SSH of a CloudTower guest)."""
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
            effects = [(vm, None, ip) for vm in self.vms.values() if vm.exists for ip in vm.ips]
        for vm, old, new in effects:
            self.events.emit("vm_address", vm=vm, old=old, new=new)
        return []
