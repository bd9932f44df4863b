"""VDSes and VLANs: the deployment's management / storage VDS and networks, and business ones
(``POST /api/v2/network/vds`` starts a job; VLANs are created synchronously)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from clients.ipaddr import ipv4

from ..deployment.models import BOND_MODES, DeployOperation, SimHost, ovsbr_name
from .cluster import ClusterContext
from .errors import EC_EXISTS, FisheyeError, invalid, not_found
from .jobs import Job, JobBoard

# VLAN ``type``: 3 is the guide's (a VM / business network). 1 and 2 are the simulator's choice for
# the system networks the deployment creates (management, storage).
VLAN_TYPE_MGMT, VLAN_TYPE_STORAGE, VLAN_TYPE_VM = 1, 2, 3
# The VM network every deployment leaves on the management VDS beside the system network ``mgt-network``
# (guide lines 3176-3187: the management VDS lists both; lines 1522-1532: the guide's VM sits on ``default``,
# type 3). It takes the management network's VLAN (the guide's sample: both VLAN 0).
DEFAULT_VM_NETWORK = "default"
# VDS ``type``: the guide's sample shows 1. The simulator reads it as "OVS VDS" and uses 1 for every
# VDS, the deployment's management and storage VDS included (their role shows in their VLANs).
VDS_TYPE = 1
_ROLE_ORDER = {"mgt": 0, "storage": 1}


@dataclass(frozen=True)
class VdsMember:
    """One ``hosts_associated`` entry of a VDS creation, as sent (the model checks it against the host)."""

    host_uuid: Any
    nics: Any
    data_ip: Any = None


@dataclass
class Vds:
    uuid: str
    name: str
    ovsbr_name: str
    bond_mode: str                       # "" for a single-NIC VDS without a bond
    hosts: dict[str, dict]               # host_uuid -> {"nics": [...], "data_ip": str | None}
    role: str = "business"               # mgt | storage | business (the simulator's, not shown)
    ready: bool = True                   # False while its creation job runs
    job_id: str | None = None
    description: str = ""

    @property
    def bonded(self) -> bool:
        return any(len(h["nics"]) > 1 for h in self.hosts.values()) or bool(self.bond_mode)

    @property
    def bond_name(self) -> str:
        return f"bond-m-{self.uuid.split('-')[0][:8]}" if self.bonded else ""

    def _common(self) -> dict:
        return {"bond_name": self.bond_name, "bond_type": "ovs_bond" if self.bonded else "",
                "bond_mode": self.bond_mode, "work_mode": "single", "qos_enable": False, "rb_interval": ""}

    def resource(self) -> dict:
        """The VDS as a job resource (the guide's job sample)."""
        c = self._common()
        return {"type": "NETWORK_VDS", "uuid": self.uuid, "name": self.name, "ovsbr_name": self.ovsbr_name,
                "description": self.description, "status": "created",
                "hosts_associated": {u: {"host_uuid": u, "nics_associated": list(h["nics"]), "data_ip": h["data_ip"]}
                                     for u, h in self.hosts.items()},
                "bond_name": c["bond_name"], "bond_type": c["bond_type"], "bond_mode": c["bond_mode"],
                "work_mode": c["work_mode"], "qos_enable": c["qos_enable"], "rb_interval": c["rb_interval"]}

    def view(self, vlans_count: int) -> dict:
        """``GET /api/v2/network/vds/{uuid}`` data (the guide's shape)."""
        c = self._common()
        return {"uuid": self.uuid, "bond_mode": c["bond_mode"], "bond_name": c["bond_name"],
                "bond_type": c["bond_type"], "description": self.description, "name": self.name,
                "ovsbr_name": self.ovsbr_name, "qos_enable": c["qos_enable"], "rb_interval": c["rb_interval"],
                "type": VDS_TYPE, "work_mode": c["work_mode"],
                "hosts_associated": [{"host_uuid": u, "nics_associated": list(h["nics"]), "data_ip": h["data_ip"]}
                                     for u, h in self.hosts.items()],
                "vlans_count": vlans_count}


@dataclass
class Vlan:
    uuid: str
    name: str
    vds_uuid: str
    vlan_id: int
    type: int = VLAN_TYPE_VM

    def view(self) -> dict:
        return {"uuid": self.uuid, "name": self.name, "vds_uuid": self.vds_uuid, "vlan_id": self.vlan_id,
                "type": self.type, "enable_dhcp": False, "vms_count": 0, "vm_snapshots_count": 0,
                "vm_templates_count": 0, "dhcp_config": None}

class Network:
    """``vdses`` (uuid -> :class:`Vds`) and ``vlans`` (uuid -> :class:`Vlan`)."""

    def __init__(self, ctx: ClusterContext, jobs: JobBoard):
        self.ctx = ctx
        self.jobs = jobs
        self.vdses: dict[str, Vds] = {}
        self.vlans: dict[str, Vlan] = {}
        jobs.on("vds", self._apply_vds, self._undo_vds)
        # the word the VDS API takes for LACP (profiles vds-lacp-balance-tcp / vds-lacp-lacp, mocks/profiles.py);
        # the deployment's own VDSes show it too
        self.lacp_mode = "balance-tcp"

    # ---- the deployment's VDSes and networks
    def seed(self, op: DeployOperation) -> None:
        p = op.payload or {}
        roles: dict[Any, str] = {}
        for n in p.get("networks", []):
            if isinstance(n, dict) and n.get("network_type") in ("mgt", "storage"):
                roles.setdefault(n.get("attached_vds"), n["network_type"])
        for v in p.get("vdses", []):
            if isinstance(v, dict) and v.get("name"):
                self._seed_vds(op, v, roles.get(v["name"], "business"))
        by_name = {v.name: v for v in self.vdses.values()}
        for n in p.get("networks", []):
            if isinstance(n, dict) and n.get("attached_vds") in by_name:
                self._seed_vlan(op.cluster_name, by_name[n["attached_vds"]], n)
                if n.get("network_type") == "mgt":
                    self._seed_vlan(op.cluster_name, by_name[n["attached_vds"]],
                                    {"name": DEFAULT_VM_NETWORK, "network_type": "vm", "mode": n.get("mode")})

    def _seed_vds(self, op: DeployOperation, v: dict, role: str) -> None:
        name = v["name"]
        vu = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://vds/{op.cluster_name}/{name}"))
        assoc = {}
        for a in v.get("hosts_associated") or []:
            u = a.get("host_uuid")
            if u in op.host_uuids:
                assoc[u] = {"nics": list(a.get("nics_associated") or []),
                            "data_ip": (op.effects.get(u) or {}).get("storage_ip")}
        bond = v.get("bond_mode") or ""
        bond = self.lacp_mode if bond in LACP_WORDS else bond
        self.vdses[vu] = Vds(vu, name, ovsbr_name(op.cluster_name, name), bond, assoc, role=role)

    def _seed_vlan(self, cluster_name: str, vds: Vds, n: dict) -> None:
        ids = (n.get("mode") or {}).get("network_identities") or [0]
        ntype = n.get("network_type")
        vtype = {"mgt": VLAN_TYPE_MGMT, "storage": VLAN_TYPE_STORAGE}.get(ntype, VLAN_TYPE_VM)
        name = n.get("name") or f"{ntype}-network"
        if any(v.vds_uuid == vds.uuid and v.name == name for v in self.vlans.values()):
            return
        lu = str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://vlan/{cluster_name}/{vds.name}/{name}"))
        self.vlans[lu] = Vlan(lu, name, vds.uuid, int(ids[0]) if isinstance(ids[0], int) else 0, vtype)

    # ---- VDS creation (a job)
    def _member(self, i: int, m: VdsMember, bond: str, hosts: dict[str, SimHost], entries: dict[str, dict],
                used: dict[tuple[str, str], str]) -> tuple[str, dict]:
        """One checked ``hosts_associated`` entry: ``(host uuid, {"nics", "data_ip"})``."""
        u = m.host_uuid
        h = hosts.get(u) if isinstance(u, str) else None
        if h is None:
            raise invalid(f"hosts_associated[{i}]: host_uuid {u!r} is not a host of this cluster")
        label = self.ctx.host_label(h)
        if u in entries:
            raise invalid(f"hosts_associated[{i}]: host {label} listed twice")
        nics = m.nics
        if not isinstance(nics, list) or not nics or not all(isinstance(n, str) for n in nics):
            raise invalid(f"host {label}: nics_associated must be a non-empty list of names")
        if len(set(nics)) != len(nics):
            raise invalid(f"host {label}: a NIC is listed twice in {nics}")
        for n in nics:
            nic = h.nic(n)
            if nic is None or nic.kind != "physical":
                raise invalid(f"host {label} has no NIC {n}")
            if (u, n) in used:
                raise FisheyeError(EC_EXISTS, f"NIC {n} of host {label} is already used by VDS {used[(u, n)]}")
        if len(nics) > 1 and not bond:
            raise invalid(f"host {label}: bond_mode is required with more than one NIC")
        return u, {"nics": list(nics), "data_ip": self._data_ip(label, h, m.data_ip)}

    def _data_ip(self, label: str, h: SimHost, data_ip: Any) -> str | None:
        if data_ip is not None and ipv4(data_ip) is None:
            raise invalid(f"host {label}: data_ip {data_ip!r} is not an IPv4 address")
        return str(ipv4(data_ip)) if data_ip else h.storage_ip

    def create_vds(self, name: str, bond_mode: str | None, members: list[VdsMember], *, outcome: str | None = None,
                   outcome_msg: str | None = None, rule: str | None = None) -> dict:
        hosts = {h.host_uuid: h for h in self.ctx.cluster_hosts()}
        bond = bond_mode or ""
        if bond and bond not in vds_bond_modes(self.lacp_mode):
            raise invalid(f"bond_mode {bond!r} is not one of {', '.join(vds_bond_modes(self.lacp_mode))}")
        with self.ctx.lock:
            if any(v.name == name for v in self.vdses.values()):
                raise FisheyeError(EC_EXISTS, f"a VDS named {name} already exists")
            used = {(u, n): v.name for v in self.vdses.values() for u, h in v.hosts.items() for n in h["nics"]}
            entries: dict[str, dict] = {}
            for i, m in enumerate(members):
                u, entry = self._member(i, m, bond, hosts, entries, used)
                entries[u] = entry
            vu = str(uuid.uuid4())
            vds = Vds(vu, name, ovsbr_name(self.ctx.cluster_name, vu), bond, entries, role="business", ready=False)
            job = self._vds_job(vds, hosts, outcome=outcome, outcome_msg=outcome_msg, rule=rule)
            vds.job_id = job.job_id
            self.vdses[vu] = vds
        return {"job_id": job.job_id}

    def _vds_job(self, vds: Vds, hosts: dict[str, SimHost], **fate: Any) -> Job:
        name, bond = vds.name, vds.bond_mode
        lines = "".join(f"    {hosts[u].hostname}: {', '.join(e['nics'])}\n" for u, e in vds.hosts.items())
        return self.jobs.new(
            "NETWORK_CREATE_VDS", "CREATE_VDS", "vds", {"vds_uuid": vds.uuid}, **fate,
            resources={vds.uuid: vds.resource()},
            message=(f"创建虚拟分布式交换机 {name}。\n", f"Created virtual distributed switch {name}.\n"),
            detail=(f"创建: \n虚拟分布式交换机名: {name}\n网口绑定模式: {bond or '-'}\n源负载均衡绑定平衡间隔: -\n"
                    f"关联网口: \n{lines}",
                    f"Created: \nVDS name: {name}\nbonding: {bond or '-'}\nslb rebalance interval: -\n"
                    f"Associated NICs: \n{lines}"),
            data={"name": name, "uuid": vds.uuid})

    def _apply_vds(self, job: Job) -> None:
        vds = self.vdses.get(job.args["vds_uuid"])
        if vds is None:
            return
        vds.ready = True
        for u, h in vds.hosts.items():
            host = self.ctx.deployment.host_by_uuid(u)
            if host is not None:
                host.add_bridge(vds.ovsbr_name, h["nics"])

    def _undo_vds(self, job: Job) -> None:
        vds = self.vdses.get(job.args.get("vds_uuid"))
        if vds is not None and not vds.ready:
            del self.vdses[vds.uuid]

    # ---- reads
    def _ready_vds(self, vds_uuid: str) -> Vds:
        vds = self.vdses.get(vds_uuid)
        if vds is None or not vds.ready:
            raise not_found(f"VDS {vds_uuid} not found")
        return vds

    def vlans_count(self, vds_uuid: str) -> int:
        """Every network on the VDS, the system ones included: on real gear the management VDS counts
        ``mgt-network`` and ``default`` too (CloudTower's view of it, guide lines 3176-3187: ``vlans_num: 2``), so
        on the management VDS of 存储独立 it is what was there before plus the business networks (issue 12 item 2);
        on a business VDS it equals the business networks (the guide's check, lines 884-901)."""
        return sum(1 for v in self.vlans.values() if v.vds_uuid == vds_uuid)

    def vm_network_problem(self, vlan_uuid: str) -> str | None:
        """Why a VM NIC may not sit on that network (None: it may): only VM networks (type 3) take VM NICs; the
        system networks (management, storage) do not (issue 12 item 2)."""
        vlan = self.vlans.get(vlan_uuid)
        if vlan is None or vlan.type == VLAN_TYPE_VM:
            return None
        kind = {VLAN_TYPE_MGMT: "management", VLAN_TYPE_STORAGE: "storage"}.get(vlan.type, "system")
        return (f"network {vlan.name} is a {kind} system network (type {vlan.type}); a VM NIC needs a VM network "
                f"(type {VLAN_TYPE_VM}), e.g. {DEFAULT_VM_NETWORK} on the management VDS")

    def list_vds(self) -> list[dict]:
        with self.ctx.lock:
            ready = [v for v in self.vdses.values() if v.ready]
            ready.sort(key=lambda v: _ROLE_ORDER.get(v.role, 2))    # stable: business VDSes in creation order
            return [v.view(self.vlans_count(v.uuid)) for v in ready]

    def get_vds(self, vds_uuid: str) -> dict:
        with self.ctx.lock:
            return self._ready_vds(vds_uuid).view(self.vlans_count(vds_uuid))

    def vds_by_name(self, name: str) -> Vds | None:
        with self.ctx.lock:
            return next((v for v in self.vdses.values() if v.name == name), None)

    def list_vlans(self, vds_uuid: str) -> list[dict]:
        with self.ctx.lock:
            self._ready_vds(vds_uuid)
            return [v.view() for v in self.vlans.values() if v.vds_uuid == vds_uuid]

    # ---- VLANs
    def create_vlan(self, vds_uuid: str, name: Any, vlan_id: Any, body_vds_uuid: Any = None) -> dict:
        """A VM network on a ready VDS. ``body_vds_uuid``: the body's ``vds_uuid`` (must match the URL's)."""
        with self.ctx.lock:
            vds = self._ready_vds(vds_uuid)
            if not isinstance(name, str) or not name.strip():
                raise invalid("name is required")
            if not isinstance(vlan_id, int) or isinstance(vlan_id, bool) or not 0 <= vlan_id <= 4094:
                raise invalid(f"vlan_id {vlan_id!r} must be an integer from 0 to 4094")
            if body_vds_uuid not in (None, vds_uuid):
                raise invalid(f"vds_uuid {body_vds_uuid} does not match the VDS in the URL ({vds_uuid})")
            if any(v.vds_uuid == vds_uuid and v.name == name for v in self.vlans.values()):
                raise FisheyeError(EC_EXISTS, f"a network named {name} already exists on VDS {vds.name}")
            vlan = Vlan(str(uuid.uuid4()), name, vds_uuid, vlan_id, VLAN_TYPE_VM)
            self.vlans[vlan.uuid] = vlan
            return vlan.view()


LACP_WORDS = ("balance-tcp", "lacp")    # LACP as the deploy API / plan say it, and as the older tool sent it


def check_bond_mode(bond_mode: Any) -> None:
    """The body's shape: a known bond mode word (which LACP word the API takes is the network's profile)."""
    if bond_mode not in (None, "") and bond_mode not in BOND_MODES + LACP_WORDS:
        raise invalid(f"bond_mode {bond_mode!r} is not one of {', '.join(BOND_MODES)}")


def vds_bond_modes(lacp_mode: str) -> tuple[str, ...]:
    """The bond modes the VDS API takes under profile ``vds-lacp-<lacp_mode>``."""
    return tuple(m for m in BOND_MODES if m not in LACP_WORDS) + (lacp_mode,)
