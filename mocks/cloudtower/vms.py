"""Stages 09-11 of a simulated CloudTower: VMs created through CloudTower (``import-vm``, ``clone-vm``), their NICs,
disks and volumes, their life on simulated time and their guest on the simulated network -- state only.

:class:`VmsMixin` (first among :class:`~mocks.cloudtower.models.CloudTowerModel`'s bases) holds ``ct_vms``
(:class:`CtVm`), ``ct_volumes`` (:class:`CtVolume`) and ``vm_ops`` (:class:`VmOp`: one per task a VM call started).

* **Creation.** ``import-vm`` checks every item first (the cluster CONNECTED, the host one of its hosts, every upload
  task ``SUCCESSED``, of that cluster, their names = the ``parsed_ovf`` DISK names, each ``connect_vlan_id`` a VM
  network of that cluster, addresses free), then answers each VM ``entityAsyncStatus: CREATING`` with the task
  ``Import VM <name>`` (``tower.vm_import_s``, 60 s). ``clone-vm`` (source STOPPED): ``Clone VM <name>``
  (``vm_clone_s``, 30 s), copies of every source disk. When the task SUCCESSED the VM exists with its ``status``
  (RUNNING boots it then); FAILED (an ``operation`` fault) -> the VM and its volumes disappear.
* **Boot.** VM tools read ``RUNNING`` ``tower.vm_tools_s`` (40 s) after a boot; ``tower.test_vm_tools = False``: never
  (``NOT_RUNNING``: the "never gets VM tools" fault). Profile group ``vm-nic-ip`` (``tower.vm_nic_ip``):
  ``"import"`` (default) -- once VM tools run the guest takes the IP its NIC record carries (import / clone /
  ``update-vm-nic``); ``"update"`` -- the guest takes an address only from an ``update-vm-nic`` sent while VM tools
  run. With an address: ``guest_info_ip_addresses`` and ``ips`` show it, it answers ping and the test VM's guest
  (``mocks.guest.attach_guest``: SSH root / ``Fio@Worker1``, ``fio``) comes up there; power-off / delete take it
  down, a migration keeps it.
* **Operations** (``vm_ops.py``): start / shutdown / poweroff / delete / migrate / update-vm-nic / delete-vm-volume;
  each a task whose effect applies when it ends (settled on read, in time order).
* ``get-vms`` also lists the cluster's own VMs (fisheye's ``vms`` family: the CloudTower VM ...), read-only.

Knobs (``tower = sim.state.cloudtower.tower(ip)``; snapshot tunables): ``vm_import_s``, ``vm_clone_s``,
``vm_migrate_s``, ``vm_op_s``, ``vm_tools_s``, ``test_vm_tools``, ``vm_metric_bias`` (``vm_metrics.py``). Profile
attributes (not in snapshots): ``elf_upload_first``, ``vm_nic_ip``, ``vm_delete_volumes``, ``vm_metric_names``.
"""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..vms.vm import vm_mac
from . import vm_params as P
from .errors import RestError
from .tasks import TaskFault
from .util import cuid, iso_ms
from .vm_metrics import VmMetricsMixin
from .vm_ops import VmOpsMixin
from .vm_uploads import VmUploadsMixin

TEST_VM_PREFIX = "smtx-acceptance-fio-"
GUEST_USER, GUEST_PASSWORD = "root", "Fio@Worker1"
VM_IMPORT_S, VM_CLONE_S, VM_MIGRATE_S, VM_OP_S, VM_TOOLS_S = 60.0, 30.0, 20.0, 5.0, 40.0
VM_TOOLS_VERSION = "4.0.0"
_TUNABLES = ("vm_import_s", "vm_clone_s", "vm_migrate_s", "vm_op_s", "vm_tools_s", "test_vm_tools", "vm_metric_bias")


@dataclass
class CtVolume:
    id: str
    local_id: str
    name: str
    size: int
    cluster_id: str
    created_wall: float
    vm_id: str | None = None          # mounted on (None: unmounted)


@dataclass
class CtVm:
    id: str
    local_id: str
    name: str
    cluster_id: str
    host_id: str
    vcpu: int
    sockets: int
    cores: int
    memory: int
    firmware: str
    ha: bool
    description: str
    nics: list           # {id, local_id, vlan_id, mac_address, model, enabled, mirror, ip_address, subnet_mask, gateway, guest_ip}
    disks: list          # {id, type DISK|CD_ROM, bus, boot, volume_id, name}
    want_status: str
    task_id: str
    created_wall: float
    ready: bool = False
    status: str = "STOPPED"
    booted_at: float | None = None    # simulated s
    tools_up_at: float | None = None  # simulated s (None: VM tools not running)
    ever_tools: bool = False
    migrations: list = field(default_factory=list)   # {"start", "end", "ok"} (simulated s)


@dataclass
class VmOp:
    task_id: str
    kind: str            # create | start | shutdown | poweroff | delete | migrate | nic | delete-volume
    target: str          # the VM (or volume) id
    args: dict = field(default_factory=dict)
    applied: bool = False


def _table(cls, rows) -> dict:
    known = {f.name for f in dataclasses.fields(cls)}
    key = "task_id" if cls is VmOp else "id"
    return {r[key]: cls(**{k: v for k, v in r.items() if k in known}) for r in rows or []}


class VmsMixin(VmUploadsMixin, VmOpsMixin, VmMetricsMixin):
    """See the module doc."""

    def _init_vms(self) -> None:
        self.vm_import_s, self.vm_clone_s, self.vm_migrate_s = VM_IMPORT_S, VM_CLONE_S, VM_MIGRATE_S
        self.vm_op_s, self.vm_tools_s = VM_OP_S, VM_TOOLS_S
        self.test_vm_tools = True
        self.vm_metric_bias = 1.0
        self.elf_upload_first = "chunk"          # profile group elf-upload
        self.vm_nic_ip = "import"                # vm-nic-ip
        self.vm_delete_volumes = "with-vm"       # vm-delete-volumes
        self.vm_metric_names = "guessed"         # vm-metric-names
        self.ct_vms: dict[str, CtVm] = {}
        self.ct_volumes: dict[str, CtVolume] = {}
        self.vm_ops: dict[str, VmOp] = {}
        self._vm_guests: dict[str, str] = {}     # guest IP up on the network -> VM id

    # ================================================================== cluster facts
    def _cluster_hosts(self, cluster_id: str) -> dict[str, dict]:
        return {h["id"]: h for h in self.list_hosts() if h["cluster"]["id"] == cluster_id}

    def _cluster_vm_vlans(self, cluster_id: str) -> dict[str, dict]:
        vds = {v["id"] for v in self.list_vdses() if (v.get("cluster") or {}).get("id") == cluster_id}
        return {v["id"]: v for v in self.list_vlans() if (v.get("vds") or {}).get("id") in vds}

    def _taken_ips(self, exclude_vm: str | None = None) -> dict[str, str]:
        taken: dict[str, str] = {}
        for c, info in self._connected():
            for h in info.get("hosts", []):
                taken[h["management_ip"]] = f"host {h['name']}"
                if h.get("data_ip"):
                    taken[h["data_ip"]] = f"host {h['name']} (storage)"
            if info.get("management_vip"):
                taken[info["management_vip"]] = f"the VIP of {c.name}"
        taken[self.ip] = "CloudTower"
        for v in self._fisheye_vms():
            for ip in v["ips"]:
                taken[ip] = f"VM {v['name']}"
        for vm in self.ct_vms.values():
            if vm.id != exclude_vm:
                for n in vm.nics:
                    for ip in (n.get("ip_address"), n.get("guest_ip")):
                        if ip:
                            taken[ip] = f"VM {vm.name}"
        return taken

    def _check_nics(self, where: str, nics: list[dict], cluster_id: str, taken: dict[str, str]) -> None:
        vlans = self._cluster_vm_vlans(cluster_id)
        for j, n in enumerate(nics):
            vid = n.get("connect_vlan_id")
            if vid is not None:
                v = vlans.get(vid)
                if v is None:
                    raise RestError(400, f"{where}[{j}].connect_vlan_id: {vid!r} is not a VM network of this cluster")
                if v.get("type") != "VM" or v.get("entityAsyncStatus") == "CREATING":
                    raise RestError(400, f"{where}[{j}].connect_vlan_id: {v['name']} is a {v.get('type')} network, "
                                         f"not a VM network")
            ip = n.get("ip_address")
            if ip and ip in taken:
                raise RestError(400, f"{where}[{j}].ip_address: {ip} is already used by {taken[ip]}")
            if ip:
                taken[ip] = "another NIC of this request"

    def _pick_host(self, where: str, host_id: str | None, cluster_id: str) -> str:
        hosts = self._cluster_hosts(cluster_id)
        if host_id is not None and host_id != "AUTO_SCHEDULE":
            if host_id not in hosts:
                raise RestError(400, f"{where}.host_id: {host_id!r} is not a host of this cluster")
            return host_id
        if not hosts:
            raise RestError(400, f"{where}: the cluster has no hosts CloudTower knows yet")
        load = {h: sum(1 for v in self.ct_vms.values() if v.host_id == h) for h in hosts}
        return min(hosts, key=lambda h: (load[h], hosts[h]["name"]))

    # ================================================================== creation
    def _vm_records(self, it: dict, cluster_id: str, host_id: str, disks: list[tuple[dict, int | None]],
                    nics: list[dict], macs: list[str]) -> CtVm:
        """A new :class:`CtVm` (not yet registered) with one volume per DISK entry of ``disks`` ((disk, size))."""
        vid = self._new_id("vm")
        local = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://ct-vm/{vid}"))
        now = self.clock.wall()
        vm_disks = []
        for j, (d, size) in enumerate(disks):
            vol = None
            if d["type"] == "DISK":
                vol = CtVolume(self._new_id("vm-volume"), str(uuid.uuid5(uuid.NAMESPACE_URL, f"{local}/vol/{j}")),
                               d["name"], int(size or 0), cluster_id, now, vid)
                self.ct_volumes[vol.id] = vol
            vm_disks.append({"id": self._new_id("vm-disk"), "type": d["type"], "bus": d["bus"], "boot": d["boot"],
                             "volume_id": vol.id if vol else None, "name": d["name"]})
        vm_nics = []
        for j, n in enumerate(nics):
            vm_nics.append({"id": self._new_id("vm-nic"), "local_id": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                                        f"{local}/nic/{j}")),
                            "vlan_id": n.get("connect_vlan_id"), "mac_address": n.get("mac_address") or
                            (macs[j] if j < len(macs) and macs[j] else vm_mac(local, j)),
                            "model": n.get("model", "VIRTIO"), "enabled": n.get("enabled", True),
                            "mirror": n.get("mirror", False), "ip_address": n.get("ip_address"),
                            "subnet_mask": n.get("subnet_mask"), "gateway": n.get("gateway"), "guest_ip": None})
        vcpu = it["vcpu"]
        cores = it.get("cpu_cores") or (it["cores"] if vcpu == it["vcpu0"] else 1)
        if vcpu % cores:
            cores = 1
        return CtVm(vid, local, it["name"], cluster_id, host_id, vcpu, vcpu // cores, cores, it["memory"],
                    it.get("firmware", "BIOS"), bool(it.get("ha", True)), it.get("description", ""), vm_nics, vm_disks,
                    it.get("status", "STOPPED"), "", now)

    def _start_creation(self, vm: CtVm, kind: str, running_s: float, user_id: str | None,
                        fault: TaskFault | None) -> dict:
        verb = "Import" if kind == "import" else "Clone"
        t = self._task(description=f"{verb} VM {vm.name}", key=f"{kind}_vm", resource_type="Vm", resource_id=vm.id,
                       mutation=f"{kind}Vm", args={"name": vm.name, "cluster_id": vm.cluster_id},
                       running_s=max(0.0, float(running_s) - self.task_pending), user_id=user_id,
                       cluster_id=vm.cluster_id, fault=fault)
        vm.task_id = t.id
        self.ct_vms[vm.id] = vm
        self.vm_ops[t.id] = VmOp(t.id, "create", vm.id)
        return {"data": self.vm_view(vm), "task_id": t.id}

    def _import_check(self, i: int, it: dict, taken: dict[str, str]) -> tuple:
        c = self._vm_cluster(it["cluster_id"], f"[{i}].cluster_id")
        host = self._pick_host(f"[{i}]", it.get("host_id"), c.id)
        ovf = it["parsed_ovf"]
        names = sorted(d["name"] for d in ovf["disks"] if d["type"] == "DISK")
        uploaded = []
        for tid in it["upload_tasks"]:
            t = self.upload_tasks.get(tid)
            if t is None or t.resource_type not in ("VM_VOLUME_VMDK", "VM_VOLUME_QCOW2", "VM_VOLUME_RAW"):
                raise RestError(400, f"[{i}].upload_tasks: no VM disk upload task {tid!r}")
            if t.status != "SUCCESSED":
                raise RestError(400, f"[{i}].upload_tasks: upload task {tid} ({t.args.get('name')}) is {t.status} "
                                     f"({t.received} of {t.total_chunks} chunks)")
            if t.args.get("cluster_id") != c.id:
                raise RestError(400, f"[{i}].upload_tasks: upload task {tid} was uploaded to another cluster")
            uploaded.append(t.args.get("name"))
        if sorted(uploaded) != names:
            raise RestError(400, f"[{i}]: the uploaded files {sorted(uploaded)} are not the OVF's disks {names}")
        self._check_nics(f"[{i}].vm_nics", it["vm_nics"], c.id, taken)
        return c, host

    def import_vms(self, items: list, user_id: str | None, fault: TaskFault | None = None) -> list[dict]:
        """``import-vm``: every item checked first (all or nothing), then one VM and one task each."""
        with self.lock:
            specs = [P.import_item(i, it) for i, it in enumerate(items)]
            taken = self._taken_ips()
            checked = [self._import_check(i, it, taken) for i, it in enumerate(specs)]
            out = []
            for it, (c, host) in zip(specs, checked):
                ovf = it["parsed_ovf"]
                it.setdefault("vcpu", ovf["vcpu"])
                it.setdefault("memory", ovf["memory"])
                it.update(vcpu0=ovf["vcpu"], cores=ovf["cpu"]["cores"], firmware=ovf["firmware"])
                it.setdefault("description", ovf.get("description", ""))
                disks = [({"type": d["type"], "bus": d["bus"], "boot": j, "name": f"{it['name']}-{_stem(d['name'])}"
                           if d["type"] == "DISK" else d["name"]}, d["size"]) for j, d in enumerate(ovf["disks"])]
                disks += [({"type": "DISK", "bus": d["bus"], "boot": d["boot"], "name": d["name"]}, d["size"])
                          for d in it["new_disks"]]
                macs = [n.get("mac") for n in ovf["nics"]]
                vm = self._vm_records(it, c.id, host, disks, it["vm_nics"], macs)
                out.append(self._start_creation(vm, "import", self.vm_import_s, user_id, fault))
            return out

    def clone_vms(self, items: list, user_id: str | None, fault: TaskFault | None = None) -> list[dict]:
        """``clone-vm``: the source must be STOPPED; the clone gets copies of every source disk."""
        with self.lock:
            specs = [P.clone_item(i, it) for i, it in enumerate(items)]
            taken, checked = self._taken_ips(), []
            for i, it in enumerate(specs):
                src = self._own_vm(it["src_vm_id"], f"[{i}].src_vm_id")
                if src.status != "STOPPED" or self._pending_op(src.id):
                    raise RestError(400, f"[{i}].src_vm_id: VM {src.name} must be STOPPED (and idle) to be cloned")
                if it.get("cluster_id", src.cluster_id) != src.cluster_id:
                    raise RestError(400, f"[{i}].cluster_id: a clone stays in its source's cluster")
                self._vm_cluster(src.cluster_id, f"[{i}].cluster_id")
                host = self._pick_host(f"[{i}]", it.get("host_id"), src.cluster_id)
                nics = it["vm_nics"] if it["vm_nics"] is not None else [
                    {"connect_vlan_id": n["vlan_id"], "model": n["model"], "enabled": n["enabled"]} for n in src.nics]
                self._check_nics(f"[{i}].vm_nics", nics, src.cluster_id, taken)
                checked.append((src, host, nics))
            out = []
            for it, (src, host, nics) in zip(specs, checked):
                it.setdefault("vcpu", src.vcpu)
                it.setdefault("memory", src.memory)
                it.update(vcpu0=src.vcpu, cores=src.cores)
                it.setdefault("firmware", src.firmware)
                it.setdefault("description", src.description)
                it.setdefault("ha", src.ha)
                disks = [({"type": d["type"], "bus": d["bus"], "boot": d["boot"],
                           "name": _clone_name(self.ct_volumes.get(d["volume_id"]), src.name, it["name"], d["name"])},
                          self.ct_volumes[d["volume_id"]].size if d["volume_id"] in self.ct_volumes else 0)
                         for d in src.disks]
                vm = self._vm_records(it, src.cluster_id, host, disks, nics, [])
                out.append(self._start_creation(vm, "clone", self.vm_clone_s, user_id, fault))
            return out

    # ================================================================== lookups
    def _own_vm(self, vm_id: Any, where: str) -> CtVm:
        vm = self.ct_vms.get(vm_id) if isinstance(vm_id, str) else None
        if vm is None:
            if any(v["id"] == vm_id for v in self._fisheye_vms()):
                raise RestError(400, f"{where}: {vm_id} is a VM of the cluster itself (read-only in the simulator)")
            raise RestError(400, f"{where}: no VM with id {vm_id!r}")
        return vm

    def _pending_op(self, target: str) -> VmOp | None:
        now = self.clock.now()
        for op in self.vm_ops.values():
            if op.target == target and not op.applied:
                t = self.tasks.get(op.task_id)
                if t is not None and t.status(now) not in ("SUCCESSED", "FAILED"):
                    return op
        return None

    def _fisheye_vms(self) -> list[dict]:
        """The cluster's own VMs (fisheye's ``vms`` family) as CloudTower lists them."""
        sim = getattr(self.smtx, "sim", None)
        model = sim.state.families.get("vms") if sim is not None else None
        if model is None:
            return []
        out = []
        for c, _info in self._connected():
            hosts = {h["management_ip"]: h for h in self._cluster_hosts(c.id).values()}
            with model.lock:
                vms = [v for v in model.vms.values() if v.exists]
            for v in vms:
                h = hosts.get(v.node_ip) or {}
                running = v.want_status == "running"
                out.append({"id": cuid("smtx-sim://cloudtower", self.ip, "fisheye-vm", c.id, v.uuid), "local_id": v.uuid,
                            "name": v.name, "cluster": {"id": c.id, "name": c.name}, "running": running,
                            "tools": running and v.ga_running, "ips": list(v.ips), "vcpu": v.vcpu,
                            "sockets": v.sockets, "cores": v.cores, "memory": v.memory, "firmware": v.firmware,
                            "ha": v.ha, "description": v.description or "",
                            "host": {"id": h.get("id"), "name": h.get("name"), "management_ip": v.node_ip},
                            "created_wall": v.created_wall})
        return out

    # ================================================================== views
    def vm_view(self, vm: CtVm) -> dict:
        hosts = self._cluster_hosts(vm.cluster_id)
        h = hosts.get(vm.host_id) or {"id": vm.host_id, "name": None, "management_ip": None}
        c = self.clusters.get(vm.cluster_id)
        tools = vm.status == "RUNNING" and vm.tools_up_at is not None
        op = self._pending_op(vm.id)
        busy = ("CREATING" if not vm.ready else "DELETING" if op and op.kind == "delete" else
                "UPDATING" if op else None)
        ips = [n["guest_ip"] for n in vm.nics if n.get("guest_ip")] if tools else []
        size = sum(self.ct_volumes[d["volume_id"]].size for d in vm.disks if d["volume_id"] in self.ct_volumes)
        return _vm_base(vm.id, vm.local_id, vm.name, vm.description, vm.status if vm.ready else "STOPPED") | {
            "vm_tools_status": "RUNNING" if tools else "NOT_RUNNING",
            "vm_tools_version": VM_TOOLS_VERSION if vm.ever_tools else None,
            "guest_os_type": "LINUX" if vm.ever_tools else "UNKNOWN", "ips": ",".join(ips),
            "hostname": vm.name if tools else None, "os": "Rocky Linux 9" if vm.ever_tools else None,
            "host": {"id": h["id"], "name": h["name"], "management_ip": h["management_ip"]},
            "node_ip": h["management_ip"] or "", "cluster": {"id": vm.cluster_id, "name": c.name if c else None},
            "vm_nics": [{"id": n["id"]} for n in vm.nics], "vm_disks": [{"id": d["id"]} for d in vm.disks],
            "vcpu": vm.vcpu, "cpu": {"sockets": vm.sockets, "cores": vm.cores}, "memory": vm.memory,
            "firmware": vm.firmware, "ha": vm.ha, "entityAsyncStatus": busy, "size": size, "provisioned_size": size,
            "local_created_at": iso_ms(vm.created_wall)}

    def _fisheye_vm_view(self, v: dict) -> dict:
        return _vm_base(v["id"], v["local_id"], v["name"], v["description"], "RUNNING" if v["running"] else "STOPPED") | {
            "vm_tools_status": "RUNNING" if v["tools"] else "NOT_RUNNING",
            "vm_tools_version": VM_TOOLS_VERSION if v["tools"] else None,
            "guest_os_type": "LINUX" if v["tools"] else "UNKNOWN", "ips": ",".join(v["ips"]) if v["tools"] else "",
            "hostname": None, "os": None, "host": v["host"], "node_ip": v["host"]["management_ip"] or "",
            "cluster": v["cluster"], "vm_nics": [], "vm_disks": [], "vcpu": v["vcpu"],
            "cpu": {"sockets": v["sockets"], "cores": v["cores"]}, "memory": v["memory"], "firmware": v["firmware"],
            "ha": v["ha"], "entityAsyncStatus": None, "size": 0, "provisioned_size": 0,
            "local_created_at": iso_ms(v["created_wall"])}

    def list_ct_vms(self) -> list[dict]:
        with self.lock:
            own = [self.vm_view(vm) for vm in self.ct_vms.values()]
            return [self._fisheye_vm_view(v) for v in self._fisheye_vms()] + own

    def list_vm_nics(self) -> list[dict]:
        with self.lock:
            out = []
            for vm in self.ct_vms.values():
                vlans = self._cluster_vm_vlans(vm.cluster_id)
                tools = vm.status == "RUNNING" and vm.tools_up_at is not None
                for j, n in enumerate(vm.nics):
                    v = vlans.get(n["vlan_id"])
                    out.append({"id": n["id"], "local_id": n["local_id"], "vm": {"id": vm.id, "name": vm.name},
                                "vlan": {"id": v["id"], "name": v["name"]} if v else None, "order": j,
                                "ip_address": n["ip_address"], "subnet_mask": n["subnet_mask"], "gateway": n["gateway"],
                                "guest_info_ip_addresses": [n["guest_ip"]] if tools and n.get("guest_ip") else [],
                                "guest_info_ip_addresses_v6": [], "mac_address": n["mac_address"],
                                "enabled": n["enabled"], "mirror": n["mirror"], "model": n["model"], "type": "VLAN",
                                "interface_id": f"ens{4 + j}"})
            return out

    def _devices(self, vm: CtVm) -> dict[str, str]:
        """Disk id -> guest device: per bus in disk order (VIRTIO vda, vdb ...; SCSI / IDE / USB sda ...)."""
        seen: dict[str, int] = {}
        out = {}
        for d in vm.disks:
            prefix = "vd" if d["bus"] == "VIRTIO" else "sd" if d["type"] == "DISK" else "sr"
            n = seen.get(prefix, 0)
            seen[prefix] = n + 1
            out[d["id"]] = f"{prefix}{chr(ord('a') + n)}" if prefix != "sr" else f"sr{n}"
        return out

    def list_vm_disks(self) -> list[dict]:
        with self.lock:
            out = []
            for vm in self.ct_vms.values():
                dev = self._devices(vm)
                for d in vm.disks:
                    vol = self.ct_volumes.get(d["volume_id"])
                    out.append({"id": d["id"], "vm": {"id": vm.id, "name": vm.name}, "device": dev[d["id"]],
                                "vm_volume": {"id": vol.id, "name": vol.name} if vol else None, "boot": d["boot"],
                                "bus": d["bus"], "type": d["type"], "disabled": False})
            return out

    def list_vm_volumes(self) -> list[dict]:
        with self.lock:
            disks = {d["volume_id"]: d["id"] for vm in self.ct_vms.values() for d in vm.disks if d["volume_id"]}
            out = []
            for v in self.ct_volumes.values():
                c = self.clusters.get(v.cluster_id)
                op = self._pending_op(v.id)
                out.append({"id": v.id, "local_id": v.local_id, "name": v.name, "size": v.size,
                            "mounting": v.vm_id is not None, "cluster": {"id": v.cluster_id, "name": c.name if c else None},
                            "vm_disks": [{"id": disks[v.id]}] if v.vm_id and v.id in disks else [],
                            "path": f"iscsi://iqn.2016-02.com.smartx:system:zbs-iscsi-datastore-sim/{v.local_id}",
                            "sharing": False, "elf_storage_policy": "REPLICA_2_THIN_PROVISION",
                            "local_created_at": iso_ms(v.created_wall), "description": "",
                            "entityAsyncStatus": "DELETING" if op else None, "type": "KVM_VOLUME_ISCSI"})
            return out

    # ================================================================== snapshot
    def export_vms(self) -> dict:
        with self.lock:
            return {"vms": [dataclasses.asdict(v) for v in self.ct_vms.values()],
                    "volumes": [dataclasses.asdict(v) for v in self.ct_volumes.values()],
                    "ops": [dataclasses.asdict(o) for o in self.vm_ops.values()],
                    "guests": dict(self._vm_guests),
                    "tunables": {k: getattr(self, k) for k in _TUNABLES}}

    def import_vms_state(self, saved: dict) -> None:
        with self.lock:
            self.ct_vms = _table(CtVm, saved.get("vms"))
            self.ct_volumes = _table(CtVolume, saved.get("volumes"))
            self.vm_ops = _table(VmOp, saved.get("ops"))
            for k, v in (saved.get("tunables") or {}).items():
                if k in _TUNABLES:
                    setattr(self, k, bool(v) if k == "test_vm_tools" else float(v))
            self._vm_guests = {}
            want = {ip: vid for ip, vid in (saved.get("guests") or {}).items() if vid in self.ct_vms}
            self._vm_network(want)             # the guests that were up come up again


def _vm_base(vid: str, local_id: str, name: str, description: str, status: str) -> dict:
    return {"id": vid, "local_id": local_id, "name": name, "description": description, "status": status,
            "in_recycle_bin": False, "internal": False, "protected": False, "nested_virtualization": False,
            "cpu_model": "host_passthrough", "clock_offset": "UTC", "win_opt": False, "out_uninstall_usb": [],
            "labels": []}


def _stem(filename: str) -> str:
    base = filename.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def _clone_name(vol: CtVolume | None, src_name: str, new_name: str, fallback: str) -> str:
    name = vol.name if vol else fallback
    return new_name + name[len(src_name):] if name.startswith(src_name) else f"{new_name}-{name}"
