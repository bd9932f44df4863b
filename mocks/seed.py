"""Plan -> simulated world: which addresses exist, what they serve, and the hosts' hardware.

Pure data (no sockets): :func:`build_world` returns a :class:`World` that
:class:`mocks.server.Simulator` puts on the network.

What is simulated for a plan (this session; later families add services to the same addresses):

==============================  ================================  =========================
address (from the plan)         ports                             state at start
==============================  ================================  =========================
each host's management IP       tcp 80 (http), tcp 443 (https)    up (deployment API)
cluster VIP                     tcp 22, 80, 443                   down (configured in stage 03)
CloudTower / Backup IP          tcp 22, 80, 443                   down (not installed)
Observability IP                tcp 22, 80, 443, 10022            down
ER controller VIP / nodes       tcp 22, 443                       down
temporary test-range addresses  tcp 22, 80, 443                   down (first 64 addresses)
DNS servers                     udp 53                            up
NTP servers (IP or name)        udp 123                           up
gateways, BMC IPs               (none: ping only)                 alive
==============================  ================================  =========================

Down addresses refuse TCP (a port probe says "free") and ``is_alive`` is False for them.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from clients.ipaddr import is_ip

from .deployment.models import ARCH_DEFAULT_LAYOUT, DISK_LAYOUTS, SimHost, build_host

log = logging.getLogger("mocks")

HOST_PORTS = ((80, "http"), (443, "https"))
DOWN_PORTS = {
    "vip": (22, 80, 443),
    "cloudtower": (22, 80, 443),
    "obs": (22, 80, 443, 10022),
    "backup": (22, 80, 443),
    "er": (22, 443),
    "test-range": (22, 80, 443),
}
MAX_TEST_ADDRESSES = 64
SCHEMES = {443: "https", 22: "ssh", 10022: "ssh"}


@dataclass
class SimAddress:
    address: str
    role: str                                   # host-mgmt | vip | cloudtower | obs | backup | er | test-range | dns | ntp
    tcp: tuple[tuple[int, str], ...] = ()       # (port, scheme)
    udp: tuple[int, ...] = ()
    up: bool = False
    label: str = ""


@dataclass
class World:
    hosts: list[SimHost]
    addresses: list[SimAddress]
    alive_only: list[tuple[str, str]]           # (address, role) answering ping only
    dns_records: dict[str, str]
    l2_scan_blocked: bool
    disk_layout: str
    notes: list[str] = field(default_factory=list)


def _s(v: Any) -> str | None:
    return None if v is None else str(v)


def default_layout(plan) -> str:
    return ARCH_DEFAULT_LAYOUT.get(getattr(plan, "storage_arch", None) or "", "nvme+hdd")


def l2_scan_blocked(plan) -> bool:
    """Field note: the layer-2 cluster scan finds nothing with LACP bonds or VLAN sub-interfaces."""
    for net in (plan.mgmt, plan.storage):
        if (net.bond_mode or "").strip().lower() == "balance-tcp":
            return True
        if "trunk" in (net.vlan_type or "").lower():
            return True
    return False


def build_world(plan, *, disk_layout: str | None = None, preset_hostnames: bool = False,
                max_test_addresses: int = MAX_TEST_ADDRESSES) -> World:
    layout = disk_layout or default_layout(plan)
    if layout not in DISK_LAYOUTS:
        raise ValueError(f"unknown disk layout {layout!r}; choose one of {sorted(DISK_LAYOUTS)}")
    notes: list[str] = []
    addresses: list[SimAddress] = []
    taken: set[str] = set()
    hosts = _seed_hosts(plan, layout, preset_hostnames, addresses, taken, notes)
    _seed_down_addresses(plan, max_test_addresses, addresses, taken, notes)
    for d in plan.dns:
        addresses.append(SimAddress(_norm(d), "dns", udp=(53,), up=True, label="DNS server"))
    for n in plan.ntp:
        addresses.append(SimAddress(_norm(n), "ntp", udp=(123,), up=True, label="NTP server"))
    return World(hosts=hosts, addresses=addresses, alive_only=_alive_only(plan), dns_records=_dns_records(plan, hosts),
                 l2_scan_blocked=l2_scan_blocked(plan), disk_layout=layout, notes=notes)


def _seed_hosts(plan, layout: str, preset_hostnames: bool, addresses: list[SimAddress], taken: set[str],
                notes: list[str]) -> list[SimHost]:
    """One simulated host per planned host with a valid, not yet taken management IP."""
    planned = {"mgmt": tuple(plan.mgmt.nics), "storage": tuple(plan.storage.nics),
               "backup": tuple(plan.backup.nics), "business": tuple(plan.business_nics)}
    hosts: list[SimHost] = []
    macs: set[str] = set()
    for h in plan.hosts:
        if h.mgmt_ip is None:
            notes.append(f"host row {h.row}: no valid management IP, not simulated")
            continue
        ip = str(h.mgmt_ip)
        if ip in taken:
            notes.append(f"host row {h.row}: management IP {ip} duplicated, simulated once")
            continue
        taken.add(ip)
        hosts.append(build_host(ip, planned_nics=planned, layout=layout, hostname=h.hostname,
                                preset_hostname=preset_hostnames, storage_ip=_s(h.storage_ip),
                                serial=h.serial, bmc_ip=_s(h.bmc_ip), used_macs=macs))
        addresses.append(SimAddress(ip, "host-mgmt", HOST_PORTS, up=True, label=h.hostname or ""))
    return hosts


def _seed_down_addresses(plan, max_test_addresses: int, addresses: list[SimAddress], taken: set[str],
                         notes: list[str]) -> None:
    """The addresses that exist but are down at start: VIP, components, ER, the test range."""
    def down(addr, role, label=""):
        if addr is None:
            return
        a = str(addr)
        if a in taken:
            notes.append(f"{role} {a} is also a host address; not simulated separately")
            return
        taken.add(a)
        addresses.append(SimAddress(a, role, tuple((p, SCHEMES.get(p, "http")) for p in DOWN_PORTS[role]),
                                    up=False, label=label))

    down(plan.vip, "vip", "cluster VIP")
    for key, comp in plan.components.items():
        down(comp.ip, key, comp.vm_name)
    down(plan.er_vip, "er", "ER controller VIP")
    for n in plan.er_nodes:
        down(n, "er", "ER controller node")
    test = plan.test_addresses()
    if len(test) > max_test_addresses:
        notes.append(f"test range has {len(test)} addresses; only the first {max_test_addresses} are simulated")
        test = test[:max_test_addresses]
    for a in test:
        down(a, "test-range", "temporary test IP")


def _dns_records(plan, hosts: list[SimHost]) -> dict[str, str]:
    records: dict[str, str] = {"localhost": "127.0.0.1"}
    for n in plan.ntp:
        if not is_ip(n):
            records[_norm(n).lower()] = "127.0.0.1"
    for h in hosts:
        if h.planned_hostname:
            records[h.planned_hostname.lower()] = "127.0.0.1"
    return records


def _alive_only(plan) -> list[tuple[str, str]]:
    """Addresses that only answer ping: gateways and BMCs."""
    alive: list[tuple[str, str]] = []
    for net in [plan.mgmt, plan.extra_mgmt, plan.storage, plan.backup, *plan.business]:
        if net.gateway is not None:
            alive.append((str(net.gateway), f"gateway {net.role}"))
    for h in plan.hosts:
        if h.bmc_ip is not None:
            alive.append((str(h.bmc_ip), "bmc"))
    return alive


def _norm(v: Any) -> str:
    s = str(v).strip()
    return str(ipaddress.ip_address(s)) if is_ip(s) else s.rstrip(".")
