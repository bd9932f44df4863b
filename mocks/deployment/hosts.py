"""Simulated SMTX OS hosts before and after deployment: NICs, disks, hardware, the host scan
(guide §01), and :func:`build_host` (a freshly installed host of a plan)."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import ipaddress
import re
import uuid
from dataclasses import dataclass
from typing import Iterable

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
