"""SMTX OS deployment API state (guide §01 scan, §02 init cluster).

Models only -- no HTTP. ``responses.py`` maps routes onto these.

* :class:`SimHost`          one freshly installed SMTX OS host (NICs, disks, hardware).
* :class:`DeployOperation`  one ``POST /api/v2/deployment/cluster``: a long operation
  whose progress is computed from simulated time on every read (no threads).
* :class:`DeploymentModel`  the hosts of a simulated world plus the operations, with the
  payload validation a real installer would do.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import ipaddress
import itertools
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import unquote

from ..core import SimClock, redact

DEFAULT_DEPLOY_TOKEN = "e79b85fc18b7402fbcc0391fe8d7d24c"

# Error codes used by the simulated deployment API (the vendor's own codes are not
# documented; these are the simulator's, stable for tests).
EC_UNAUTHORIZED = "EUNAUTHORIZED"        # 401: missing / wrong x-smartx-token
EC_BAD_REQUEST = "EBADREQUEST"           # 400: body is not a JSON object
EC_INVALID = "EINVALIDARGUMENT"          # 400: payload failed validation
EC_DEPLOYING = "EDEPLOYING"              # 409: a deployment is running
EC_DEPLOYED = "EALREADYDEPLOYED"         # 409: host(s) already deployed
EC_NO_DEPLOYMENT = "EDEPLOYNOTFOUND"     # 400: deploy_status for a host without a deployment
EC_DEPLOY_FAILED = "EDEPLOYFAILED"       # deploy_status body after a failed run (finished_status="error")
EC_INTERNAL = "EINTERNAL"                # 500

# Deployment stages: (stage_info name, realistic duration in simulated seconds); total 15 min.
# The first name is the guide's; the rest are plausible SMTX OS install steps (invented).
DEPLOY_STAGES: tuple[tuple[str, float], ...] = (
    ("prepare_network_and_config_file", 60),
    ("check_host_environment", 30),
    ("config_host_network", 90),
    ("config_hostname_and_time", 30),
    ("init_zookeeper", 60),
    ("init_mongodb", 75),
    ("format_disks_and_partitions", 120),
    ("init_zbs_meta", 90),
    ("init_zbs_chunk", 120),
    ("start_elf_services", 90),
    ("start_management_services", 105),
    ("finish_deployment", 30),
)

BOND_MODES = ("active-backup", "balance-slb", "balance-tcp")

# --------------------------------------------------------------------------- hardware templates
CPU = {
    "arch": "x86_64", "brand": "AMD EPYC 7K62 48-Core Processor", "cores_per_socket": 24,
    "flags": ("fpu, vme, de, pse, tsc, msr, pae, mce, cx8, apic, sep, mtrr, pge, mca, cmov, pat, pse36, "
              "clflush, mmx, fxsr, sse, sse2, ht, syscall, nx, mmxext, fxsr_opt, pdpe1gb, rdtscp, lm, "
              "constant_tsc, rep_good, nopl, tsc_reliable, nonstop_tsc, cpuid, extd_apicid, pni, pclmulqdq, "
              "ssse3, fma, cx16, sse4_1, sse4_2, x2apic, movbe, popcnt, aes, xsave, avx, f16c, rdrand, "
              "hypervisor, lahf_lm, cmp_legacy, svm, extapic, cr8_legacy, abm, sse4a, misalignsse, "
              "3dnowprefetch, osvw, topoext, ssbd, ibrs, ibpb, vmmcall, fsgsbase, bmi1, avx2, smep, bmi2, "
              "rdseed, adx, smap, clflushopt, clwb, sha_ni, xsaveopt, xsavec, xgetbv1, xsaves, clzero, "
              "wbnoinvd, arat, npt, svm_lock, nrip_save, vmcb_clean, flushbyasid, decodeassists, umip, rdpid, "
              "overflow_recov, succor"),
    "hz_advertised": "2.4790 GHz", "hz_advertised_raw": [2479000000, 0], "logical_cores": 24,
    "num_cores": 24, "physical_cores": 24, "sockets": 1, "threads_per_core": 1, "vendor": "AuthenticAMD",
}
MEMORY_TOTAL = 134654275584

BOOT_DISK = ("sda", "boot", "ssd", 515396075520, "SSD")
TB16 = 1759218604032          # "1.6 TB" NVMe as captured
HDD2T = 2199023255552
SSD600G = 644245094400
SSD1T = 1099511627776

# name -> non-boot disks: (drive, suggested function, kind, size, type). Boot SSD ``sda`` is added to all.
DISK_LAYOUTS: dict[str, tuple[tuple[str, str, str, int, str], ...]] = {
    # hybrid, tiered: NVMe cache + HDD data (scan-host-response.json)
    "nvme+hdd": (("nvme0n1", "cache", "nvme", TB16, "SSD"), ("nvme0n2", "cache", "nvme", TB16, "SSD"),
                 ("sdb", "data", "hdd", HDD2T, "HDD"), ("sdc", "data", "hdd", HDD2T, "HDD"),
                 ("sdd", "data", "hdd", HDD2T, "HDD"), ("sde", "data", "hdd", HDD2T, "HDD")),
    # all-flash: SSDs of two sizes (deploy-payloads-by-disk-layout.json, first two cases)
    "ssd-mixed-sizes": (("sdb", "data", "ssd", SSD600G, "SSD"), ("sdc", "data", "ssd", SSD600G, "SSD"),
                        ("sdd", "data", "ssd", SSD1T, "SSD"), ("sde", "data", "ssd", SSD1T, "SSD")),
    # NVMe cache + SSD data (deploy-payloads-by-disk-layout.json, third case)
    "nvme+ssd": (("nvme0n1", "cache", "nvme", SSD600G, "SSD"), ("nvme0n2", "cache", "nvme", SSD600G, "SSD"),
                 ("sdb", "data", "ssd", SSD1T, "SSD"), ("sdc", "data", "ssd", SSD1T, "SSD")),
}
ARCH_DEFAULT_LAYOUT = {"hybrid-tiered": "nvme+hdd", "allflash-flat": "ssd-mixed-sizes"}
DISK_MODELS = {"nvme": "VMware Virtual NVMe Disk", "hdd": "VMware_Virtual_SATA_Hard_Drive", "ssd": "Virtual_disk"}


def _h(*parts: object) -> bytes:
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()


def link_local(mac: str) -> str:
    """EUI-64 IPv6 link-local address of a MAC, as the scan prints it."""
    b = bytearray(int(x, 16) for x in mac.split(":"))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + eui))


def ovsbr_name(cluster_name: str | None, vds_name: str) -> str:
    """The OVS bridge of a VDS (``ovsbr-`` + 9 characters, as ``ovsbr-azpjnos8v`` in the guide): the
    same on every host of the cluster, so the fisheye VDS ``ovsbr_name`` matches the hosts' scan."""
    return "ovsbr-" + "".join("abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]
                              for b in _h("ovsbr", cluster_name or "", vds_name)[:9])


def local_mac(*seed: object) -> str:
    b = bytearray(_h("mac", *seed)[:6])
    b[0] = (b[0] | 0x02) & 0xFE                   # locally administered, unicast
    return ":".join(f"{x:02x}" for x in b)


# --------------------------------------------------------------------------- NIC / disk / host
@dataclass
class Nic:
    name: str
    hwaddr: str
    pci_slot_name: str | None = None
    speed: int | None = None
    physical_link_up: bool = True
    running: bool = True
    up: bool = True
    mtu: int = 1500
    ipv4: str | None = None
    ipv6: str | None = None
    rdma: bool = False
    ibdev: str | None = None
    kind: str = "physical"              # physical | bridge | port (not shown by the API)

    def scan(self) -> dict:
        return {"hwaddr": self.hwaddr, "ibdev": self.ibdev, "ipv4": self.ipv4, "ipv6": self.ipv6,
                "mtu": self.mtu, "name": self.name, "pci_slot_name": self.pci_slot_name,
                "physical_link_up": self.physical_link_up, "rdma": self.rdma, "running": self.running,
                "speed": self.speed, "up": self.up}

    def set_link(self, up: bool) -> None:
        """Cable plugged (True) or pulled (False)."""
        self.physical_link_up = self.running = bool(up)
        if self.kind == "physical":
            self.ipv6 = link_local(self.hwaddr) if up else None


@dataclass
class Disk:
    drive: str
    function: str
    model: str
    serial: str
    size: int
    type: str

    def scan(self) -> dict:
        return {"drive": self.drive, "function": self.function, "model": self.model, "serial": self.serial,
                "size": self.size, "type": self.type}


@dataclass
class SimHost:
    mgmt_ip: str
    host_uuid: str
    sn: str
    nics: list[Nic]
    disks: list[Disk]
    hostname: str = "localhost.localdomain"
    planned_hostname: str | None = None
    storage_ip: str | None = None
    planned_storage_ip: str | None = None
    mgmt_nics: tuple[str, ...] = ()
    storage_nics: tuple[str, ...] = ()
    bmc_ip: str | None = None
    deployed: bool = False
    is_master: bool | None = None
    vhost: bool = True
    cluster_name: str | None = None
    version: str = "6.2.0"
    patch_version: str = "P4"
    memory_total: int = MEMORY_TOTAL

    # ---- lookup / mutation helpers for tests
    def nic(self, name: str) -> Nic | None:
        return next((n for n in self.nics if n.name == name), None)

    def disk(self, drive: str) -> Disk | None:
        return next((d for d in self.disks if d.drive == drive), None)

    def remove_nic(self, name: str) -> None:
        self.nics = [n for n in self.nics if n.name != name]

    def set_link(self, name: str, up: bool) -> None:
        nic = self.nic(name)
        if nic is None:
            raise KeyError(f"{self.mgmt_ip} has no NIC {name}")
        nic.set_link(up)

    @property
    def boot_disks(self) -> list[Disk]:
        return [d for d in self.disks if d.function == "boot"]

    def first_up(self, names: Iterable[str]) -> Nic | None:
        for name in names:
            n = self.nic(name)
            if n is not None and n.physical_link_up and n.ipv6:
                return n
        return None

    @property
    def is_all_flash(self) -> bool:
        return all(d.type == "SSD" for d in self.disks)

    def scan(self, host_ip: str | None = None) -> dict:
        """``data`` of ``GET /api/v2/deployment/host`` (same keys/types as the captured example)."""
        role = "master" if (self.is_master or not self.deployed) else "storage"
        return {
            "arch": "x86_64",
            "cgroup_profile_env": {
                "cpu_arch": "x86_64", "cpu_vendor": CPU["vendor"], "deployment_env": None,
                "enable_lsm_io_threads_state": None, "is_hygon_hct": False, "is_metro": False,
                "is_nvme_over_rdma": False, "is_nvme_over_tcp": False, "is_rdma": False,
                "is_vhost": self.vhost, "is_vmware_by_dmidecode": True, "memory_total": self.memory_total,
                "node_role": role,
                "numa_info": {"numa_nodes": [{"cpus": [[i] for i in range(CPU["logical_cores"])],
                                              "free_mem_mb": 127369, "id": 0, "mem_size_mb": 128416}]},
                "partition_total": 0, "platform": "kvm", "specified_mem_limits": {},
                "vm_min_free_bytes": 46963712, "zbs_spec": "normal",
            },
            "cpu": copy.deepcopy(CPU),
            "disks": [d.scan() for d in sorted(self.disks, key=lambda d: d.drive)],
            "distribution": "openeuler",
            "host_ip": host_ip or self.mgmt_ip,
            "host_uuid": self.host_uuid,
            "hostname": self.hostname,
            "ifaces": [n.scan() for n in self.nics],
            "ipmi_ip": None,
            "is_all_flash": self.is_all_flash,
            "is_os_in_raid1": False,
            "is_os_in_single_disk": True,
            "patch_version": self.patch_version,
            "product": "SMTXOS",
            "sn": self.sn,
            "status": "disabled",
            "version": self.version,
            "zbs_spec": "normal",
            "zbs_spec_valid": True,
        }

    def addresses_v6(self) -> set[str]:
        return {str(ipaddress.ip_address(n.ipv6)) for n in self.nics if n.ipv6}

    def apply_deployment(self, fx: dict, cluster_name: str) -> None:
        """What a successful init leaves behind (compare scan-host-response.json)."""
        self.deployed = True
        self.cluster_name = cluster_name
        self.hostname = fx["hostname"]
        self.is_master = fx["is_master"]
        self.storage_ip = fx.get("storage_ip")
        self.vhost = fx.get("vhost", self.vhost)
        for drive, function in fx["disks"].items():
            d = self.disk(drive)
            if d is not None:
                d.function = function
        for n in self.nics:
            if n.kind == "physical" and n.ipv4 == self.mgmt_ip:
                n.ipv4 = None
        self.nics = [n for n in self.nics if n.kind == "physical"]
        extra: list[Nic] = []
        for vds_name, nics in fx["vdses"]:
            extra.append(self._bridge(ovsbr_name(cluster_name, vds_name), nics))
        extra.append(Nic("ovsbr-internal", local_mac(self.host_uuid, "ovsbr-internal"), None, None, True, False,
                         False, kind="bridge"))
        for name, ip in (("port-internal", "169.254.169.254"), ("port-mgt", self.mgmt_ip),
                         ("port-storage", self.storage_ip)):
            mac = local_mac(self.host_uuid, name)
            extra.append(Nic(name, mac, None, None, True, True, True, ipv4=ip, ipv6=link_local(mac), kind="port"))
        self.nics.extend(sorted(extra, key=lambda n: n.name))

    def _bridge(self, name: str, nics: list[str] | tuple[str, ...]) -> Nic:
        first = self.nic(nics[0]) if nics else None
        return Nic(name, first.hwaddr if first else local_mac(self.host_uuid, name), None, None, True, False, False,
                   kind="bridge")

    def add_bridge(self, name: str, nics: list[str] | tuple[str, ...]) -> None:
        """A VDS created after deployment (fisheye) adds its OVS bridge to the host."""
        if self.nic(name) is None:
            self.nics.append(self._bridge(name, nics))

    def remove_bridge(self, name: str) -> None:
        self.nics = [n for n in self.nics if not (n.name == name and n.kind == "bridge")]

    def export_state(self) -> dict:
        """Everything about the host, JSON-able (snapshots); :meth:`from_state` rebuilds it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, d: dict) -> SimHost:
        d = dict(d)
        d["nics"] = [Nic(**n) for n in d.get("nics", [])]
        d["disks"] = [Disk(**x) for x in d.get("disks", [])]
        for k in ("mgmt_nics", "storage_nics"):
            d[k] = tuple(d.get(k) or ())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict:
        return {"mgmt_ip": self.mgmt_ip, "host_uuid": self.host_uuid, "hostname": self.hostname,
                "planned_hostname": self.planned_hostname, "storage_ip": self.storage_ip,
                "deployed": self.deployed, "is_master": self.is_master, "cluster_name": self.cluster_name,
                "nics": [n.scan() for n in self.nics], "disks": [d.scan() for d in self.disks]}


def build_host(mgmt_ip: str, *, planned_nics: dict[str, tuple[str, ...]], layout: str = "nvme+hdd",
               hostname: str | None = None, preset_hostname: bool = False, storage_ip: str | None = None,
               serial: str | None = None, bmc_ip: str | None = None, extra_nics: int = 3,
               used_macs: set[str] | None = None) -> SimHost:
    """A freshly installed host: every planned NIC (link up) plus ``extra_nics`` unused ones.

    ``planned_nics`` maps a role (mgmt, storage, backup, business) to NIC names. Before
    deployment the first management NIC carries the management IPv4.
    """
    if layout not in DISK_LAYOUTS:
        raise ValueError(f"unknown disk layout {layout!r}; choose one of {sorted(DISK_LAYOUTS)}")
    used_macs = used_macs if used_macs is not None else set()
    mgmt = tuple(planned_nics.get("mgmt") or ())
    storage = tuple(planned_nics.get("storage") or ())
    planned: list[str] = []
    for role in ("mgmt", "storage", "backup", "business"):
        for n in planned_nics.get(role) or ():
            if n not in planned:
                planned.append(n)
    if not planned:                        # a plan with no NICs: still give the host a management NIC
        planned, mgmt = ["ens192"], ("ens192",)
    pool = ["ens161", "ens162", "ens192", "ens193", "ens194", "ens224", "ens225", "ens256", "ens257",
            "ens160", "ens163", "ens195", "ens223", "ens226", "ens255", "ens258"]
    pool += [f"ens{n}" for n in range(300, 400)]
    extras = [n for n in pool if n not in planned][:extra_nics]

    def sort_key(name: str):
        m = re.match(r"^(\D*)(\d*)(.*)$", name)
        return (m.group(1), int(m.group(2) or 0), m.group(3))

    nics = []
    for i, name in enumerate(sorted(planned + extras, key=sort_key)):
        salt = 0
        while True:
            b = _h(mgmt_ip, name, salt)
            mac = f"00:50:56:b5:{b[0]:02x}:{b[1]:02x}"
            if mac not in used_macs:
                used_macs.add(mac)
                break
            salt += 1
        if name in planned:
            nic = Nic(name, mac, f"0000:{4 + 3 * i:02x}:00", 25_000_000_000 if name in storage else 10_000_000_000,
                      True, True, True, ipv6=link_local(mac))
        else:
            nic = Nic(name, mac, f"0000:{4 + 3 * i:02x}:00", None, False, False, True)
        nics.append(nic)
    by_name = {n.name: n for n in nics}
    mgmt_nic = by_name.get(mgmt[0], nics[0]) if mgmt else nics[0]    # the first planned management NIC
    mgmt_nic.ipv4 = mgmt_ip

    disks = []
    for drive, function, kind, size, dtype in (BOOT_DISK,) + DISK_LAYOUTS[layout]:
        if kind == "nvme":
            serial_no = "VMware NVME_0000"          # captured VMware quirk: NVMe serials repeat
        elif kind == "hdd":
            serial_no = f"{ord(drive[-1]) - ord('a'):02d}000000000000000001"   # repeats across hosts too
        else:
            serial_no = "6000c29" + _h(mgmt_ip, drive).hex()[:25]
        disks.append(Disk(drive, function, DISK_MODELS[kind], serial_no, size, dtype))

    b = _h("sn", mgmt_ip)
    sn = serial or ("VMware-42 35 " + " ".join(f"{x:02x}" for x in b[:6]) + "-"
                    + " ".join(f"{x:02x}" for x in b[6:14]))
    return SimHost(
        mgmt_ip=mgmt_ip, host_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://host/{mgmt_ip}")), sn=sn,
        nics=nics, disks=disks, hostname=(hostname if preset_hostname and hostname else "localhost.localdomain"),
        planned_hostname=hostname, planned_storage_ip=storage_ip, mgmt_nics=mgmt, storage_nics=storage,
        bmc_ip=bmc_ip)


# --------------------------------------------------------------------------- the long operation
@dataclass
class DeployOperation:
    id: str
    started: float                       # simulated seconds
    receiving_host: str                  # mgmt IP the POST went to
    host_uuids: tuple[str, ...]
    host_ips: dict[str, str]             # uuid -> host_ip as sent in the payload
    cluster_name: str
    effects: dict[str, dict]             # uuid -> what success changes on the host
    payload: dict                        # redacted copy of the accepted payload
    stages: tuple[tuple[str, float], ...]
    fault: str | None = None             # None | "stuck" | "fail"
    fault_msg: str | None = None
    fault_stage: int | None = None       # 1-based stage where stuck / failing
    fault_rule: str | None = None
    applied: bool = False
    finished_at: float | None = None

    @property
    def total_stages(self) -> int:
        return len(self.stages)

    @property
    def duration(self) -> float:
        return sum(d for _, d in self.stages)

    def progress(self, now: float) -> dict:
        """State at simulated time ``now``: state running|success|failed, current stage, message."""
        elapsed = max(0.0, now - self.started)
        t = 0.0
        for i, (name, dur) in enumerate(self.stages, start=1):
            if self.fault == "stuck" and i == self.fault_stage and elapsed >= t:
                return {"state": "running", "current_stage": i, "stage_info": name, "msg": None}
            if self.fault == "fail" and i == self.fault_stage and elapsed >= t + dur / 2:
                msg = self.fault_msg or f"stage {name} failed (simulated failure)"
                return {"state": "failed", "current_stage": i, "stage_info": name, "msg": msg,
                        "ended": self.started + t + dur / 2}
            if elapsed < t + dur:
                return {"state": "running", "current_stage": i, "stage_info": name, "msg": None}
            t += dur
        last = self.stages[-1][0] if self.stages else ""
        return {"state": "success", "current_stage": len(self.stages), "stage_info": last, "msg": None,
                "ended": self.started + t}

    def to_dict(self, now: float) -> dict:
        p = self.progress(now)
        return {"id": self.id, "started": round(self.started, 3), "receiving_host": self.receiving_host,
                "hosts": list(self.host_uuids), "cluster_name": self.cluster_name, "fault": self.fault,
                "fault_stage": self.fault_stage, "fault_rule": self.fault_rule, "total_stages": self.total_stages,
                "state": p["state"], "current_stage": p["current_stage"], "stage_info": p["stage_info"],
                "msg": p["msg"], "payload": self.payload}


def _op_state(op: DeployOperation) -> dict:
    d = dataclasses.asdict(op)
    d["host_uuids"] = list(op.host_uuids)
    d["stages"] = [list(x) for x in op.stages]
    d["effects"] = {u: dict(fx, vdses=[[name, list(nics)] for name, nics in fx.get("vdses", [])])
                    for u, fx in op.effects.items()}
    return d


def _op_from_state(d: dict) -> DeployOperation:
    d = dict(d)
    d["host_uuids"] = tuple(d.get("host_uuids") or ())
    d["stages"] = tuple((str(n), float(t)) for n, t in d.get("stages") or ())
    d["effects"] = {u: dict(fx, vdses=[(name, list(nics)) for name, nics in fx.get("vdses", [])])
                    for u, fx in (d.get("effects") or {}).items()}
    known = {f.name for f in dataclasses.fields(DeployOperation)}
    return DeployOperation(**{k: v for k, v in d.items() if k in known})


class DeployError(Exception):
    def __init__(self, ec: str, msg: str, status: int = 400, errors: list[str] | None = None):
        super().__init__(msg)
        self.ec, self.msg, self.status, self.errors = ec, msg, status, errors or [msg]


# --------------------------------------------------------------------------- the model
REQUIRED_TOP = ("platform", "cluster_name", "dns_server", "vdses", "networks", "hosts", "ntp",
                "vhost_enabled", "rdma_enabled")
REQUIRED_HOST = ("host_ip", "host_uuid", "hostname", "disk_data_with_cache", "host_passwords", "tags",
                 "ifaces", "disks", "is_master", "with_faster_ssd_as_cache")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def _ipv4(v: Any) -> str | None:
    try:
        return str(ipaddress.IPv4Address(v)) if isinstance(v, str) else None
    except ValueError:
        return None


def _netmask_ok(v: Any) -> bool:
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{v}")
        return isinstance(v, str)
    except ValueError:
        return False


class DeploymentModel:
    """Hosts as the deployment API sees them, and the cluster deployment operations."""

    family = "deployment"

    def __init__(self, clock: SimClock, hosts: Iterable[SimHost] = (), *, l2_scan_blocked: bool = False,
                 stages: Iterable[tuple[str, float]] = DEPLOY_STAGES, secrets: Iterable[str] = ()):
        self.clock = clock
        self.lock = threading.RLock()
        self.hosts: dict[str, SimHost] = {h.mgmt_ip: h for h in hosts}
        self.operations: list[DeployOperation] = []
        self.l2_scan_blocked = l2_scan_blocked
        self.stages = tuple(stages)
        self.secrets = set(secrets)
        # What deploy_status returns once a run has ended (the guide calls that body unreliable):
        # "state" -> 200 envelope with state "success"/"failed"; "error" -> HTTP 500 error envelope.
        self.finished_status = "state"
        self.listeners: list[Callable[[DeployOperation, str], None]] = []   # (op, "success"|"failed")
        self._ids = itertools.count(1)

    # ---- lookup
    def host(self, address: str) -> SimHost | None:
        return self.hosts.get(address)

    def host_by_uuid(self, host_uuid: str) -> SimHost | None:
        return next((h for h in self.hosts.values() if h.host_uuid == host_uuid), None)

    def resolve_host_ip(self, value: str | None) -> SimHost | None:
        """A ``host_ip`` as callers send it: mgmt/storage IPv4, or an IPv6 link-local with or
        without ``%scope`` (URL-encoded or not), or the exact string sent in the deploy payload."""
        if not value:
            return None
        raw = unquote(value.strip())
        with self.lock:
            for op in reversed(self.operations):
                for u, hip in op.host_ips.items():
                    if hip == raw:
                        return self.host_by_uuid(u)
        addr = raw.split("%", 1)[0].strip("[]")
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return None
        for h in self.hosts.values():
            if ip.version == 4 and str(ip) in (h.mgmt_ip, h.storage_ip):
                return h
            if ip.version == 6 and str(ip) in h.addresses_v6():
                return h
        return None

    # ---- progress on read
    def settle(self) -> None:
        """Apply the effects of operations that have ended by now (called on every read)."""
        now = self.clock.now()
        fired = []
        with self.lock:
            for op in self.operations:
                if op.applied:
                    continue
                p = op.progress(now)
                if p["state"] == "running":
                    continue
                op.applied = True
                op.finished_at = p.get("ended", now)
                if p["state"] == "success":
                    for u in op.host_uuids:
                        h = self.host_by_uuid(u)
                        if h is not None:
                            h.apply_deployment(op.effects[u], op.cluster_name)
                fired.append((op, p["state"]))
        for op, state in fired:
            for cb in list(self.listeners):
                cb(op, state)

    def operation_for(self, host: SimHost) -> DeployOperation | None:
        with self.lock:
            return next((op for op in reversed(self.operations) if host.host_uuid in op.host_uuids), None)

    def running(self) -> DeployOperation | None:
        now = self.clock.now()
        with self.lock:
            return next((op for op in self.operations if op.progress(now)["state"] == "running"), None)

    @property
    def cluster(self) -> dict | None:
        """The deployed cluster (last successful operation), or None."""
        self.settle()
        with self.lock:
            for op in reversed(self.operations):
                if op.applied and op.progress(self.clock.now())["state"] == "success":
                    return {"name": op.cluster_name, "hosts": list(op.host_uuids), "operation": op.id}
        return None

    # ---- API operations
    def scan_host(self, address: str) -> dict:
        self.settle()
        with self.lock:
            return self.hosts[address].scan()

    def scan_cluster(self, address: str) -> list[dict]:
        """Layer-2 scan through the receiving host's storage NICs (empty with LACP / VLAN sub-interfaces)."""
        self.settle()
        with self.lock:
            me = self.hosts[address]
            if self.l2_scan_blocked:
                return []
            out_nic = me.first_up(me.storage_nics) or me.first_up(me.mgmt_nics)
            if out_nic is None:
                return []
            found = []
            for h in self.hosts.values():
                target = h.first_up(h.storage_nics) or h.first_up(h.mgmt_nics)
                if target is None:
                    continue
                found.append(h.scan(host_ip=f"{target.ipv6}%{out_nic.name}"))
            return found

    def verify(self, address: str) -> dict:
        self.settle()
        with self.lock:
            return {"is_deployed": self.hosts[address].deployed, "platform": "kvm"}

    def status(self, host: SimHost) -> tuple[int, dict] | None:
        """``(http_status, envelope)`` of deploy_status for ``host``; None when it has no operation."""
        from ..core import envelope, error_envelope
        self.settle()
        op = self.operation_for(host)
        if op is None:
            return None
        p = op.progress(self.clock.now())
        data = {"current_stage": p["current_stage"], "msg": p["msg"], "stage_info": p["stage_info"],
                "state": p["state"], "total_stages": op.total_stages}
        if p["state"] != "running" and self.finished_status == "error":
            if p["state"] == "failed":
                return 500, error_envelope(EC_DEPLOY_FAILED, p["msg"] or "deployment failed")
            return 500, error_envelope(EC_INTERNAL, "deployment service restarted; no task status available")
        return 200, envelope(data)

    def deploy(self, payload: Any, address: str, *, fault: dict | None = None) -> DeployOperation:
        """Validate and start a deployment; raises :class:`DeployError`."""
        self.settle()
        with self.lock:
            me = self.hosts[address]
            if not isinstance(payload, dict):
                raise DeployError(EC_BAD_REQUEST, "request body must be a JSON object", 400)
            if me.deployed:
                raise DeployError(EC_DEPLOYED, f"host {address} is already deployed (cluster {me.cluster_name})",
                                  409)
            running = self.running()
            if running is not None:
                raise DeployError(EC_DEPLOYING, f"a cluster deployment is already running "
                                                f"({running.id}, cluster {running.cluster_name})", 409)
            try:
                errors, effects = self.validate(payload, address)
            except (TypeError, KeyError, AttributeError, ValueError, IndexError) as exc:   # a shape not foreseen
                raise DeployError(EC_INVALID, f"malformed deployment payload ({type(exc).__name__}: {exc})", 400)
            if errors:
                raise DeployError(EC_INVALID, "; ".join(errors), 400, errors)
            already = [self.host_by_uuid(u) for u in effects if self.host_by_uuid(u).deployed]
            if already:
                raise DeployError(EC_DEPLOYED, "already deployed: " + ", ".join(h.mgmt_ip for h in already), 409)
            op = DeployOperation(
                id=f"deploy-{next(self._ids)}", started=self.clock.now(), receiving_host=address,
                host_uuids=tuple(effects), host_ips={h["host_uuid"]: h["host_ip"] for h in payload["hosts"]},
                cluster_name=payload["cluster_name"], effects=effects,
                payload=redact(payload, self.secrets), stages=self.stages)
            if fault and fault.get("operation"):
                op.fault = fault["operation"]
                op.fault_msg = fault.get("msg")
                op.fault_rule = fault.get("rule")
                op.fault_stage = self._stage_index(fault.get("stage"))
            self.operations.append(op)
            return op

    def _stage_index(self, stage: Any) -> int:
        n = len(self.stages)
        if isinstance(stage, int) and 1 <= stage <= n:
            return stage
        if isinstance(stage, str):
            for i, (name, _) in enumerate(self.stages, start=1):
                if name == stage:
                    return i
        return n // 2 + 1

    # ---- validation
    def validate(self, p: dict, address: str) -> tuple[list[str], dict[str, dict]]:
        """Checks a real installer would make. Returns (errors, per-host effects)."""
        errs: list[str] = []
        missing = [k for k in REQUIRED_TOP if k not in p]
        if missing:
            return [f"missing required field: {k}" for k in missing], {}
        if not isinstance(p["platform"], str) or p["platform"] != "kvm":
            errs.append(f"unsupported platform {p['platform']!r} (only 'kvm')")
        if not isinstance(p["cluster_name"], str) or not p["cluster_name"].strip():
            errs.append("cluster_name must be a non-empty string")
        if not isinstance(p["dns_server"], list) or not all(_ipv4(x) or _is_ip(x) for x in p["dns_server"]):
            errs.append("dns_server must be a list of IP addresses")
        for k in ("vhost_enabled", "rdma_enabled"):
            if not isinstance(p[k], bool):
                errs.append(f"{k} must be a boolean")
        ntp = p["ntp"]
        if not isinstance(ntp, dict) or ntp.get("mode") not in ("internal", "external"):
            errs.append("ntp.mode must be 'internal' or 'external'")
        else:
            if ntp["mode"] == "external" and not ntp.get("ntp_server"):
                errs.append("ntp.ntp_server is required when ntp.mode is 'external'")
            ct = ntp.get("current_time")
            if ct is not None and not (isinstance(ct, str) and _ISO_TIME.match(ct)):
                errs.append(f"ntp.current_time {ct!r} is not an ISO-8601 time like 2025-09-26T14:02:29.381Z")
        for k in ("vdses", "networks", "hosts"):
            if not isinstance(p[k], list) or not p[k]:
                errs.append(f"{k} must be a non-empty list")
        if errs:
            return errs, {}

        # ---- hosts
        hosts: dict[str, SimHost] = {}               # uuid -> sim host
        entries: dict[str, dict] = {}                # uuid -> payload entry
        names: dict[str, str] = {}
        ips: dict[str, str] = {}
        for i, e in enumerate(p["hosts"]):
            where = f"hosts[{i}]"
            if not isinstance(e, dict):
                errs.append(f"{where} must be an object")
                continue
            miss = [k for k in REQUIRED_HOST if k not in e]
            if miss:
                errs.extend(f"{where}: missing required field: {k}" for k in miss)
                continue
            u = e["host_uuid"]
            h = self.host_by_uuid(u) if isinstance(u, str) else None
            if h is None:
                errs.append(f"{where}: unknown host_uuid {u!r} (no scanned host has it)")
                continue
            if u in hosts:
                errs.append(f"{where}: host_uuid {u} listed twice")
                continue
            where = f"hosts[{i}] ({h.mgmt_ip})"
            hosts[u], entries[u] = h, e
            hn = e["hostname"]
            if not isinstance(hn, str) or not _HOSTNAME.match(hn):
                errs.append(f"{where}: invalid hostname {hn!r}")
            elif hn.lower() in names:
                errs.append(f"{where}: hostname {hn} already used by {names[hn.lower()]}")
            else:
                names[hn.lower()] = h.mgmt_ip
            errs.extend(self._check_host_ip(where, h, e["host_ip"]))
            for k in ("disk_data_with_cache", "is_master", "with_faster_ssd_as_cache"):
                if not isinstance(e[k], bool):
                    errs.append(f"{where}: {k} must be a boolean")
            pw = e["host_passwords"]
            users = {x.get("user") for x in pw if isinstance(x, dict) and isinstance(x.get("password"), str)
                     and x.get("password") and isinstance(x.get("user"), str)} if isinstance(pw, list) else set()
            if not {"root", "smartx"} <= users:
                errs.append(f"{where}: host_passwords must give a password for users root and smartx")
            if not isinstance(e["tags"], list):
                errs.append(f"{where}: tags must be a list")
            errs.extend(self._check_ifaces(where, h, e["ifaces"], ips))
            errs.extend(self._check_disks(where, h, e["disks"]))
            if p["rdma_enabled"] is True and not any(n.rdma for n in h.nics):
                errs.append(f"{where}: rdma_enabled but the host has no RDMA-capable NIC")
        if address not in {h.mgmt_ip for h in hosts.values()} and not errs:
            errs.append(f"the receiving host {address} is not one of the payload hosts")
        masters = sum(1 for e in entries.values() if e.get("is_master") is True)
        if entries and masters not in (3, 5):
            errs.append(f"a cluster needs 3 or 5 master hosts (is_master true), got {masters}")

        # ---- vdses
        vds_nics: dict[str, dict[str, list[str]]] = {}     # vds -> uuid -> nics
        used: dict[tuple[str, str], str] = {}
        for i, v in enumerate(p["vdses"]):
            if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v["name"]:
                errs.append(f"vdses[{i}]: name is required")
                continue
            name = v["name"]
            if name in vds_nics:
                errs.append(f"vdses[{i}]: duplicate vds name {name}")
                continue
            vds_nics[name] = {}
            if "bond_mode" in v and v["bond_mode"] not in BOND_MODES:
                errs.append(f"vds {name}: bond_mode {v['bond_mode']!r} is not one of {', '.join(BOND_MODES)}")
            assoc = v.get("hosts_associated")
            if not isinstance(assoc, list) or not assoc:
                errs.append(f"vds {name}: hosts_associated must be a non-empty list")
                continue
            for a in assoc:
                u = a.get("host_uuid") if isinstance(a, dict) else None
                h = hosts.get(u) if isinstance(u, str) else None
                if h is None:
                    errs.append(f"vds {name}: host_uuid {u!r} is not one of the payload hosts")
                    continue
                nics = a.get("nics_associated")
                if not isinstance(nics, list) or not nics or not all(isinstance(n, str) for n in nics):
                    errs.append(f"vds {name}: host {h.mgmt_ip} needs a non-empty nics_associated list")
                    continue
                vds_nics[name][u] = nics
                for n in nics:
                    if h.nic(n) is None or h.nic(n).kind != "physical":
                        errs.append(f"vds {name}: host {h.mgmt_ip} ({entries[u].get('hostname')}, {u}) "
                                    f"has no NIC {n}")
                    elif (u, n) in used:
                        errs.append(f"vds {name}: NIC {n} of host {h.mgmt_ip} is already in vds {used[(u, n)]}")
                    else:
                        used[(u, n)] = name

        # ---- networks
        seen_types: dict[str, str] = {}
        for i, net in enumerate(p["networks"]):
            if not isinstance(net, dict):
                errs.append(f"networks[{i}] must be an object")
                continue
            nname = net.get("name") or f"networks[{i}]"
            ntype = net.get("network_type")
            vds = net.get("attached_vds")
            if not isinstance(vds, str):
                vds = repr(vds)
            if vds not in vds_nics:
                errs.append(f"network {nname}: attached_vds {vds!r} is not a vds in vdses")
            if not isinstance(ntype, str) or not ntype:
                errs.append(f"network {nname}: network_type is required")
                continue
            mode = net.get("mode")
            if not isinstance(mode, dict) or not isinstance(mode.get("type"), str):
                errs.append(f"network {nname}: mode.type is required")
            else:
                ids = mode.get("network_identities")
                if not isinstance(ids, list) or not all(isinstance(x, int) and 0 <= x <= 4094 for x in ids):
                    errs.append(f"network {nname}: mode.network_identities must be VLAN ids 0..4094")
            if ntype in ("mgt", "storage"):
                if ntype in seen_types:
                    errs.append(f"network {nname}: a second {ntype} network (first: {seen_types[ntype]})")
                    continue
                seen_types[ntype] = nname
                errs.extend(self._check_service(nname, ntype, net, hosts, entries, vds_nics.get(vds)))
        for t in ("mgt", "storage"):
            if t not in seen_types:
                errs.append(f"networks: a network with network_type {t!r} is required")
        if errs:
            return errs, {}

        effects: dict[str, dict] = {}
        for u, e in entries.items():
            storage_ip = next((x["ip"] for x in e["ifaces"] if x.get("function") == "storage"), None)
            effects[u] = {
                "hostname": e["hostname"], "is_master": e["is_master"], "storage_ip": storage_ip,
                "disks": {d["drive"]: d["function"] for d in e["disks"]}, "vhost": p["vhost_enabled"],
                "vdses": [(name, per_host[u]) for name, per_host in vds_nics.items() if u in per_host],
            }
        return [], effects

    def _check_host_ip(self, where: str, h: SimHost, value: Any) -> list[str]:
        if not isinstance(value, str) or not value:
            return [f"{where}: host_ip must be a non-empty string"]
        addr = value.split("%", 1)[0]
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return [f"{where}: host_ip {value!r} is not an IP address (expected the scanned IPv6 link-local"
                    f"%interface or the management IP)"]
        if ip.version == 4 and str(ip) != h.mgmt_ip:
            return [f"{where}: host_ip {value} is not this host's management IP {h.mgmt_ip}"]
        if ip.version == 6 and str(ip) not in h.addresses_v6():
            return [f"{where}: host_ip {value} is not an address of host {h.host_uuid}"]
        return []

    def _check_ifaces(self, where: str, h: SimHost, ifaces: Any, ips: dict[str, str]) -> list[str]:
        if not isinstance(ifaces, list):
            return [f"{where}: ifaces must be a list"]
        errs, funcs = [], {}
        for x in ifaces:
            if not isinstance(x, dict) or not _ipv4(x.get("ip")) or not isinstance(x.get("function"), str):
                errs.append(f"{where}: ifaces entries need an IPv4 'ip' and a 'function', got {x!r}")
                continue
            funcs[x["function"]] = x["ip"]
            if x["ip"] in ips:
                errs.append(f"{where}: IP {x['ip']} is also used by {ips[x['ip']]}")
            ips[x["ip"]] = f"{h.mgmt_ip}/{x['function']}"
        for f in ("mgt", "storage"):
            if f not in funcs:
                errs.append(f"{where}: ifaces needs an entry with function {f!r}")
        if "mgt" in funcs and funcs["mgt"] != h.mgmt_ip:
            errs.append(f"{where}: mgt iface IP {funcs['mgt']} differs from the host's management IP {h.mgmt_ip} "
                        f"(the simulator cannot re-address a host)")
        return errs

    def _check_disks(self, where: str, h: SimHost, disks: Any) -> list[str]:
        if not isinstance(disks, list) or not disks:
            return [f"{where}: disks must be a non-empty list"]
        errs, seen = [], set()
        for d in disks:
            if not isinstance(d, dict) or not isinstance(d.get("drive"), str):
                errs.append(f"{where}: disk entries need a 'drive', got {d!r}")
                continue
            drive = d["drive"]
            disk = h.disk(drive)
            if disk is None:
                errs.append(f"{where}: disk {drive} does not exist on host {h.mgmt_ip}")
                continue
            if drive in seen:
                errs.append(f"{where}: disk {drive} listed twice")
            seen.add(drive)
            if disk.function == "boot":
                errs.append(f"{where}: disk {drive} is the boot disk and cannot be used for cache or data")
            if d.get("function") not in ("cache", "data"):
                errs.append(f"{where}: disk {drive} function must be 'cache' or 'data', got {d.get('function')!r}")
            if "type" in d and d["type"] != disk.type:
                errs.append(f"{where}: disk {drive} type {d['type']!r} does not match the scan ({disk.type})")
            if "size" in d and d["size"] != disk.size:
                errs.append(f"{where}: disk {drive} size {d['size']!r} does not match the scan ({disk.size})")
        if not any(isinstance(d, dict) and d.get("function") == "data" for d in disks):
            errs.append(f"{where}: at least one data disk is required")
        return errs

    def _check_service(self, nname: str, ntype: str, net: dict, hosts: dict[str, SimHost],
                       entries: dict[str, dict], vds_hosts: dict[str, list[str]] | None) -> list[str]:
        errs = []
        cfg = net.get("network_config")
        service = cfg.get("service") if isinstance(cfg, dict) else None
        if not isinstance(service, list):
            return [f"network {nname}: network_config.service must be a list"]
        fn = "mgt" if ntype == "mgt" else "storage"
        seen: set[str] = set()
        for s in service:
            u = s.get("host_uuid") if isinstance(s, dict) else None
            if not isinstance(u, str) or u not in hosts:
                errs.append(f"network {nname}: service entry for {u!r}, which is not one of the payload hosts")
                continue
            if u in seen:
                errs.append(f"network {nname}: two service entries for host {hosts[u].mgmt_ip}")
                continue
            seen.add(u)
            ip = _ipv4(s.get("service_interface_ip"))
            if ip is None:
                errs.append(f"network {nname}: host {hosts[u].mgmt_ip} service_interface_ip "
                            f"{s.get('service_interface_ip')!r} is not an IPv4 address")
            else:
                ifaces = entries[u]["ifaces"] if isinstance(entries[u]["ifaces"], list) else []
                want = next((x.get("ip") for x in ifaces if isinstance(x, dict) and x.get("function") == fn), None)
                if want is not None and want != ip:
                    errs.append(f"network {nname}: host {hosts[u].mgmt_ip} service_interface_ip {ip} differs "
                                f"from its {fn} iface IP {want}")
            if not _netmask_ok(s.get("netmask")):
                errs.append(f"network {nname}: host {hosts[u].mgmt_ip} netmask {s.get('netmask')!r} is invalid")
            if not isinstance(s.get("service_interface_name"), str) or not s.get("service_interface_name"):
                errs.append(f"network {nname}: host {hosts[u].mgmt_ip} service_interface_name is required")
        for u, h in hosts.items():
            if u not in seen:
                errs.append(f"network {nname}: no service entry for host {h.mgmt_ip} ({u})")
            elif vds_hosts is not None and u not in vds_hosts:
                errs.append(f"network {nname}: host {h.mgmt_ip} is not associated with vds {net.get('attached_vds')}")
        routes = cfg.get("route") or [] if isinstance(cfg, dict) else []
        if not isinstance(routes, list):
            return errs + [f"network {nname}: network_config.route must be a list"]
        for r in routes:
            if not isinstance(r, dict) or not _ipv4(r.get("gateway")):
                errs.append(f"network {nname}: route entries need an IPv4 gateway, got {r!r}")
        return errs

    # ---- snapshot / restore
    def export_state(self) -> dict:
        """Restorable state (JSON-able; payloads are already redacted): hosts, operations, settings."""
        self.settle()
        with self.lock:
            return {"hosts": [h.export_state() for h in self.hosts.values()],
                    "operations": [_op_state(op) for op in self.operations],
                    "l2_scan_blocked": self.l2_scan_blocked, "finished_status": self.finished_status}

    def import_state(self, state: dict) -> list[str]:
        """Restore :meth:`export_state` output over the seeded hosts. Hosts the snapshot has but
        the world does not are skipped (returned as notes). Listeners do not fire for operations
        that had already ended; a restored running operation ends (and notifies) as usual."""
        notes = []
        with self.lock:
            for hd in state.get("hosts", []):
                ip = hd.get("mgmt_ip")
                if ip not in self.hosts:
                    notes.append(f"snapshot host {ip} is not in this world; skipped")
                    continue
                self.hosts[ip] = SimHost.from_state(hd)
            self.operations = [_op_from_state(o) for o in state.get("operations", [])]
            self.l2_scan_blocked = bool(state.get("l2_scan_blocked", self.l2_scan_blocked))
            self.finished_status = state.get("finished_status", self.finished_status)
            top = max((int(m.group(1)) for op in self.operations
                       for m in [re.match(r"^deploy-(\d+)$", op.id)] if m), default=0)
            self._ids = itertools.count(top + 1)
        return notes

    # ---- inspection
    def to_dict(self) -> dict:
        self.settle()
        now = self.clock.now()
        with self.lock:
            return {"hosts": [h.to_dict() for h in self.hosts.values()],
                    "operations": [op.to_dict(now) for op in self.operations],
                    "l2_scan_blocked": self.l2_scan_blocked, "finished_status": self.finished_status,
                    "stages": [list(s) for s in self.stages]}


def _is_ip(v: Any) -> bool:
    try:
        ipaddress.ip_address(v)
        return True
    except (ValueError, TypeError):
        return False


def utc_iso(clock: SimClock) -> str:
    """``2025-09-26T14:02:29.381Z`` style timestamp of the simulated wall clock."""
    t = clock.utcnow()
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

