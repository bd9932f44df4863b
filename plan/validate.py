"""Semantic checks of a parsed plan. Every problem becomes a Finding naming its ``sheet!cell``.

The parser has already reported cells whose text could not be converted (IP, CIDR, integer,
unresolvable formula) and listed them in ``plan.invalid``; those cells carry ``None`` in the plan
and no finding of this module is ever reported on them.

Passwords are never quoted in any message.
"""
from __future__ import annotations

from pathlib import Path

from . import layout as L
from .check_addresses import AddressChecks
from .check_common import HOSTS, MGMT, NET, cell_ref, is_hostname, raw_text, sort_findings
from .check_links import LinkChecks
from .check_passwords import PasswordChecks
from .check_racks import RackChecks
from .model import Finding, Plan
from .parse import load


__all__ = ["validate", "check", "sort_findings", "is_hostname"]


class _Checker(AddressChecks, LinkChecks, PasswordChecks, RackChecks):
    def __init__(self, plan: Plan):
        self.plan = plan
        self.out: list[Finding] = []
        arch = plan.network_arch
        self.shared = arch == "mgmt-business-shared"
        # business VDS/NICs/bond are needed only when business networks go on their own VDS
        self.business_required = bool(plan.business) and arch == "separate"

    # --- plumbing -------------------------------------------------------------
    def required(self, ref: str, value: object, zh: str, en: str, fix_zh: str = "", fix_en: str = "") -> bool:
        if value not in (None, "", ()):
            return True
        self.add("PLAN-REQUIRED", ref, f"必填项「{zh}」未填写", f"required field '{en}' is empty",
                 fix_zh or f"填写{zh}", fix_en or f"fill in the {en}")
        return False

    def run(self) -> list[Finding]:
        for step in (self.required_fields, self.cluster_names, self.host_count, self.hostnames, self.choices,
                     self.gateways, self.subnets, self.addresses, self.test_range, self.vlans,
                     self.business_names, self.bonds, self.nics, self.dns_ntp, self.passwords, self.racks):
            step()
        return self.out

    # --- required fields --------------------------------------------------------
    def required_fields(self) -> None:
        p = self.plan
        self.required(cell_ref(NET, L.NET_CLUSTER_NAME), p.cluster_names.get(cell_ref(NET, L.NET_CLUSTER_NAME)),
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
        self.required(cell_ref(HOSTS, L.CLUSTER["vip"]), p.vip, "集群 VIP", "cluster VIP")
        self.required(cell_ref(HOSTS, L.CLUSTER["storage_arch"]), p.storage_arch, "存储架构", "storage architecture",
                      f"从下拉列表选择：{'、'.join(L.STORAGE_ARCHS)}",
                      f"choose one of {', '.join(L.STORAGE_ARCHS)}")
        self.required(cell_ref(HOSTS, L.CLUSTER["network_arch"]), p.network_arch, "网络架构", "network architecture",
                      "从下拉列表选择：三网独立 或 存储独立", "choose 三网独立 (separate) or 存储独立 (mgmt+business shared)")
        self.required(p.cloudtower.ref("ip"), p.cloudtower.ip, "CloudTower IP", "CloudTower IP")
        self.required(cell_ref(MGMT, L.NTP_CELLS[0]), p.ntp, "NTP 服务器（至少一个）", "NTP server (at least one)",
                      "填写至少一个 NTP 服务器的 IP 或域名", "enter at least one NTP server (IP or host name)")
        self.required(cell_ref(MGMT, L.DNS_CELLS[0]), p.dns, "DNS 服务器（至少一个）", "DNS server (at least one)",
                      "填写至少一个 DNS 服务器的 IP", "enter at least one DNS server IP")
        c8 = cell_ref(NET, f"{L.NET_COLS['vds']}{L.NET_ROWS_BUSINESS.start}")
        if self.business_required:
            self.required(c8, p.business_vds, "业务网络虚拟交换机名称", "business VDS name")
            self.required(cell_ref(NET, f"{L.NET_COLS['bond_mode']}{L.NET_ROWS_BUSINESS.start}"), p.business_bond_mode,
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
        main_ref = cell_ref(NET, L.NET_CLUSTER_NAME)
        main = names.get(main_ref)
        if main is None:
            return
        for ref, value in names.items():
            if ref == main_ref:
                continue
            if value is None:
                if ref == cell_ref(HOSTS, L.HOSTS_CLUSTER_NAME):
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
            self.add("PLAN-HOST-COUNT", cell_ref(HOSTS, f"{L.HOST_COLS['mgmt_ip']}{L.HOST_ROWS.start}"),
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
        arch_ref = cell_ref(HOSTS, L.CLUSTER["network_arch"])
        raw_arch = raw_text(p.raw.get(arch_ref)) or p.network_arch
        if p.network_arch == "converged":
            self.add("PLAN-NETWORK-ARCH-UNSUPPORTED", arch_ref,
                     f"网络架构「{raw_arch}」不受自动部署支持：仅支持「三网独立」和「存储独立」"
                     f"（见 {cell_ref(NET, L.NET_NOTE)} 的说明）",
                     f"network architecture {raw_arch!r} (converged) is not supported by the automation: only "
                     f"三网独立 (separate) and 存储独立 (mgmt+business shared, storage separate) are "
                     f"(see the note at {cell_ref(NET, L.NET_NOTE)})",
                     "改为「三网独立」或「存储独立」，并按该架构规划网络",
                     "choose 三网独立 or 存储独立 and plan the networks accordingly")
        elif p.network_arch is not None and p.network_arch not in L.NETWORK_ARCHS.values():
            self.add("PLAN-VALUE-CHOICE", arch_ref,
                     f"网络架构「{raw_arch}」不是下拉列表中的值（{'、'.join(L.NETWORK_ARCHS)}）",
                     f"network architecture {raw_arch!r} is not one of the drop-down values "
                     f"({', '.join(L.NETWORK_ARCHS)})",
                     "从下拉列表选择「三网独立」或「存储独立」",
                     "choose 三网独立 (separate) or 存储独立 (mgmt+business shared) from the drop-down")

        st_ref = cell_ref(HOSTS, L.CLUSTER["storage_arch"])
        if p.storage_arch is not None and p.storage_arch not in L.STORAGE_ARCHS.values():
            self.add("PLAN-VALUE-CHOICE", st_ref,
                     f"存储架构「{p.storage_arch}」不是下拉列表中的值（{'、'.join(L.STORAGE_ARCHS)}）",
                     f"storage architecture {p.storage_arch!r} is not one of the drop-down values "
                     f"({', '.join(L.STORAGE_ARCHS)})",
                     f"从下拉列表选择：{'、'.join(L.STORAGE_ARCHS)}", f"choose one of {', '.join(L.STORAGE_ARCHS)}")

        f_ref = cell_ref(HOSTS, L.CLUSTER["feature"])
        if p.feature not in L.FEATURES:
            self.add("PLAN-VALUE-CHOICE", f_ref,
                     f"集群功能「{p.feature}」不是下拉列表中的值（{'、'.join(L.FEATURES)}）",
                     f"cluster feature {p.feature!r} is not one of the drop-down values ({', '.join(L.FEATURES)})",
                     "从下拉列表选择 None 或 Boost（自动部署不支持 RDMA）",
                     "choose None or Boost from the drop-down (RDMA is not supported by the automation)")
        elif "RDMA" in p.feature:
            self.add("PLAN-FEATURE-RDMA-UNSUPPORTED", f_ref,
                     f"集群功能「{p.feature}」含 RDMA：自动部署平台尚不支持开启 RDMA（见 {cell_ref(HOSTS, 'B29')} 的说明）",
                     f"cluster feature {p.feature!r} includes RDMA, which the automation does not support "
                     f"(see the note at {cell_ref(HOSTS, 'B29')})",
                     "改为 None 或 Boost；如需 RDMA，部署后手工开启",
                     "choose None or Boost; enable RDMA by hand after deployment if needed")


def validate(plan: Plan) -> list[Finding]:
    """Semantic rules over a parsed plan. Cells in ``plan.invalid`` are never reported again."""
    return sort_findings(_Checker(plan).run())


def check(path: str | Path) -> tuple[Plan, list[Finding]]:
    """Parse and validate: the plan and all findings, errors first, then in workbook order."""
    plan, findings = load(path)
    return plan, sort_findings([*findings, *validate(plan)])
