"""Plan checks on rack data (主机规划 columns P/Q: rack name and U position per host), which stage 06 turns into
CloudTower's rack topology. A U that is not a positive whole number is the parser's finding (PLAN-RACK-U-INVALID);
here: a rack name without a U position, or a U position without a rack name. Hosts sharing a rack and U are a
multi-node chassis: not a finding."""
from __future__ import annotations

from .check_common import CheckerBase
from .racks import DEFAULT_RACK_U, DEFAULT_SERVER_U, layout_problems, rack_groups


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
        self._layout()

    def _layout(self) -> None:
        """Chassis that overlap or reach past the rack's top at the run's default heights: a warning (the run's
        --server-height / --rack-height may differ; stage 06 checks again with those, before any call)."""
        placed = [h for h in self.plan.hosts if h.rack and h.rack_u]
        for problem in layout_problems(rack_groups(placed), DEFAULT_SERVER_U, DEFAULT_RACK_U):
            first = next(h for h in placed if h.ref("rack_u") in problem)
            self.add("PLAN-RACK-LAYOUT", first.ref("rack_u"),
                     f"按默认高度（服务器 {DEFAULT_SERVER_U}U、机架 {DEFAULT_RACK_U}U）无法放置：{problem}",
                     f"cannot be placed at the default heights ({DEFAULT_SERVER_U}U servers, {DEFAULT_RACK_U}U racks): "
                     f"{problem}",
                     "核对主机规划 P/Q 列；若服务器或机架高度不同，运行时用 --server-height / --rack-height 给出",
                     "check 主机规划 columns P/Q; if the servers or racks differ, give --server-height / --rack-height "
                     "to the run", severity="warning")
