"""Plan checks on rack data (主机规划 columns P/Q: rack name and U position per host), which stage 06 turns into
CloudTower's rack topology. A U that is not a positive whole number is the parser's finding (PLAN-RACK-U-INVALID);
here: a rack name without a U position, or a U position without a rack name. Hosts sharing a rack and U are a
multi-node chassis: not a finding."""
from __future__ import annotations

from .check_common import CheckerBase


class RackChecks(CheckerBase):
    def racks(self) -> None:
        for h in self.plan.hosts:
            name = h.hostname or f"第 {h.row} 行 / row {h.row}"
            if h.rack and h.rack_u is None:
                self.add("PLAN-RACK-U-MISSING", h.ref("rack_u"),
                         f"主机 {name} 填写了机架「{h.rack}」（{h.ref('rack')}）但没有 U 位",
                         f"host {name} has rack {h.rack!r} ({h.ref('rack')}) but no U position",
                         "填写服务器所在最低 U 位的数字（从 1 开始），或同时清空机架名称",
                         "enter the lowest U the server occupies (a number from 1), or clear the rack name too")
            elif h.rack_u is not None and not h.rack:
                self.add("PLAN-RACK-NAME-MISSING", h.ref("rack"),
                         f"主机 {name} 填写了 U 位 {h.rack_u}（{h.ref('rack_u')}）但没有机架名称",
                         f"host {name} has U position {h.rack_u} ({h.ref('rack_u')}) but no rack name",
                         "填写机架名称（例如 A01），或同时清空 U 位", "enter the rack name (e.g. A01), or clear the U too")
