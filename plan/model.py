"""The typed plan: what the workbook says, normalised, with every field's cell.

Frozen dataclasses rather than pydantic: validation here must produce findings
that name a ``sheet!cell`` (not raise on the first bad value), parsing must be
fast, and the model carries no behaviour beyond a few derived values.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from . import layout as L


@dataclass(frozen=True)
class Finding:
    severity: str            # "error" | "warning"
    code: str                # stable, e.g. PLAN-IP-SYNTAX
    message_zh: str
    message_en: str
    ref: str                 # "sheet!cell"
    fix_zh: str              # one-line remediation
    fix_en: str

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    @property
    def fix(self) -> str:
        """Both languages on one line (Chinese first)."""
        return f"{self.fix_zh} / {self.fix_en}"

    def message(self, lang: str = "zh") -> str:
        return self.message_en if lang == "en" else self.message_zh

    def fix_in(self, lang: str = "zh") -> str:
        return self.fix_en if lang == "en" else self.fix_zh

    def as_dict(self, lang: str = "zh") -> dict:
        """JSON form: both languages split, plus ``message`` / ``fix`` in ``lang``."""
        return {"severity": self.severity, "code": self.code, "ref": self.ref,
                "message": self.message(lang), "fix": self.fix_in(lang),
                "message_zh": self.message_zh, "message_en": self.message_en,
                "fix_zh": self.fix_zh, "fix_en": self.fix_en}


@dataclass(frozen=True)
class Network:
    role: str                          # bmc | mgmt | extra_mgmt | storage | backup | business
    row: int
    vds: str | None = None
    name: str | None = None
    vlan_id: int | None = None
    vlan_type: str | None = None
    subnet: IPv4Network | None = None
    gateway: IPv4Address | None = None
    nics: tuple[str, ...] = ()
    bond_mode: str | None = None

    def ref(self, fieldname: str) -> str:
        row = self.row
        if fieldname in ("vds", "nics", "bond_mode"):
            if self.role == "extra_mgmt":
                row = L.NET_ROW_MGMT
            elif self.role == "business":
                row = L.NET_ROWS_BUSINESS.start
        return L.ref(L.SHEET_NET, f"{L.NET_COLS[fieldname]}{row}")

    @property
    def used(self) -> bool:
        """A network is in use when it has a subnet; a name alone (as in D5) does not count."""
        return self.subnet is not None

    @property
    def netmask(self) -> str | None:
        return str(self.subnet.netmask) if self.subnet else None


@dataclass(frozen=True)
class Host:
    row: int
    serial: str | None = None
    bmc_ip: IPv4Address | None = None
    bmc_user: str = L.DEFAULTS["bmc_user"]
    bmc_password: str = L.DEFAULTS["bmc_password"]
    hostname: str | None = None
    mgmt_ip: IPv4Address | None = None
    ssh_user: str = L.DEFAULTS["ssh_user"]
    ssh_password: str = L.DEFAULTS["ssh_password"]
    admin_user: str = L.DEFAULTS["admin_user"]
    admin_password: str = L.DEFAULTS["admin_password"]
    storage_ip: IPv4Address | None = None
    description: str | None = None
    rack: str | None = None
    rack_u: int | None = None

    def ref(self, fieldname: str) -> str:
        return L.ref(L.SHEET_HOSTS, f"{L.HOST_COLS[fieldname]}{self.row}")


@dataclass(frozen=True)
class Component:
    key: str                           # cloudtower | obs | backup
    vm_name: str
    version: str | None = None
    ip: IPv4Address | None = None
    web_user: str | None = None
    web_password: str | None = None
    ssh_user: str | None = None
    ssh_password: str | None = None
    sys_user: str | None = None
    sys_password: str | None = None
    serial: str | None = None

    @property
    def row(self) -> int:
        return L.COMPONENT_ROWS[self.key]

    def ref(self, fieldname: str) -> str:
        return L.ref(L.SHEET_MGMT, f"{L.COMPONENT_COLS[fieldname]}{self.row}")


@dataclass(frozen=True)
class Plan:
    source: Path
    sha256: str
    customer: str
    project: str | None
    datacenter: str
    cluster_name: str | None
    cluster_names: dict[str, str | None]        # ref -> value on each sheet that names the cluster
    bmc: Network
    mgmt: Network
    extra_mgmt: Network
    storage: Network
    backup: Network
    business_vds: str | None
    business_nics: tuple[str, ...]
    business_bond_mode: str | None
    business: tuple[Network, ...]
    hosts: tuple[Host, ...]
    cluster_version: str | None
    cluster_serial: str | None
    vip: IPv4Address | None
    cluster_admin_user: str
    cluster_admin_password: str
    feature: str
    storage_arch: str | None                    # hybrid-tiered | allflash-flat | raw text when unknown
    network_arch: str | None                    # separate | mgmt-business-shared | converged | raw text
    components: dict[str, Component]
    er_vip: IPv4Address | None
    er_nodes: tuple[IPv4Address, ...]
    test_range: tuple[IPv4Address | None, IPv4Address | None]
    ntp: tuple[str, ...]
    dns: tuple[str, ...]                        # validated to be IPs by the validator
    # refs whose raw value could not be converted (already reported by the parser)
    invalid: frozenset[str] = field(default_factory=frozenset)
    # raw text of cells as read, for messages
    raw: dict[str, object] = field(default_factory=dict, repr=False)

    # --- derived values -----------------------------------------------------
    @property
    def vhost_enabled(self) -> bool:
        return "Boost" in self.feature

    @property
    def rdma_enabled(self) -> bool:
        return "RDMA" in self.feature

    @property
    def tiered(self) -> bool:
        return self.storage_arch == "hybrid-tiered"

    @property
    def master_count(self) -> int:
        return 5 if len(self.hosts) >= 5 else min(3, len(self.hosts))

    @property
    def masters(self) -> tuple[Host, ...]:
        return self.hosts[: self.master_count]

    @property
    def cloudtower(self) -> Component:
        return self.components["cloudtower"]

    @property
    def business_on_mgmt_vds(self) -> bool:
        return self.network_arch == "mgmt-business-shared"

    @property
    def component_networks(self) -> tuple[IPv4Network, ...]:
        nets = [n.subnet for n in (self.mgmt, self.extra_mgmt) if n.subnet is not None]
        return tuple(nets)

    def test_addresses(self) -> list[IPv4Address]:
        start, end = self.test_range
        if start is None or end is None or int(end) < int(start) or int(end) - int(start) > 65535:
            return []
        return [ipaddress.IPv4Address(i) for i in range(int(start), int(end) + 1)]

    def secrets(self) -> set[str]:
        """Every password the plan holds (for redaction)."""
        out = {self.cluster_admin_password}
        for h in self.hosts:
            out.update((h.bmc_password, h.ssh_password, h.admin_password))
        for c in self.components.values():
            out.update(p for p in (c.web_password, c.ssh_password, c.sys_password) if p)
        return {s for s in out if s and s not in ("N/A", "-")}
