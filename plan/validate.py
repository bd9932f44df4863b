"""Semantic checks of a parsed plan. Every problem becomes a Finding naming its ``sheet!cell``.

The parser has already reported cells whose text could not be converted (IP, CIDR, integer,
unresolvable formula) and listed them in ``plan.invalid``; those cells carry ``None`` in the plan
and no finding of this module is ever reported on them.

Passwords are never quoted in any message.
"""
from __future__ import annotations

import re
import unicodedata
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from clients.ipaddr import ipv4

from . import layout as L
from .model import Finding, Network, Plan
from .parse import load
from .xlsx import col_index

__all__ = ["validate", "check", "sort_findings", "WEAK_DEFAULT_PASSWORDS"]

NET, HOSTS, MGMT = L.SHEET_NET, L.SHEET_HOSTS, L.SHEET_MGMT

WEAK_DEFAULT_PASSWORDS = frozenset({"HC!r0cks", "P@ssw0rd!123", "ADMIN", "admin", "root"})
_NOT_APPLICABLE = ("N/A", "n/a", "NA", "-")

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_CELL = re.compile(r"^([A-Z]{1,3})(\d+)$")
_SHEET_ORDER = {name: i for i, name in enumerate(L.ALL_SHEETS)}

_ARCH_LABEL = {v: k for k, v in L.NETWORK_ARCHS.items()}
_STORAGE_LABEL = {v: k for k, v in L.STORAGE_ARCHS.items()}
_ROLE = {
    "bmc": ("带外管理网络", "BMC network"),
    "mgmt": ("管理网络", "management network"),
    "extra_mgmt": ("管理组件网络", "management-component network"),
    "storage": ("存储网络", "storage network"),
    "backup": ("备份网络", "backup network"),
    "business": ("业务网络", "business network"),
}
_COMPONENT = {"cloudtower": "CloudTower", "obs": "Observability (OBS)", "backup": "Backup"}


def _r(sheet: str, cell: str) -> str:
    return L.ref(sheet, cell)


def _cell_key(ref: str) -> tuple[int, int, int]:
    sheet, _, cell = ref.partition("!")
    m = _CELL.match(cell)
    row, col = (int(m.group(2)), col_index(m.group(1))) if m else (1 << 30, 0)
    return _SHEET_ORDER.get(sheet, len(_SHEET_ORDER)), row, col


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors first, then by sheet order (as in the workbook), then row and column. Stable."""
    return sorted(findings, key=lambda f: (0 if f.is_error else 1, *_cell_key(f.ref)))


def _raw_text(v: object) -> str | None:
    """A raw cell value as the parser's ``text(technical=True)`` sees it."""
    if v in ("", None):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = unicodedata.normalize("NFKC", str(v)).strip().strip("\u3000\u00a0").strip()
    return s or None


def _locate(plan: Plan, sheet: str, cells: tuple[str, ...], values: tuple) -> list[tuple[str, object]]:
    """Map values the parser kept (non-empty cells, in order) back to their cells."""
    refs = [_r(sheet, c) for c in cells]
    if any(r in plan.raw for r in refs):
        present = [r for r in refs if r not in plan.invalid and _raw_text(plan.raw.get(r)) is not None]
        if len(present) == len(values):
            return list(zip(present, values))
    return list(zip(refs, values))


def is_hostname(name: str) -> bool:
    """RFC 1123 host name (labels 1..63 of [A-Za-z0-9-], no leading/trailing '-', total <= 253)."""
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _password_classes(pw: str) -> int:
    return sum((any(c.islower() and c.isascii() for c in pw), any(c.isupper() and c.isascii() for c in pw),
                any(c.isdigit() for c in pw), any(not (c.isascii() and c.isalnum()) for c in pw)))


class _Checker:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.out: list[Finding] = []
        arch = plan.network_arch
        self.shared = arch == "mgmt-business-shared"
        # business VDS/NICs/bond are needed only when business networks go on their own VDS
        self.business_required = bool(plan.business) and arch == "separate"

    # --- plumbing -------------------------------------------------------------
    def add(self, code: str, ref: str, zh: str, en: str, fix_zh: str, fix_en: str, severity: str = "error") -> None:
        if ref in self.plan.invalid:       # already reported by the parser
            return
        self.out.append(Finding(severity, code, zh, en, ref, fix_zh, fix_en))

    def required(self, ref: str, value: object, zh: str, en: str, fix_zh: str = "", fix_en: str = "") -> bool:
        if value not in (None, "", ()):
            return True
        self.add("PLAN-REQUIRED", ref, f"必填项「{zh}」未填写", f"required field '{en}' is empty",
                 fix_zh or f"填写{zh}", fix_en or f"fill in the {en}")
        return False

    def run(self) -> list[Finding]:
        for step in (self.required_fields, self.cluster_names, self.host_count, self.hostnames, self.choices,
                     self.gateways, self.subnets, self.addresses, self.test_range, self.vlans,
                     self.business_names, self.bonds, self.nics, self.dns_ntp, self.passwords):
            step()
        return self.out

    # --- required fields --------------------------------------------------------
    def required_fields(self) -> None:
        p = self.plan
        self.required(_r(NET, L.NET_CLUSTER_NAME), p.cluster_names.get(_r(NET, L.NET_CLUSTER_NAME)),
                      "集群名称", "cluster name")
        m, s = p.mgmt, p.storage
        self.required(m.ref("vds"), m.vds, "管理网络虚拟交换机名称", "management VDS name")
        self.required(m.ref("subnet"), m.subnet, "管理网络子网（CIDR）", "management subnet (CIDR)",
                      "填写形如 10.0.20.0/24 的子网", "enter a subnet such as 10.0.20.0/24")
        self.required(m.ref("gateway"), m.gateway, "管理网络网关", "management gateway")
        self.required(m.ref("bond_mode"), m.bond_mode, "管理网络网口绑定模式", "management bond mode",
                      f"从下拉列表选择：{'、'.join(L.BOND_MODES)}", f"choose one of {', '.join(L.BOND_MODES)}")
        self.required(s.ref("vds"), s.vds, "存储网络虚拟交换机名称", "storage VDS name")
        self.required(s.ref("subnet"), s.subnet, "存储网络子网（CIDR）", "storage subnet (CIDR)",
                      "填写形如 10.0.21.0/24 的子网", "enter a subnet such as 10.0.21.0/24")
        self.required(s.ref("bond_mode"), s.bond_mode, "存储网络网口绑定模式", "storage bond mode",
                      f"从下拉列表选择：{'、'.join(L.BOND_MODES)}", f"choose one of {', '.join(L.BOND_MODES)}")
        b = p.backup
        if b.used or b.nics:
            self.required(b.ref("bond_mode"), b.bond_mode, "备份网络网口绑定模式", "backup bond mode",
                          f"从下拉列表选择：{'、'.join(L.BOND_MODES)}", f"choose one of {', '.join(L.BOND_MODES)}")
        if b.used:
            self.required(b.ref("vds"), b.vds, "备份网络虚拟交换机名称", "backup VDS name")
        for h in p.hosts:
            self.required(h.ref("hostname"), h.hostname, f"第 {h.row} 行主机名", f"hostname of host row {h.row}")
            self.required(h.ref("storage_ip"), h.storage_ip, f"第 {h.row} 行存储 IP",
                          f"storage IP of host row {h.row}")
        self.required(_r(HOSTS, L.CLUSTER["vip"]), p.vip, "集群 VIP", "cluster VIP")
        self.required(_r(HOSTS, L.CLUSTER["storage_arch"]), p.storage_arch, "存储架构", "storage architecture",
                      f"从下拉列表选择：{'、'.join(L.STORAGE_ARCHS)}",
                      f"choose one of {', '.join(L.STORAGE_ARCHS)}")
        self.required(_r(HOSTS, L.CLUSTER["network_arch"]), p.network_arch, "网络架构", "network architecture",
                      "从下拉列表选择：三网独立 或 存储独立", "choose 三网独立 (separate) or 存储独立 (mgmt+business shared)")
        self.required(p.cloudtower.ref("ip"), p.cloudtower.ip, "CloudTower IP", "CloudTower IP")
        self.required(_r(MGMT, L.NTP_CELLS[0]), p.ntp, "NTP 服务器（至少一个）", "NTP server (at least one)",
                      "填写至少一个 NTP 服务器的 IP 或域名", "enter at least one NTP server (IP or host name)")
        self.required(_r(MGMT, L.DNS_CELLS[0]), p.dns, "DNS 服务器（至少一个）", "DNS server (at least one)",
                      "填写至少一个 DNS 服务器的 IP", "enter at least one DNS server IP")
        c8 = _r(NET, f"{L.NET_COLS['vds']}{L.NET_ROWS_BUSINESS.start}")
        if self.business_required:
            self.required(c8, p.business_vds, "业务网络虚拟交换机名称", "business VDS name")
            self.required(_r(NET, f"{L.NET_COLS['bond_mode']}{L.NET_ROWS_BUSINESS.start}"), p.business_bond_mode,
                          "业务网络网口绑定模式", "business bond mode",
                          f"从下拉列表选择：{'、'.join(L.BOND_MODES)}", f"choose one of {', '.join(L.BOND_MODES)}")
        elif self.shared and p.business and p.business_vds and p.mgmt.vds and p.business_vds != p.mgmt.vds:
            self.add("PLAN-BUSINESS-VDS-IGNORED", c8,
                     f"网络架构为「存储独立」时业务网络部署在管理虚拟交换机「{p.mgmt.vds}」（{p.mgmt.ref('vds')}）上，"
                     f"此处填写的「{p.business_vds}」将被忽略",
                     f"with network architecture 存储独立 (mgmt+business shared) the business networks go on the "
                     f"management VDS {p.mgmt.vds!r} ({p.mgmt.ref('vds')}); {p.business_vds!r} here is ignored",
                     f"清空此单元格或改为「{p.mgmt.vds}」", f"clear this cell or set it to {p.mgmt.vds!r}",
                     severity="warning")

    # --- cluster name -------------------------------------------------------------
    def cluster_names(self) -> None:
        names = self.plan.cluster_names
        main_ref = _r(NET, L.NET_CLUSTER_NAME)
        main = names.get(main_ref)
        if main is None:
            return
        for ref, value in names.items():
            if ref == main_ref:
                continue
            if value is None:
                if ref == _r(HOSTS, L.HOSTS_CLUSTER_NAME):
                    self.add("PLAN-CLUSTER-NAME-MISMATCH", ref,
                             f"集群名称为空，而 {main_ref} 为「{main}」",
                             f"cluster name is blank here while {main_ref} is {main!r}",
                             f"填写「{main}」或公式 ={NET}!{L.NET_CLUSTER_NAME}",
                             f"enter {main!r} or the formula ={NET}!{L.NET_CLUSTER_NAME}", severity="warning")
            elif value != main:
                self.add("PLAN-CLUSTER-NAME-MISMATCH", ref,
                         f"集群名称「{value}」与 {main_ref} 的「{main}」不一致",
                         f"cluster name {value!r} differs from {main!r} in {main_ref}",
                         f"改为「{main}」（各工作表的集群名称必须一致）",
                         f"change it to {main!r} (every sheet must name the same cluster)")

    # --- hosts ------------------------------------------------------------------------
    def host_count(self) -> None:
        n = len(self.plan.hosts)
        if not 3 <= n <= 16:
            self.add("PLAN-HOST-COUNT", _r(HOSTS, f"{L.HOST_COLS['mgmt_ip']}{L.HOST_ROWS.start}"),
                     f"主机数量为 {n}（以管理 IP 已填写的行计），集群需要 3 到 16 台主机",
                     f"{n} host(s) planned (rows with a management IP); a cluster needs 3 to 16 hosts",
                     "在主机规划第 3..18 行填写 3 到 16 台主机（含管理 IP）",
                     "plan 3 to 16 hosts in rows 3..18, each with a management IP")

    def hostnames(self) -> None:
        seen: dict[str, str] = {}
        for h in self.plan.hosts:
            name = h.hostname
            if not name:
                continue
            ref = h.ref("hostname")
            if not is_hostname(name):
                self.add("PLAN-HOSTNAME-INVALID", ref,
                         f"主机名「{name}」不符合 RFC 1123：每段 1–63 个字母、数字或连字符，不能以连字符开头或结尾，总长不超过 253",
                         f"hostname {name!r} is not a valid RFC 1123 name: labels of 1-63 letters, digits or '-', "
                         f"not starting or ending with '-', at most 253 characters in all",
                         "只用字母、数字和连字符，例如 BJ-SMTX-Prod-Node-01",
                         "use letters, digits and hyphens only, e.g. BJ-SMTX-Prod-Node-01")
            key = name.lower()
            if key in seen:
                self.add("PLAN-HOSTNAME-DUPLICATE", ref,
                         f"主机名「{name}」与 {seen[key]} 重复（不区分大小写）",
                         f"hostname {name!r} duplicates {seen[key]} (case-insensitive)",
                         "为每台主机使用不同的主机名", "give every host a distinct hostname")
            else:
                seen[key] = ref

    # --- drop-down choices ------------------------------------------------------------
    def choices(self) -> None:
        p = self.plan
        arch_ref = _r(HOSTS, L.CLUSTER["network_arch"])
        raw_arch = _raw_text(p.raw.get(arch_ref)) or p.network_arch
        if p.network_arch == "converged":
            self.add("PLAN-NETWORK-ARCH-UNSUPPORTED", arch_ref,
                     f"网络架构「{raw_arch}」不受自动部署支持：仅支持「三网独立」和「存储独立」"
                     f"（见 {_r(NET, L.NET_NOTE)} 的说明）",
                     f"network architecture {raw_arch!r} (converged) is not supported by the automation: only "
                     f"三网独立 (separate) and 存储独立 (mgmt+business shared, storage separate) are "
                     f"(see the note at {_r(NET, L.NET_NOTE)})",
                     "改为「三网独立」或「存储独立」，并按该架构规划网络",
                     "choose 三网独立 or 存储独立 and plan the networks accordingly")
        elif p.network_arch is not None and p.network_arch not in L.NETWORK_ARCHS.values():
            self.add("PLAN-VALUE-CHOICE", arch_ref,
                     f"网络架构「{raw_arch}」不是下拉列表中的值（{'、'.join(L.NETWORK_ARCHS)}）",
                     f"network architecture {raw_arch!r} is not one of the drop-down values "
                     f"({', '.join(L.NETWORK_ARCHS)})",
                     "从下拉列表选择「三网独立」或「存储独立」",
                     "choose 三网独立 (separate) or 存储独立 (mgmt+business shared) from the drop-down")

        st_ref = _r(HOSTS, L.CLUSTER["storage_arch"])
        if p.storage_arch is not None and p.storage_arch not in L.STORAGE_ARCHS.values():
            self.add("PLAN-VALUE-CHOICE", st_ref,
                     f"存储架构「{p.storage_arch}」不是下拉列表中的值（{'、'.join(L.STORAGE_ARCHS)}）",
                     f"storage architecture {p.storage_arch!r} is not one of the drop-down values "
                     f"({', '.join(L.STORAGE_ARCHS)})",
                     f"从下拉列表选择：{'、'.join(L.STORAGE_ARCHS)}", f"choose one of {', '.join(L.STORAGE_ARCHS)}")

        f_ref = _r(HOSTS, L.CLUSTER["feature"])
        if p.feature not in L.FEATURES:
            self.add("PLAN-VALUE-CHOICE", f_ref,
                     f"集群功能「{p.feature}」不是下拉列表中的值（{'、'.join(L.FEATURES)}）",
                     f"cluster feature {p.feature!r} is not one of the drop-down values ({', '.join(L.FEATURES)})",
                     "从下拉列表选择 None 或 Boost（自动部署不支持 RDMA）",
                     "choose None or Boost from the drop-down (RDMA is not supported by the automation)")
        elif "RDMA" in p.feature:
            self.add("PLAN-FEATURE-RDMA-UNSUPPORTED", f_ref,
                     f"集群功能「{p.feature}」含 RDMA：自动部署平台尚不支持开启 RDMA（见 {_r(HOSTS, 'B29')} 的说明）",
                     f"cluster feature {p.feature!r} includes RDMA, which the automation does not support "
                     f"(see the note at {_r(HOSTS, 'B29')})",
                     "改为 None 或 Boost；如需 RDMA，部署后手工开启",
                     "choose None or Boost; enable RDMA by hand after deployment if needed")

    # --- networks -------------------------------------------------------------------------
    def _networks(self) -> list[Network]:
        p = self.plan
        return [p.mgmt, p.extra_mgmt, p.storage, p.backup, *p.business]

    def gateways(self) -> None:
        for n in self._networks():
            if n.subnet is None or n.gateway is None:
                continue
            zh_role, en_role = _ROLE[n.role]
            label_zh = f"{zh_role}「{n.name}」" if n.role == "business" else zh_role
            label_en = f"{en_role} {n.name!r}" if n.role == "business" else en_role
            sref, gw, net = n.ref("subnet"), n.gateway, n.subnet
            if gw not in net:
                self.add("PLAN-GATEWAY-NOT-IN-SUBNET", n.ref("gateway"),
                         f"{label_zh}的网关 {gw} 不在其子网 {net}（{sref}）内",
                         f"{label_en} gateway {gw} is outside its subnet {net} ({sref})",
                         f"填写 {net} 内的网关地址，或更正子网", f"enter a gateway inside {net}, or correct the subnet")
            elif net.prefixlen <= 30 and gw in (net.network_address, net.broadcast_address):
                kind_zh, kind_en = ("网络地址", "network address") if gw == net.network_address else \
                    ("广播地址", "broadcast address")
                self.add("PLAN-GATEWAY-NOT-IN-SUBNET", n.ref("gateway"),
                         f"{label_zh}的网关 {gw} 是子网 {net}（{sref}）的{kind_zh}，不能作为网关",
                         f"{label_en} gateway {gw} is the {kind_en} of its subnet {net} ({sref})",
                         f"填写 {net} 内可用的主机地址作为网关", f"enter a usable host address of {net} as gateway")

    def _reserved(self, ref: str, ip: IPv4Address, net: IPv4Network, what_zh: str, what_en: str) -> None:
        if net.prefixlen <= 30 and ip in (net.network_address, net.broadcast_address):
            kind_zh, kind_en = ("网络地址", "network address") if ip == net.network_address else \
                ("广播地址", "broadcast address")
            self.add("PLAN-ADDRESS-RESERVED", ref, f"{what_zh} {ip} 是子网 {net} 的{kind_zh}，不可分配",
                     f"{what_en} {ip} is the {kind_en} of subnet {net} and cannot be assigned",
                     f"改为 {net} 内可用的主机地址", f"use a usable host address of {net}")

    def _component_addresses(self) -> list[tuple[str, IPv4Address, str, str]]:
        p = self.plan
        out = []
        for key, c in p.components.items():
            if c.ip is not None:
                out.append((c.ref("ip"), c.ip, f"{_COMPONENT[key]} IP", f"{_COMPONENT[key]} IP"))
        if p.er_vip is not None:
            out.append((_r(MGMT, L.ER_VIP), p.er_vip, "ER 控制器 VIP", "ER controller VIP"))
        for ref, ip in _locate(p, MGMT, L.ER_NODES, p.er_nodes):
            out.append((ref, ip, "ER 节点 IP", "ER node IP"))
        return out

    def subnets(self) -> None:
        self._mgmt_subnet()
        self._component_subnets()
        self._storage_subnet()

    def _mgmt_subnet(self) -> None:
        """Host management IPs and the VIP sit inside the management subnet."""
        p = self.plan
        mnet, mref = p.mgmt.subnet, p.mgmt.ref("subnet")
        if mnet is not None:
            for h in p.hosts:
                if h.mgmt_ip is None:
                    continue
                if h.mgmt_ip not in mnet:
                    self.add("PLAN-NOT-IN-MGMT-SUBNET", h.ref("mgmt_ip"),
                             f"主机管理 IP {h.mgmt_ip} 不在管理网络 {mnet}（{mref}）内",
                             f"host management IP {h.mgmt_ip} is outside the management subnet {mnet} ({mref})",
                             f"改为 {mnet} 内的地址", f"use an address inside {mnet}")
                else:
                    self._reserved(h.ref("mgmt_ip"), h.mgmt_ip, mnet, "主机管理 IP", "host management IP")
            if p.vip is not None:
                vref = _r(HOSTS, L.CLUSTER["vip"])
                if p.vip not in mnet:
                    self.add("PLAN-NOT-IN-MGMT-SUBNET", vref,
                             f"集群 VIP {p.vip} 不在管理网络 {mnet}（{mref}）内",
                             f"cluster VIP {p.vip} is outside the management subnet {mnet} ({mref})",
                             f"改为 {mnet} 内的地址", f"use an address inside {mnet}")
                else:
                    self._reserved(vref, p.vip, mnet, "集群 VIP", "cluster VIP")

    def _component_subnets(self) -> None:
        """Components and the test range sit on the management network, or the extra one (row 5)."""
        p = self.plan
        allowed = [(n.subnet, n.ref("subnet")) for n in (p.mgmt, p.extra_mgmt) if n.subnet is not None]
        if allowed:
            where_zh = " 或 ".join(f"{net}（{ref}）" for net, ref in allowed)
            where_en = " or ".join(f"{net} ({ref})" for net, ref in allowed)
            nets_zh = "管理网络或管理组件网络" if len(allowed) > 1 else "管理网络"
            nets_en = "management or management-component subnet" if len(allowed) > 1 else "management subnet"
            items = self._component_addresses()
            test_refs = {_r(MGMT, c) for c in L.TEST_RANGE}
            start, end = p.test_range
            for cell, ip in zip(L.TEST_RANGE, (start, end)):
                if ip is not None:
                    items.append((_r(MGMT, cell), ip, "测试临时 IP 范围" + ("起始" if cell == L.TEST_RANGE[0] else "结束"),
                                  "test IP range " + ("start" if cell == L.TEST_RANGE[0] else "end")))
            for ref, ip, zh, en in items:
                inside = [net for net, _ in allowed if ip in net]
                if not inside:
                    self.add("PLAN-NOT-IN-MGMT-SUBNET", ref, f"{zh} {ip} 不在{nets_zh} {where_zh}内",
                             f"{en} {ip} is outside the {nets_en} {where_en}",
                             f"改为 {where_zh}内的地址", f"use an address inside {where_en}")
                elif ref not in test_refs:
                    self._reserved(ref, ip, inside[0], zh, en)

    def _storage_subnet(self) -> None:
        p = self.plan
        snet, sref = p.storage.subnet, p.storage.ref("subnet")
        if snet is not None:
            for h in p.hosts:
                if h.storage_ip is None:
                    continue
                if h.storage_ip not in snet:
                    self.add("PLAN-NOT-IN-STORAGE-SUBNET", h.ref("storage_ip"),
                             f"主机存储 IP {h.storage_ip} 不在存储网络 {snet}（{sref}）内",
                             f"host storage IP {h.storage_ip} is outside the storage subnet {snet} ({sref})",
                             f"改为 {snet} 内的地址", f"use an address inside {snet}")
                else:
                    self._reserved(h.ref("storage_ip"), h.storage_ip, snet, "主机存储 IP", "host storage IP")

    def _addresses(self) -> list[tuple[str, IPv4Address, str, str]]:
        """Every assigned address, in workbook order."""
        p = self.plan
        items = []
        for h in p.hosts:
            for fieldname, zh, en in (("bmc_ip", "带外 IP", "BMC IP"), ("mgmt_ip", "管理 IP", "management IP"),
                                      ("storage_ip", "存储 IP", "storage IP")):
                ip = getattr(h, fieldname)
                if ip is not None:
                    items.append((h.ref(fieldname), ip, f"主机{zh}", f"host {en}"))
        if p.vip is not None:
            items.append((_r(HOSTS, L.CLUSTER["vip"]), p.vip, "集群 VIP", "cluster VIP"))
        items.extend(self._component_addresses())
        items.sort(key=lambda t: _cell_key(t[0]))
        return items

    def addresses(self) -> None:
        p = self.plan
        gateways = {}
        for n in (p.bmc, *self._networks()):
            if n.gateway is not None:
                gateways.setdefault(n.gateway, n.ref("gateway"))
        first: dict[IPv4Address, str] = {}
        for ref, ip, zh, en in self._addresses():
            if ip in first:
                self.add("PLAN-DUPLICATE-ADDRESS", ref, f"{zh} {ip} 与 {first[ip]} 重复",
                         f"{en} {ip} is already used at {first[ip]}",
                         "为每个主机和组件分配不同的地址", "give every host and component its own address")
            elif ip in gateways:
                self.add("PLAN-DUPLICATE-ADDRESS", ref, f"{zh} {ip} 与网关 {gateways[ip]} 相同",
                         f"{en} {ip} equals the gateway at {gateways[ip]}",
                         "改用未被网关占用的地址", "use an address not taken by a gateway")
                first[ip] = ref
            else:
                first[ip] = ref
        self._range_overlap(first, gateways)

    def _range_overlap(self, used: dict[IPv4Address, str], gateways: dict[IPv4Address, str]) -> None:
        start, end = self.plan.test_range
        if start is None or end is None or end < start:
            return
        ref = _r(MGMT, L.TEST_RANGE[0])
        lo, hi = int(start), int(end)
        taken = [(ip, other, False) for ip, other in used.items()]
        taken += [(ip, other, True) for ip, other in gateways.items() if ip not in used]
        hits = [t for t in sorted(taken, key=lambda t: _cell_key(t[1])) if lo <= int(t[0]) <= hi]
        if not hits:
            return
        shown, more = hits[:6], len(hits) - 6
        zh = "、".join(f"{ip}（{'网关 ' if gw else ''}{other}）" for ip, other, gw in shown)
        en = ", ".join(f"{ip} ({'gateway ' if gw else ''}{other})" for ip, other, gw in shown)
        if more > 0:
            zh, en = f"{zh}等另 {more} 个", f"{en} and {more} more"
        self.add("PLAN-TEST-RANGE-OVERLAP", ref,
                 f"测试临时 IP 范围 {start}–{end} 包含 {len(hits)} 个已分配的地址：{zh}",
                 f"the test IP range {start}-{end} includes {len(hits)} address(es) already assigned: {en}",
                 "把测试范围改到未分配的地址段", "move the test range to unassigned addresses")

    def test_range(self) -> None:
        p = self.plan
        start, end = p.test_range
        sref, eref = _r(MGMT, L.TEST_RANGE[0]), _r(MGMT, L.TEST_RANGE[1])
        if (start is None) != (end is None):
            if sref in p.invalid or eref in p.invalid:
                return
            missing, given, gv = (sref, eref, end) if start is None else (eref, sref, start)
            self.add("PLAN-TEST-RANGE", missing,
                     f"测试临时 IP 范围只填写了一端（{given} 为 {gv}），缺少此端",
                     f"the test IP range has only one end ({given} is {gv}); this end is missing",
                     "起始和结束地址都填写，或都留空", "fill in both the start and the end, or neither")
            return
        if start is None or end is None:
            return
        if end < start:
            self.add("PLAN-TEST-RANGE", eref,
                     f"测试临时 IP 范围结束地址 {end} 小于起始地址 {start}（{sref}）",
                     f"the test IP range ends at {end}, before its start {start} ({sref})",
                     "交换起止地址或更正", "swap or correct the start and end addresses")
            return
        # the whole range must lie inside one subnet (each end is checked with the components)
        for n in (p.mgmt, p.extra_mgmt):
            net = n.subnet
            if net is not None and start in net:
                if end not in net:
                    return          # the end is reported as outside the subnet(s)
                if net.prefixlen <= 30 and (start == net.network_address or end == net.broadcast_address):
                    self.add("PLAN-TEST-RANGE", sref if start == net.network_address else eref,
                             f"测试临时 IP 范围 {start}–{end} 包含子网 {net} 的网络地址或广播地址",
                             f"the test IP range {start}-{end} includes the network or broadcast address of {net}",
                             "只使用子网内可分配的主机地址", "use assignable host addresses of the subnet only")
                return

    def vlans(self) -> None:
        p = self.plan
        for n in (p.bmc, *self._networks()):
            if n.vlan_id is not None and not 0 <= n.vlan_id <= 4094:
                zh, en = _ROLE[n.role]
                self.add("PLAN-VLAN-RANGE", n.ref("vlan_id"), f"{zh}「{n.name}」的 VLAN ID {n.vlan_id} 超出 0–4094",
                         f"{en} {n.name!r} has VLAN id {n.vlan_id}, outside 0-4094",
                         "填写 0（不打标签）到 4094 之间的 VLAN ID", "enter a VLAN id from 0 (untagged) to 4094")
        groups = [[p.mgmt, p.extra_mgmt, *(p.business if self.shared else ())], [p.storage], [p.backup]]
        if not self.shared:
            groups.append(list(p.business))
        for group in groups:
            seen: dict[int, Network] = {}
            for n in sorted(group, key=lambda n: n.row):
                v = n.vlan_id
                if v is None:
                    continue
                other = seen.get(v)
                if other is not None and (v != 0 or (n.role == "business" and other.role == "business")):
                    self.add("PLAN-VLAN-DUPLICATE", n.ref("vlan_id"),
                             f"网络「{n.name}」的 VLAN ID {v} 与同一虚拟交换机上的网络「{other.name}」"
                             f"（{other.ref('vlan_id')}）重复",
                             f"network {n.name!r} uses VLAN {v}, already used by {other.name!r} "
                             f"({other.ref('vlan_id')}) on the same VDS",
                             "同一虚拟交换机上的网络使用不同的 VLAN ID", "give each network on a VDS its own VLAN id")
                else:
                    seen.setdefault(v, n)

    def business_names(self) -> None:
        seen: dict[str, str] = {}
        for n in self.plan.business:
            ref = n.ref("name")
            if n.name in seen:
                self.add("PLAN-BUSINESS-NAME-DUPLICATE", ref, f"业务网络名称「{n.name}」与 {seen[n.name]} 重复",
                         f"business network name {n.name!r} duplicates {seen[n.name]}",
                         "为每个业务网络使用不同的名称", "give every business network its own name")
            else:
                seen[n.name] = ref

    def bonds(self) -> None:
        p = self.plan
        cells = [(p.mgmt.ref("bond_mode"), p.mgmt.bond_mode, "管理网络", "management network"),
                 (p.storage.ref("bond_mode"), p.storage.bond_mode, "存储网络", "storage network")]
        if p.backup.used or p.backup.nics:
            cells.append((p.backup.ref("bond_mode"), p.backup.bond_mode, "备份网络", "backup network"))
        if self.business_required:
            cells.append((_r(NET, f"{L.NET_COLS['bond_mode']}{L.NET_ROWS_BUSINESS.start}"), p.business_bond_mode,
                          "业务网络", "business networks"))
        for ref, mode, zh, en in cells:
            if mode is not None and mode not in L.BOND_MODES:
                self.add("PLAN-BOND-MODE", ref,
                         f"{zh}的网口绑定模式「{mode}」无效，可选：{'、'.join(L.BOND_MODES)}",
                         f"{en} bond mode {mode!r} is not one of {', '.join(L.BOND_MODES)}",
                         f"从下拉列表选择：{'、'.join(L.BOND_MODES)}", f"choose one of {', '.join(L.BOND_MODES)}")

    def nics(self) -> None:
        p = self.plan
        b8 = _r(NET, f"{L.NET_COLS['nics']}{L.NET_ROWS_BUSINESS.start}")
        lists = [(p.mgmt.ref("nics"), p.mgmt.nics, "管理网络", "management network", True),
                 (p.storage.ref("nics"), p.storage.nics, "存储网络", "storage network", True),
                 (p.backup.ref("nics"), p.backup.nics, "备份网络", "backup network", p.backup.used)]
        if not self.shared and p.business:
            lists.append((b8, p.business_nics, "业务网络", "business networks", self.business_required))
        owner: dict[str, str] = {}
        for ref, nics, zh, en, needed in lists:
            if not nics:
                if needed:
                    self.add("PLAN-NICS-EMPTY", ref, f"{zh}的主机端口（网卡）列表为空",
                             f"the {en} NIC list is empty",
                             "填写网卡名，多个用逗号分隔，例如 ens224,ens192",
                             "enter the NIC names, comma separated, e.g. ens224,ens192")
                continue
            mine: set[str] = set()
            for nic in nics:
                if nic in mine:
                    self.add("PLAN-NIC-SHARED", ref, f"{zh}的网卡列表中「{nic}」重复出现",
                             f"NIC {nic!r} appears twice in the {en} NIC list",
                             "每个网卡只写一次", "list each NIC once")
                    continue
                mine.add(nic)
                if nic in owner:
                    self.add("PLAN-NIC-SHARED", ref, f"网卡「{nic}」已用于 {owner[nic]}，不能同时用于{zh}",
                             f"NIC {nic!r} is already used at {owner[nic]}; it cannot also serve the {en}",
                             "每个网卡只分配给一个虚拟交换机", "assign every NIC to one VDS only")
            for nic in mine:
                owner.setdefault(nic, ref)

    def dns_ntp(self) -> None:
        p = self.plan
        for ref, value in _locate(p, MGMT, L.DNS_CELLS, p.dns):
            if ipv4(value) is None:
                self.add("PLAN-DNS-NOT-IP", ref, f"DNS 服务器「{value}」不是 IPv4 地址",
                         f"DNS server {value!r} is not an IPv4 address",
                         "填写 DNS 服务器的 IP 地址（不能用域名）", "enter the DNS server's IP address (not a name)")
        for ref, value in _locate(p, MGMT, L.NTP_CELLS, p.ntp):
            if ipv4(value) is not None:
                continue
            labels = value.rstrip(".").split(".")
            if not is_hostname(value.rstrip(".")) or all(lb.isdigit() for lb in labels):
                self.add("PLAN-NTP-INVALID", ref, f"NTP 服务器「{value}」既不是有效的 IPv4 地址也不是有效的主机名",
                         f"NTP server {value!r} is neither a valid IPv4 address nor a valid host name",
                         "填写 NTP 服务器的 IP 或域名，例如 10.0.0.2 或 ntp.example.com",
                         "enter the NTP server's IP or host name, e.g. 10.0.0.2 or ntp.example.com")

    # --- passwords -------------------------------------------------------------------------
    def passwords(self) -> None:
        p = self.plan
        cells: list[tuple[str, str | None, str, str]] = []   # ref, value (None = default used), zh, en
        raw = p.raw
        for h in p.hosts:
            for fieldname, zh, en in (("bmc_password", "带外（BMC）密码", "BMC password"),
                                      ("ssh_password", "SSH 密码", "SSH password"),
                                      ("admin_password", "管理员密码", "host admin password")):
                ref = h.ref(fieldname)
                blank = ref in raw and raw[ref] in ("", None)
                cells.append((ref, None if blank else getattr(h, fieldname),
                              f"第 {h.row} 行主机的{zh}", f"{en} of host row {h.row}"))
        cref = _r(HOSTS, L.CLUSTER["admin_password"])
        cells.append((cref, None if cref in raw and raw[cref] in ("", None) else p.cluster_admin_password,
                      "集群管理员密码", "cluster admin password"))
        needed = {"cloudtower": ("web_password", "ssh_password", "sys_password"),
                  "obs": ("ssh_password", "sys_password"), "backup": ("ssh_password", "sys_password")}
        kinds = {"web_password": ("Web 管理员密码", "web admin password"),
                 "ssh_password": ("SSH 密码", "SSH password"), "sys_password": ("系统管理员密码", "system admin password")}
        for key, c in p.components.items():
            if c.ip is None:
                continue
            for fieldname in ("web_password", "ssh_password", "sys_password"):
                value = getattr(c, fieldname)
                zh, en = kinds[fieldname]
                zh, en = f"{_COMPONENT[key]} {zh}", f"{_COMPONENT[key]} {en}"
                ref = c.ref(fieldname)
                if fieldname in needed[key] and (value is None or value.strip() in _NOT_APPLICABLE):
                    self.add("PLAN-PASSWORD-EMPTY", ref,
                             f"{zh}未填写（{_COMPONENT[key]} 已规划 IP {c.ip}，需要该密码）",
                             f"{en} is empty ({_COMPONENT[key]} has IP {c.ip} planned and needs it)",
                             "填写该密码", "enter this password")
                    continue
                if value is None or value.strip() in _NOT_APPLICABLE:
                    continue
                cells.append((ref, value, zh, en))
        self.cloudtower_admin_password()
        for ref, value, zh, en in cells:
            reason = _weakness(value)
            if reason:
                self.add("PLAN-PASSWORD-WEAK", ref, f"{zh}强度不足：{reason[0]}", f"{en} is weak: {reason[1]}",
                         "使用至少 8 位、含大写、小写、数字、符号中至少三类且非默认值的密码",
                         "use 8+ characters from at least 3 of upper, lower, digit, symbol, not a default",
                         severity="warning")


    def cloudtower_admin_password(self) -> None:
        """CloudTower's first-run setup can only give root the fixed default password (the guide sends a
        fixed encoded value), so a planned web admin password that differs is set by hand after handover.
        The run notes the same thing at 01.plan; it is said here first, with its cell."""
        ct = self.plan.components.get("cloudtower")
        if ct is None or ct.ip is None or not ct.web_password or ct.web_password.strip() in _NOT_APPLICABLE:
            return
        if ct.web_password != L.DEFAULT_PASSWORD:
            self.add("PLAN-CLOUDTOWER-ADMIN-PASSWORD", ct.ref("web_password"),
                     "CloudTower 管理员密码与默认值不同，但部署 API 只能把 root 设为默认密码",
                     "the CloudTower admin password differs from the default, which is all the deployment API "
                     "can set",
                     "交付后在 CloudTower 中手动修改为规划的密码", "change it to the planned one in CloudTower after handover",
                     severity="warning")


def _weakness(value: str | None) -> tuple[str, str] | None:
    """Why a password is weak (never quoting it), or None. None value = the documented default is used."""
    if value is None:
        return "单元格为空，将使用公开的默认密码", "the cell is blank, so the well-known default password is used"
    if value in WEAK_DEFAULT_PASSWORDS:
        return "使用的是公开的默认密码", "it is a well-known default password"
    if len(value) < 8:
        return f"长度只有 {len(value)} 位（至少 8 位）", f"only {len(value)} characters (at least 8)"
    n = _password_classes(value)
    if n < 3:
        return (f"只包含 {n} 类字符（大写、小写、数字、符号中至少需要 3 类）",
                f"only {n} character class(es) (needs 3 of upper, lower, digit, symbol)")
    return None


def validate(plan: Plan) -> list[Finding]:
    """Semantic rules over a parsed plan. Cells in ``plan.invalid`` are never reported again."""
    return sort_findings(_Checker(plan).run())


def check(path: str | Path) -> tuple[Plan, list[Finding]]:
    """Parse and validate: the plan and all findings, errors first, then in workbook order."""
    plan, findings = load(path)
    return plan, sort_findings([*findings, *validate(plan)])
