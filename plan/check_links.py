"""Plan checks on VLANs, business network names, bonds, NICs, DNS and NTP."""
from __future__ import annotations

from clients.ipaddr import ipv4

from . import layout as L
from .check_common import MGMT, NET, ROLE, CheckerBase, cell_ref, is_hostname, locate
from .model import Network


class LinkChecks(CheckerBase):
    def vlans(self) -> None:
        p = self.plan
        for n in (p.bmc, *self._networks()):
            if n.vlan_id is not None and not 0 <= n.vlan_id <= 4094:
                zh, en = ROLE[n.role]
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
            cells.append((cell_ref(NET, f"{L.NET_COLS['bond_mode']}{L.NET_ROWS_BUSINESS.start}"), p.business_bond_mode,
                          "业务网络", "business networks"))
        for ref, mode, zh, en in cells:
            if mode is not None and mode not in L.BOND_MODES:
                self.add("PLAN-BOND-MODE", ref,
                         f"{zh}的网口绑定模式「{mode}」无效，可选：{'、'.join(L.BOND_MODES)}",
                         f"{en} bond mode {mode!r} is not one of {', '.join(L.BOND_MODES)}",
                         f"从下拉列表选择：{'、'.join(L.BOND_MODES)}", f"choose one of {', '.join(L.BOND_MODES)}")

    def nics(self) -> None:
        p = self.plan
        b8 = cell_ref(NET, f"{L.NET_COLS['nics']}{L.NET_ROWS_BUSINESS.start}")
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
        for ref, value in locate(p, MGMT, L.DNS_CELLS, p.dns):
            if ipv4(value) is None:
                self.add("PLAN-DNS-NOT-IP", ref, f"DNS 服务器「{value}」不是 IPv4 地址",
                         f"DNS server {value!r} is not an IPv4 address",
                         "填写 DNS 服务器的 IP 地址（不能用域名）", "enter the DNS server's IP address (not a name)")
        for ref, value in locate(p, MGMT, L.NTP_CELLS, p.ntp):
            if ipv4(value) is not None:
                continue
            labels = value.rstrip(".").split(".")
            if not is_hostname(value.rstrip(".")) or all(lb.isdigit() for lb in labels):
                self.add("PLAN-NTP-INVALID", ref, f"NTP 服务器「{value}」既不是有效的 IPv4 地址也不是有效的主机名",
                         f"NTP server {value!r} is neither a valid IPv4 address nor a valid host name",
                         "填写 NTP 服务器的 IP 或域名，例如 10.0.0.2 或 ntp.example.com",
                         "enter the NTP server's IP or host name, e.g. 10.0.0.2 or ntp.example.com")
