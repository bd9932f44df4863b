"""The plan's rack data as chassis (主机规划 P/Q): hosts grouped by rack and U, and what cannot be placed with given
server and rack heights. Used by ``plan validate`` (a warning at the run's default heights) and by stage 06 (an
error at the run's heights, before any call)."""
from __future__ import annotations

from .model import Host

Groups = dict[tuple[str, int], list[Host]]
DEFAULT_SERVER_U, DEFAULT_RACK_U = 2, 42     # the run's defaults (--server-height, --rack-height)


def rack_groups(hosts: list[Host]) -> Groups:
    """Planned hosts by (rack, U), in plan order: several hosts at one rack and U share one chassis (brick)."""
    groups: Groups = {}
    for h in hosts:
        groups.setdefault((h.rack, h.rack_u), []).append(h)
    return groups


def layout_problems(groups: Groups, server_u: int, rack_u: int) -> list[str]:
    """What cannot be placed with these heights (checked before any call): a chassis reaching past the rack's top,
    or two chassis of one rack overlapping (positions are the lowest U a chassis occupies, counted from 1)."""
    if server_u < 1 or rack_u < 1:
        return [f"--server-height {server_u} / --rack-height {rack_u}: 须为正整数 / must be positive whole numbers"]
    out = []
    for (rack, u), members in groups.items():
        if u + server_u - 1 > rack_u:
            out.append(f"{rack} U{u}（{members[0].ref('rack_u')}）+ {server_u}U 超出 {rack_u}U 机架 / reaches past the "
                       f"top of a {rack_u}U rack")
    by_rack: dict[str, list[int]] = {}
    for rack, u in groups:
        by_rack.setdefault(rack, []).append(u)
    for rack, us in by_rack.items():
        us.sort()
        for low, high in zip(us, us[1:]):
            if high < low + server_u:
                a, b = groups[(rack, low)][0], groups[(rack, high)][0]
                out.append(f"{rack}: U{low}（{a.ref('rack_u')}）与 U{high}（{b.ref('rack_u')}）在 {server_u}U 高度下重叠 / "
                           f"U{low} and U{high} overlap with {server_u}U servers")
    return out
