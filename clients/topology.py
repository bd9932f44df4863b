"""CloudTower rack topology, stage 06.4 (../shared/reference/cloudtower-stage06-09-11-api-facts.md §2): the plan's
hosts grouped into chassis by rack and U (主机规划 P/Q), checked against the heights, and placed as racks, bricks and
nodes -- each found before anything is created or moved, so a rerun changes nothing."""
from __future__ import annotations

from plan.model import Host
from plan.racks import DEFAULT_RACK_U, Groups, layout_problems, rack_groups  # noqa: F401 - the step's names

from .cloudtower import CloudTowerClient
from .ct_cluster import Recorder, answers, tasks_done
from .poll import Pacing



def brick_name(rack: str, u: int, members: list[Host]) -> str:
    """One host: its name (facts §2); a multi-node chassis: ``<rack>-U<u>``."""
    return members[0].hostname if len(members) == 1 else f"{rack}-U{u}"


def host_ids(plan_hosts: list[Host], ct_hosts: list[dict]) -> dict[str, str]:
    """Plan management IP -> CloudTower host id (matched by management IP, else by name); a host CloudTower does
    not list fails."""
    by_ip = {h.get("management_ip"): h.get("id") for h in ct_hosts}
    by_name = {(h.get("name") or "").lower(): h.get("id") for h in ct_hosts}
    out = {}
    for h in plan_hosts:
        hid = by_ip.get(str(h.mgmt_ip)) or by_name.get((h.hostname or "").lower())
        if not hid:
            raise AssertionError(f"CloudTower 中找不到主机 {h.hostname}（{h.mgmt_ip}）/ CloudTower has no host "
                                 f"{h.hostname} ({h.mgmt_ip})\n下一步 / next: 核对 05.cluster 的主机列表 / check "
                                 f"05.cluster's host list")
        out[str(h.mgmt_ip)] = hid
    return out


def zone(cloudtower: CloudTowerClient, cluster_id: str) -> str:
    """The id of the cluster's one zone; a stretched cluster (several zones) fails: the plan does not say which."""
    zones = cloudtower.zone_topoes(cluster_id)
    if len(zones) != 1:
        raise AssertionError(
            f"集群有 {len(zones)} 个可用域（zone），规划表不指明机架属于哪个 / the cluster has {len(zones)} zone(s) and "
            f"the plan does not say which a rack belongs to\n下一步 / next: 双活（多可用域）集群请在 CloudTower 中手工放置"
            f"机架 / place the racks of a stretched cluster by hand in CloudTower")
    return zones[0]["id"]


class Topology:
    """The cluster's racks, bricks and nodes as CloudTower shows them, and what this step changed."""

    def __init__(self, cloudtower: CloudTowerClient, cluster_id: str, host_ids: dict[str, str], record: Recorder,
                 pacing: Pacing):
        self.ct, self.cluster_id, self.host_ids, self.record, self.pacing = (cloudtower, cluster_id, host_ids, record,
                                                                             pacing)
        self.racks: dict[str, dict] = {}
        self.racks_created: list[str] = []
        self.bricks_created = self.bricks_moved = self.nodes_moved = 0
        self.claimed: set[str] = set()
        self.reload()

    def reload(self) -> None:
        self.bricks = {b["id"]: b for b in self.ct.brick_topoes(self.cluster_id)}
        self.nodes = {(n.get("host") or {}).get("id"): n for n in self.ct.node_topoes(list(self.host_ids.values()))}

    def snapshot(self) -> dict:
        """The bricks and nodes as last read."""
        return {"bricks": list(self.bricks.values()), "nodes": list(self.nodes.values())}

    def empty_bricks(self) -> list[str]:
        """The bricks holding no node (a default brick left behind: kept, never deleted), by name."""
        return sorted(b.get("name") or b["id"] for b in self.bricks.values() if not b.get("node_topoes"))

    def node(self, h: Host) -> dict:
        n = self.nodes.get(self.host_ids[str(h.mgmt_ip)])
        if not (n and n.get("id")):
            raise AssertionError(f"CloudTower 中主机 {h.hostname} 没有节点拓扑 / host {h.hostname} has no node topo in "
                                 f"CloudTower\n下一步 / next: 在 CloudTower 物理拓扑中查看 / check CloudTower's topology")
        return n

    def rack(self, name: str, zone_id: str, height: int, *, need: int = 0, resize: bool = True) -> dict:
        """The rack ``name``: found by name, else created ``height`` high. An existing rack gets ``height`` only when
        ``resize`` (the height was given explicitly); otherwise it keeps its own, unless it is lower than ``need``
        (the top U the plan puts in it), when it is raised to that (noted)."""
        found = self.ct.rack_topoes(self.cluster_id, name)
        if not found:
            answer = self.ct.create_rack_topo(self.cluster_id, zone_id, name, height)
            tasks_done(self.ct, [answer], f"创建机架 {name} / create rack {name}", self.pacing)
            self.racks_created.append(name)
            rack = answer["data"]
        else:
            rack = found[0]
            if len(found) > 1:
                self.record.note(f"有 {len(found)} 个名为 {name} 的机架，使用第一个 / {len(found)} racks are named "
                                 f"{name}; the first is used")
            have = int(rack.get("height") or 0)
            height = height if resize else max(have, need)
            if have != height:
                answer = self.ct.update_rack_topo(rack["id"], {"height": height})
                tasks_done(self.ct, answers(answer), f"修改机架 {name} / update rack {name}", self.pacing)
                self.record.note(f"机架 {name} 高度 {rack.get('height')}U → {height}U / rack {name}: height "
                                 f"{rack.get('height')}U → {height}U")
        self.racks[name] = rack
        return rack

    def _find_brick(self, name: str, rack_id: str, u: int, node_ids: set[str]) -> dict | None:
        """An existing brick for this chassis, among those holding no other host's node (and not taken by another
        chassis of this step): preferably one already holding some of its nodes (its own brick, or a default brick
        named after the host), then one at its rack and U, then one with its name; None when there is none."""
        def score(b: dict) -> tuple[bool, bool, bool]:
            there = (b.get("rack_topo") or {}).get("id") == rack_id and b.get("position") == u
            return bool(holds[b["id"]]), there, b.get("name") == name

        free = [b for b in self.bricks.values() if b["id"] not in self.claimed]
        holds = {b["id"]: {n["id"] for n in self.nodes.values() if (n.get("brick_topo") or {}).get("id") == b["id"]}
                 for b in free}
        fits = [b for b in free if holds[b["id"]] <= node_ids and any(score(b))]
        return max(fits, key=score, default=None)

    def brick(self, name: str, rack: dict, u: int, height: int, members: list[Host]) -> dict:
        """The brick (chassis) at ``rack``/``u`` for ``members``: found and moved / updated as needed, else created."""
        node_ids = [self.node(h)["id"] for h in members]
        capacity = {"row": 1, "column": len(members)}
        brick = self._find_brick(name, rack["id"], u, set(node_ids))
        if brick is None:
            answer = self.ct.create_brick_topo({"cluster_id": self.cluster_id, "name": name, "position": u,
                                                "height": height, "rack_topo_id": rack["id"], "capacity": capacity,
                                                "node_topoes": {"id_in": node_ids}})
            tasks_done(self.ct, [answer], f"创建机箱 {name} / create brick {name}", self.pacing)
            self.bricks_created += 1
            brick = answer["data"]
        else:
            if (brick.get("rack_topo") or {}).get("id") != rack["id"] or brick.get("position") != u:
                answer = self.ct.move_brick_topo(brick["id"], u, rack["id"])
                tasks_done(self.ct, answers(answer), f"移动机箱 {name} / move brick {name}", self.pacing)
                self.bricks_moved += 1
            change = {k: v for k, v in (("name", name), ("height", height), ("capacity", capacity))
                      if brick.get(k) != v}
            if change:
                answer = self.ct.update_brick_topo(brick["id"], change)
                tasks_done(self.ct, answers(answer), f"修改机箱 {name} / update brick {name}", self.pacing)
        self.claimed.add(brick["id"])
        return brick

    def place_nodes(self, brick: dict, members: list[Host]) -> None:
        """Each member's node in ``brick``: a node already in it stays in its slot (whether the brick's creation put
        it there or an earlier run did); any other is moved in with ``move-node-topo`` without a slot, which the SDK
        leaves optional, so CloudTower takes its first free one under its own numbering (0- or 1-based: unknown)."""
        self.reload()
        for h in members:
            n = self.node(h)
            if (n.get("brick_topo") or {}).get("id") == brick["id"]:
                continue
            answer = self.ct.move_node_topo(n["id"], {"brick_topo_id": brick["id"]})
            tasks_done(self.ct, answers(answer), f"放置节点 {h.hostname} / place node {h.hostname}", self.pacing)
            self.nodes_moved += 1

    def place(self, rack: str, u: int, members: list[Host], zone_id: str, server_u: int, rack_u: int, *,
              need: int = 0, resize: bool = True) -> None:
        """The chassis of ``members`` at ``rack``/``u``: its rack (``rack_u`` high; see :meth:`rack` for ``need`` and
        ``resize``), its brick (``server_u`` high), their nodes in it."""
        r = self.racks.get(rack) or self.rack(rack, zone_id, rack_u, need=need, resize=resize)
        self.place_nodes(self.brick(brick_name(rack, u, members), r, u, server_u, members), members)

    def placements(self, groups: Groups) -> tuple[list[dict], list[str]]:
        """Each planned host where CloudTower now shows it (node → brick → rack), and the ones not where planned. A
        placement's keys are the fields of the run's ``RackPlacement``: ``host``, ``ip``, ``rack``, ``u``, ``brick``
        and ``shared_with`` (the other hosts at its rack and U)."""
        self.reload()
        racks = {r["id"]: r for r in self.ct.rack_topoes(self.cluster_id)}
        out, wrong = [], []
        for (rack, u), members in groups.items():
            for h in members:
                n = self.node(h)
                b = self.bricks.get((n.get("brick_topo") or {}).get("id")) or {}
                r = racks.get((b.get("rack_topo") or {}).get("id")) or {}
                out.append(dict(host=h.hostname, ip=str(h.mgmt_ip), rack=r.get("name") or "-",
                                u=b.get("position") or 0, brick=b.get("name"),
                                shared_with=[m.hostname for m in members if m is not h]))
                if (r.get("name"), b.get("position")) != (rack, u):
                    wrong.append(f"{h.hostname}: {r.get('name') or '-'} U{b.get('position') or '-'}，规划 / planned "
                                 f"{rack} U{u}（{h.ref('rack')}/{h.ref('rack_u')}）")
        return out, wrong
