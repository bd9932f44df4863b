"""Plan checks on subnets, gateways and addresses (used, reserved, overlapping, the test range)."""
from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from . import layout as L
from .check_common import COMPONENT, HOSTS, MGMT, ROLE, CheckerBase, cell_key, cell_ref, locate


class AddressChecks(CheckerBase):
    # --- subnets, gateways, addresses -----------------------------------------------------
    def gateways(self) -> None:
        for n in self._networks():
            if n.subnet is None or n.gateway is None:
                continue
            zh_role, en_role = ROLE[n.role]
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
                out.append((c.ref("ip"), c.ip, f"{COMPONENT[key]} IP", f"{COMPONENT[key]} IP"))
        if p.er_vip is not None:
            out.append((cell_ref(MGMT, L.ER_VIP), p.er_vip, "ER 控制器 VIP", "ER controller VIP"))
        for ref, ip in locate(p, MGMT, L.ER_NODES, p.er_nodes):
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
                vref = cell_ref(HOSTS, L.CLUSTER["vip"])
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
            test_refs = {cell_ref(MGMT, c) for c in L.TEST_RANGE}
            start, end = p.test_range
            for cell, ip in zip(L.TEST_RANGE, (start, end)):
                if ip is not None:
                    items.append((cell_ref(MGMT, cell), ip, "测试临时 IP 范围" + ("起始" if cell == L.TEST_RANGE[0] else "结束"),
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
            items.append((cell_ref(HOSTS, L.CLUSTER["vip"]), p.vip, "集群 VIP", "cluster VIP"))
        items.extend(self._component_addresses())
        items.sort(key=lambda t: cell_key(t[0]))
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
        ref = cell_ref(MGMT, L.TEST_RANGE[0])
        lo, hi = int(start), int(end)
        taken = [(ip, other, False) for ip, other in used.items()]
        taken += [(ip, other, True) for ip, other in gateways.items() if ip not in used]
        hits = [t for t in sorted(taken, key=lambda t: cell_key(t[1])) if lo <= int(t[0]) <= hi]
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
        sref, eref = cell_ref(MGMT, L.TEST_RANGE[0]), cell_ref(MGMT, L.TEST_RANGE[1])
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
