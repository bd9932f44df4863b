"""Rack topology of the clusters a simulated CloudTower manages (guide §06 "配置机架拓扑"; facts 06-09-11 §2).

ClusterTopo -> ZoneTopo -> RackTopo -> BrickTopo (a chassis) -> NodeTopo (one per host).

**Default placement** when a cluster first reads CONNECTED (what ZBS shows after deployment, per the ZBS
``zbs-meta topo list`` documentation [v: Arcfra ACOS 6.3 CLI guide "Managing the cluster topology"]): one
cluster topo, one zone ``default``, one rack ``defrack`` (height 256, ZBS's capacity) and every host's node
directly under the cluster topo (no brick, position 1/1). A brick created without ``rack_topo_id`` goes into
``defrack`` (as ZBS's ``new-brick`` does). Profile group ``topology-default``: ``topology-nodes-unplaced``
(that, the default) or ``topology-nodes-in-bricks`` (each node already in its own 1U brick named after the
host, in ``defrack`` at U 1, 2, …: a client must move or reuse them rather than assume free nodes) [inf].

**Conventions** [inf where not ZBS's]: U positions and node slots are 1-based (ZBS lists position 1/1);
a brick occupies U ``position`` … ``position + height - 1`` of its rack; two bricks may not overlap and a brick
must fit its rack; a node slot ``{row, column}`` lies within its brick's ``capacity`` and holds one node.
Racks and bricks may share names (profile ``ct-names-unique`` refuses a rack name already in the cluster).
Writes are all-or-nothing, apply at once and answer a task each (``SUCCESSED`` after ``TOPO_TASK_S``).

REST (SDK): ``get-cluster-topoes`` / ``get-zone-topoes`` / ``get-rack-topoes`` / ``get-brick-topoes`` /
``get-node-topoes``; ``create-rack-topo`` (list), ``update-rack-topo`` / ``delete-rack-topo`` ``{where, data}``;
``create-brick-topo`` (list), ``update-brick-topo`` / ``move-brick-topo`` / ``delete-brick-topo``
``{where, data}``; ``move-node-topo`` (**list** of ``{where: {id | local_id}, data: {brick_topo_id?,
cluster_topo_id?, position?}}``).
"""
from __future__ import annotations

import copy
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import params as P
from .errors import RestError
from .filters import FilterError, matches
from .util import cuid

DEFAULT_RACK = "defrack"
DEFAULT_RACK_HEIGHT = 256               # ZBS's default rack: capacity.row 256
TOPO_TASK_S = 1.0                       # simulated seconds a topology task runs (after task_pending)
TOPOLOGY_DEFAULTS = ("unplaced", "bricks")


@dataclass
class ClusterTopo:
    id: str
    local_id: str
    cluster_id: str
    name: str


@dataclass
class ZoneTopo:
    id: str
    local_id: str
    cluster_id: str
    name: str = "default"


@dataclass
class RackTopo:
    id: str
    local_id: str
    cluster_id: str
    zone_id: str
    name: str
    height: int
    default: bool = False


@dataclass
class BrickTopo:
    id: str
    local_id: str
    cluster_id: str
    rack_id: str
    name: str
    position: int
    height: int
    rows: int = 1
    columns: int = 1
    tags: list[dict] = field(default_factory=list)


@dataclass
class NodeTopo:
    id: str
    local_id: str
    cluster_id: str
    host_local_id: str
    name: str
    brick_id: str | None = None
    row: int = 1
    column: int = 1


TOPO_TABLES = {"cluster_topoes": ClusterTopo, "zone_topoes": ZoneTopo, "rack_topoes": RackTopo,
               "brick_topoes": BrickTopo, "node_topoes": NodeTopo}


def _lid(oid: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://{oid}"))


class TopologyMixin:
    """State: the five tables of :data:`TOPO_TABLES` (id -> record); ``topology_default``."""

    def _init_topology(self) -> None:
        for name in TOPO_TABLES:
            setattr(self, name, {})

    # ------------------------------------------------------------------ sync (default placement)
    def _sync_topology(self, connected: list, hosts: list[dict]) -> None:
        for c in connected:
            self._ensure_cluster_topo(c)
            for h in hosts:
                if h["cluster"]["id"] == c.id:
                    self._ensure_node(c, h)
        gone = [t for name in TOPO_TABLES for t in getattr(self, name).values() if t.cluster_id not in self.clusters]
        for t in gone:
            for name in TOPO_TABLES:
                getattr(self, name).pop(t.id, None)

    def _ensure_cluster_topo(self, c) -> None:
        tid = cuid("smtx-sim://cloudtower", self.ip, "cluster-topo", c.id)
        if tid in self.cluster_topoes:
            return
        self.cluster_topoes[tid] = ClusterTopo(tid, _lid(tid), c.id, c.name or c.ip)
        zid = cuid("smtx-sim://cloudtower", self.ip, "zone-topo", c.id)
        self.zone_topoes[zid] = ZoneTopo(zid, _lid(zid), c.id)
        rid = cuid("smtx-sim://cloudtower", self.ip, "rack-topo", c.id, DEFAULT_RACK)
        self.rack_topoes[rid] = RackTopo(rid, _lid(rid), c.id, zid, DEFAULT_RACK, DEFAULT_RACK_HEIGHT, default=True)

    def _ensure_node(self, c, h: dict) -> None:
        nid = cuid("smtx-sim://cloudtower", self.ip, "node-topo", c.id, h["local_id"])
        if nid in self.node_topoes:
            return
        n = NodeTopo(nid, _lid(nid), c.id, h["local_id"], h["name"])
        self.node_topoes[nid] = n
        if self.topology_default == "bricks":
            rack = self._default_rack(c.id)
            pos = 1 + max([b.position + b.height - 1 for b in self.brick_topoes.values() if b.rack_id == rack.id],
                          default=0)
            bid = cuid("smtx-sim://cloudtower", self.ip, "brick-topo", c.id, h["local_id"])
            self.brick_topoes[bid] = BrickTopo(bid, _lid(bid), c.id, rack.id, h["name"], pos, 1)
            n.brick_id = bid

    def _default_rack(self, cluster_id: str) -> RackTopo:
        return next(r for r in self.rack_topoes.values() if r.cluster_id == cluster_id and r.default)

    def _cluster_topo(self, cluster_id: str) -> ClusterTopo:
        return next(t for t in self.cluster_topoes.values() if t.cluster_id == cluster_id)

    # ------------------------------------------------------------------ views
    def _topo_cl(self, cluster_id: str) -> dict:
        c = self.clusters.get(cluster_id)
        return {"id": cluster_id, "name": (c.name or c.ip) if c else None}

    def _topo_ct(self, cluster_id: str) -> dict:
        t = self._cluster_topo(cluster_id)
        return {"id": t.id, "name": t.name}

    def _topo_named(self, table: dict, pred) -> list[dict]:
        return [{"id": x.id, "name": x.name} for x in table.values() if pred(x)]

    def topo_view(self, kind: str, t: Any, hosts: dict | None = None) -> dict:
        v = {"id": t.id, "local_id": t.local_id, "cluster": self._topo_cl(t.cluster_id)}
        if kind == "cluster_topoes":
            return v | {"name": t.name,
                        "zone_topoes": [{"id": z.id} for z in self.zone_topoes.values() if z.cluster_id == t.cluster_id],
                        "brick_topoes": self._topo_named(self.brick_topoes, lambda b: b.cluster_id == t.cluster_id),
                        "node_topoes": self._topo_named(self.node_topoes, lambda n: n.cluster_id == t.cluster_id)}
        if kind == "zone_topoes":
            return v | {"cluster_topo": self._topo_ct(t.cluster_id),
                        "rack_topoes": self._topo_named(self.rack_topoes, lambda r: r.zone_id == t.id)}
        if kind == "rack_topoes":
            return v | {"name": t.name, "height": t.height, "zone_topo": {"id": t.zone_id},
                        "brick_topoes": self._topo_named(self.brick_topoes, lambda b: b.rack_id == t.id)}
        if kind == "brick_topoes":
            rack = self.rack_topoes.get(t.rack_id)
            return v | {"name": t.name, "position": t.position, "height": t.height,
                        "capacity": {"row": t.rows, "column": t.columns}, "cluster_topo": self._topo_ct(t.cluster_id),
                        "rack_topo": {"id": rack.id, "name": rack.name} if rack else None,
                        "node_topoes": self._topo_named(self.node_topoes, lambda n: n.brick_id == t.id),
                        "model": None, "power_layout": None, "power_position": None, "powers": [],
                        "disk_layout": None, "tag_position_in_brick": [dict(x) for x in t.tags]}
        h = (hosts or {}).get((t.cluster_id, t.host_local_id)) or {}
        brick = self.brick_topoes.get(t.brick_id) if t.brick_id else None
        return v | {"name": t.name, "position": {"row": t.row, "column": t.column},
                    "host": {"id": h.get("id"), "name": h.get("name", t.name), "management_ip": h.get("management_ip")},
                    "cluster_topo": self._topo_ct(t.cluster_id),
                    "brick_topo": {"id": brick.id, "name": brick.name} if brick else None}

    def _hosts_by_local(self) -> dict:
        return {(h["cluster"]["id"], h["local_id"]): h for h in self.list_hosts()}

    def list_topo(self, kind: str) -> list[dict]:
        self.sync_config()
        hosts = self._hosts_by_local() if kind == "node_topoes" else None
        with self.lock:
            return [self.topo_view(kind, t, hosts) for t in getattr(self, kind).values()]

    def _topo_find(self, kind: str, where: Any, at: str = "where") -> list:
        if not isinstance(where, dict):
            raise RestError(400, f"{at} is required (an object)")
        hosts = self._hosts_by_local() if kind == "node_topoes" else None
        try:
            return [t for t in getattr(self, kind).values() if matches(self.topo_view(kind, t, hosts), where,
                                                                       typename=kind)]
        except FilterError as exc:
            raise RestError(400, f"{at}: {exc}") from None

    # ------------------------------------------------------------------ checks
    @contextmanager
    def _topo_txn(self):
        """All or nothing: a refusal half-way restores the tables."""
        saved = {name: copy.deepcopy(getattr(self, name)) for name in TOPO_TABLES}
        try:
            yield
        except Exception:
            for name, table in saved.items():
                setattr(self, name, table)
            raise

    def _topo_cluster(self, at: str, cluster_id: Any) -> str:
        c = self.clusters.get(cluster_id)
        if c is None:
            raise RestError(404, f"{at}.cluster_id: no cluster with id {cluster_id}")
        state = self.connect_state(c)
        if state != "CONNECTED" or not any(t.cluster_id == c.id for t in self.cluster_topoes.values()):
            raise RestError(400, f"{at}.cluster_id: cluster {c.name or c.ip} is {state}, not CONNECTED")
        return c.id

    def _topo_get(self, kind: str, at: str, oid: Any, cluster_id: str | None = None):
        t = getattr(self, kind).get(oid) if isinstance(oid, str) else None
        if t is None:
            raise RestError(404, f"{at}: no {kind[:-3]} with id {oid}")
        if cluster_id is not None and t.cluster_id != cluster_id:
            raise RestError(400, f"{at}: {kind[:-3]} {oid} belongs to another cluster")
        return t

    def _check_fit(self, at: str, rack: RackTopo, position: int, height: int, skip: str | None = None) -> None:
        top = position + height - 1
        if position < 1 or top > rack.height:
            raise RestError(400, f"{at}: a brick of height {height} at U{position} does not fit rack {rack.name} "
                                 f"(U1-U{rack.height})")
        for b in self.brick_topoes.values():
            if b.rack_id == rack.id and b.id != skip and b.position <= top and position <= b.position + b.height - 1:
                raise RestError(400, f"{at}: U{position}-U{top} of rack {rack.name} overlaps brick {b.name} "
                                     f"(U{b.position}-U{b.position + b.height - 1})")

    def _check_rack_name(self, at: str, cluster_id: str, name: str, skip: str | None = None) -> None:
        if self.unique_names and any(r.cluster_id == cluster_id and r.name == name and r.id != skip
                                     for r in self.rack_topoes.values()):
            raise RestError(400, f"{at}.name: a rack named {name!r} already exists in this cluster")

    def _place_node(self, at: str, n: NodeTopo, brick: BrickTopo, slot: tuple[int, int] | None) -> None:
        taken = {(m.row, m.column) for m in self.node_topoes.values() if m.brick_id == brick.id and m.id != n.id}
        if slot is None:
            free = [(r, c) for r in range(1, brick.rows + 1) for c in range(1, brick.columns + 1) if (r, c) not in taken]
            if not free:
                raise RestError(400, f"{at}: brick {brick.name} is full ({brick.rows}x{brick.columns})")
            slot = free[0]
        if not (1 <= slot[0] <= brick.rows and 1 <= slot[1] <= brick.columns):
            raise RestError(400, f"{at}.position {{row: {slot[0]}, column: {slot[1]}}} is outside brick {brick.name} "
                                 f"(capacity {brick.rows}x{brick.columns})")
        if slot in taken:
            raise RestError(400, f"{at}.position {{row: {slot[0]}, column: {slot[1]}}} of brick {brick.name} already "
                                 f"holds a node")
        n.brick_id, (n.row, n.column) = brick.id, slot

    def _nodes_into(self, at: str, brick: BrickTopo, where: Any) -> None:
        if where is None:
            return
        nodes = [n for n in self._topo_find("node_topoes", where, f"{at}.node_topoes") if n.cluster_id == brick.cluster_id]
        for n in nodes:
            n.brick_id = None
        for n in nodes:
            self._place_node(f"{at}.node_topoes", n, brick, None)

    def _brick_capacity(self, at: str, it: dict, brick: BrickTopo) -> None:
        cap = it.get("capacity")
        if cap is None:
            return
        rows, cols = P.position(f"{at}.capacity", cap)
        held = [n for n in self.node_topoes.values() if n.brick_id == brick.id]
        if any(n.row > rows or n.column > cols for n in held):
            raise RestError(400, f"{at}.capacity {rows}x{cols} is too small for the nodes in brick {brick.name}")
        brick.rows, brick.columns = rows, cols

    def _brick_tags(self, at: str, it: dict, brick: BrickTopo) -> None:
        tags = it.get("tag_position_in_brick")
        if tags is None:
            return
        if not isinstance(tags, list):
            raise RestError(400, f"{at}.tag_position_in_brick must be a list of {{row, column, tag}}")
        out = []
        for i, t in enumerate(tags):
            t = P.obj(f"{at}.tag_position_in_brick[{i}]", t, {"row", "column", "tag"}, "NestedTagPosition")
            row, col = P.position(f"{at}.tag_position_in_brick[{i}]", {"row": t.get("row"), "column": t.get("column")})
            out.append({"row": row, "column": col, "tag": P.text(f"{at}.tag_position_in_brick[{i}]", t, "tag")})
        brick.tags = out

    def _topo_task(self, kind: str, t: Any, verb: str, user_id: str | None) -> str:
        return self._task(description=f"{verb} {kind[:-3].replace('_', ' ')} {getattr(t, 'name', t.id)}",
                          key=f"{verb}_{kind[:-3]}", resource_type=kind[:-3].title().replace("_", ""),
                          resource_id=t.id, mutation=f"{verb}{kind[:-3].title().replace('_', '')}",
                          args={"id": t.id}, running_s=TOPO_TASK_S, user_id=user_id, cluster_id=t.cluster_id).id

    def _topo_answer(self, kind: str, items: list, verb: str, user_id: str | None) -> list[dict]:
        hosts = self._hosts_by_local() if kind == "node_topoes" else None
        return [{"data": self.topo_view(kind, t, hosts) if verb != "delete" else {"id": t.id},
                 "task_id": self._topo_task(kind, t, verb, user_id)} for t in items]

    # ------------------------------------------------------------------ racks
    def create_racks(self, items: list, user_id: str | None = None) -> list[dict]:
        self.sync_config()
        with self.lock, self._topo_txn():
            made = []
            for i, it in enumerate(items):
                at = f"[{i}]"
                it = P.obj(at, it, {"cluster_id", "zone_topo_id", "name", "height", "brick_topoes"},
                           "RackTopoCreationParams")
                cid = self._topo_cluster(at, it.get("cluster_id"))
                zone = self._topo_get("zone_topoes", f"{at}.zone_topo_id", it.get("zone_topo_id"), cid)
                name, height = P.text(at, it, "name"), P.integer(at, it, "height", minimum=1)
                self._check_rack_name(at, cid, name)
                rid = self._new_id("rack-topo")
                rack = RackTopo(rid, _lid(rid), cid, zone.id, name, height)
                self.rack_topoes[rid] = rack
                self._bricks_into(at, rack, it.get("brick_topoes"))
                made.append(rack)
            return self._topo_answer("rack_topoes", made, "create", user_id)

    def _bricks_into(self, at: str, rack: RackTopo, where: Any) -> None:
        if where is None:
            return
        for b in self._topo_find("brick_topoes", where, f"{at}.brick_topoes"):
            if b.cluster_id != rack.cluster_id:
                continue
            self._check_fit(f"{at}.brick_topoes ({b.name})", rack, b.position, b.height, skip=b.id)
            b.rack_id = rack.id

    def update_racks(self, body: Any, user_id: str | None = None) -> list[dict]:
        self.sync_config()
        where, data = P.where_of("body", body, {"where", "data"}, "RackTopoUpdationParams")
        data = P.obj("data", data, {"name", "height", "zone_topo_id", "brick_topoes", "cluster_id"},
                     "RackTopoUpdationParamsData")
        with self.lock, self._topo_txn():
            hits = self._topo_find("rack_topoes", where)
            for r in hits:
                if data.get("cluster_id") not in (None, r.cluster_id):
                    raise RestError(400, "data.cluster_id: a rack cannot move to another cluster")
                if data.get("name") is not None:
                    self._check_rack_name("data", r.cluster_id, P.text("data", data, "name"), skip=r.id)
                    r.name = data["name"]
                if data.get("zone_topo_id") is not None:
                    r.zone_id = self._topo_get("zone_topoes", "data.zone_topo_id", data["zone_topo_id"], r.cluster_id).id
                if data.get("height") is not None:
                    r.height = P.integer("data", data, "height", minimum=1)
                    for b in self.brick_topoes.values():
                        if b.rack_id == r.id:
                            self._check_fit(f"data.height ({b.name})", r, b.position, b.height, skip=b.id)
                self._bricks_into("data", r, data.get("brick_topoes"))
            return self._topo_answer("rack_topoes", hits, "update", user_id)

    def delete_racks(self, body: Any, user_id: str | None = None) -> list[dict]:
        self.sync_config()
        where, _ = P.where_of("body", body, {"where"}, "RackTopoDeletionParams")
        with self.lock, self._topo_txn():
            hits = self._topo_find("rack_topoes", where)
            for r in hits:
                if r.default:
                    raise RestError(400, f"rack {r.name} is the cluster's default rack; it cannot be deleted")
                if any(b.rack_id == r.id for b in self.brick_topoes.values()):
                    raise RestError(400, f"rack {r.name} still holds bricks; move or delete them first")
                del self.rack_topoes[r.id]
            return self._topo_answer("rack_topoes", hits, "delete", user_id)

    # ------------------------------------------------------------------ bricks
    def create_bricks(self, items: list, user_id: str | None = None) -> list[dict]:
        self.sync_config()
        with self.lock, self._topo_txn():
            made = []
            for i, it in enumerate(items):
                at = f"[{i}]"
                it = P.obj(at, it, {"cluster_id", "name", "position", "height", "rack_topo_id", "capacity",
                                    "node_topoes", "tag_position_in_brick"}, "BrickTopoCreationParams")
                cid = self._topo_cluster(at, it.get("cluster_id"))
                rack = (self._topo_get("rack_topoes", f"{at}.rack_topo_id", it["rack_topo_id"], cid)
                        if it.get("rack_topo_id") is not None else self._default_rack(cid))
                name = P.text(at, it, "name")
                pos, height = P.integer(at, it, "position", minimum=1), P.integer(at, it, "height", minimum=1)
                self._check_fit(at, rack, pos, height)
                bid = self._new_id("brick-topo")
                b = BrickTopo(bid, _lid(bid), cid, rack.id, name, pos, height)
                self.brick_topoes[bid] = b
                self._brick_capacity(at, it, b)
                self._brick_tags(at, it, b)
                self._nodes_into(at, b, it.get("node_topoes"))
                made.append(b)
            return self._topo_answer("brick_topoes", made, "create", user_id)

    def update_bricks(self, body: Any, user_id: str | None = None) -> list[dict]:
        self.sync_config()
        where, data = P.where_of("body", body, {"where", "data"}, "BrickTopoUpdationParams")
        data = P.obj("data", data, {"name", "position", "height", "capacity", "node_topoes", "tag_position_in_brick"},
                     "BrickTopoUpdationParamsData")
        with self.lock, self._topo_txn():
            hits = self._topo_find("brick_topoes", where)
            for b in hits:
                b.name = P.text("data", data, "name", required=False) or b.name
                pos = P.integer("data", data, "position", required=False, minimum=1) or b.position
                height = P.integer("data", data, "height", required=False, minimum=1) or b.height
                self._check_fit("data", self.rack_topoes[b.rack_id], pos, height, skip=b.id)
                b.position, b.height = pos, height
                self._brick_capacity("data", data, b)
                self._brick_tags("data", data, b)
                self._nodes_into("data", b, data.get("node_topoes"))
            return self._topo_answer("brick_topoes", hits, "update", user_id)

    def move_bricks(self, body: Any, user_id: str | None = None) -> list[dict]:
        self.sync_config()
        where, data = P.where_of("body", body, {"where", "data"}, "BrickTopoMoveParams")
        data = P.obj("data", data, {"position", "rack_topo_id"}, "BrickTopoMoveParamsData")
        pos = P.integer("data", data, "position", minimum=1)
        with self.lock, self._topo_txn():
            hits = self._topo_find("brick_topoes", where)
            for b in hits:
                rack = (self._topo_get("rack_topoes", "data.rack_topo_id", data["rack_topo_id"], b.cluster_id)
                        if data.get("rack_topo_id") is not None else self.rack_topoes[b.rack_id])
                self._check_fit(f"data ({b.name})", rack, pos, b.height, skip=b.id)
                b.rack_id, b.position = rack.id, pos
            return self._topo_answer("brick_topoes", hits, "move", user_id)

    def delete_bricks(self, body: Any, user_id: str | None = None) -> list[dict]:
        self.sync_config()
        where, _ = P.where_of("body", body, {"where"}, "BrickTopoDeletionParams")
        with self.lock, self._topo_txn():
            hits = self._topo_find("brick_topoes", where)
            for b in hits:
                for n in self.node_topoes.values():
                    if n.brick_id == b.id:
                        n.brick_id, n.row, n.column = None, 1, 1
                del self.brick_topoes[b.id]
            return self._topo_answer("brick_topoes", hits, "delete", user_id)

    # ------------------------------------------------------------------ nodes
    def move_nodes(self, items: list, user_id: str | None = None) -> list[dict]:
        """``move-node-topo``: each item moves one node into a brick (a slot, or the first free one) or back to
        the cluster level (``cluster_topo_id``)."""
        self.sync_config()
        with self.lock, self._topo_txn():
            moved = []
            for i, it in enumerate(items):
                at = f"[{i}]"
                it = P.obj(at, it, {"where", "data"}, "NodeTopUpdationParam")
                where = P.obj(f"{at}.where", it.get("where"), {"id", "local_id"}, "NodeTopoWhereUniqueInput")
                n = next((n for n in self.node_topoes.values() if where and all(getattr(n, k) == v
                                                                                 for k, v in where.items())), None)
                if n is None:
                    raise RestError(404, f"{at}.where: no node topo {where}")
                data = P.obj(f"{at}.data", it.get("data") or {}, {"brick_topo_id", "cluster_topo_id", "position"},
                             "NodeTopoUpdationParamsData")
                slot = P.position(f"{at}.data.position", data.get("position"))
                if data.get("brick_topo_id") is not None:
                    brick = self._topo_get("brick_topoes", f"{at}.data.brick_topo_id", data["brick_topo_id"], n.cluster_id)
                    self._place_node(f"{at}.data", n, brick, slot)
                elif data.get("cluster_topo_id") is not None:
                    self._topo_get("cluster_topoes", f"{at}.data.cluster_topo_id", data["cluster_topo_id"], n.cluster_id)
                    n.brick_id, n.row, n.column = None, 1, 1
                elif slot is not None and n.brick_id is not None:
                    self._place_node(f"{at}.data", n, self.brick_topoes[n.brick_id], slot)
                else:
                    raise RestError(400, f"{at}.data needs brick_topo_id, cluster_topo_id or (in a brick) position")
                moved.append(n)
            return self._topo_answer("node_topoes", moved, "move", user_id)

    # ------------------------------------------------------------------ the plan's placement (presets, tests)
    def apply_topology(self, cluster_id: str, placements: list[tuple[str, str, int]], *, rack_height: int = 42,
                       server_height: int = 2) -> list[dict]:
        """Place hosts (``(host name, rack name, U)``) as a client following the facts' suggested steps would:
        find-or-create each rack (by name), one brick per (rack, U) -- a multi-node chassis when hosts share
        it, capacity 1 x k -- found by its rack and position or created, each node moved into its slot.
        Idempotent. Returns ``[{rack, u, host}]``."""
        self.sync_config()
        groups: dict[tuple[str, int], list[str]] = {}
        for host, rack, u in placements:
            groups.setdefault((rack, int(u)), []).append(host)
        with self.lock, self._topo_txn():
            cid = self._topo_cluster("apply_topology", cluster_id)
            zone = next(z for z in self.zone_topoes.values() if z.cluster_id == cid)
            for (rack_name, u), names in sorted(groups.items()):
                rack = next((r for r in self.rack_topoes.values() if r.cluster_id == cid and r.name == rack_name
                             and not r.default), None)
                if rack is None:
                    rid = self._new_id("rack-topo")
                    rack = self.rack_topoes[rid] = RackTopo(rid, _lid(rid), cid, zone.id, rack_name, rack_height)
                self._place_chassis(cid, rack, u, names, server_height)
        return [{"rack": r, "u": u, "host": h} for (r, u), hs in sorted(groups.items()) for h in hs]

    def _place_chassis(self, cid: str, rack: RackTopo, u: int, names: list[str], height: int) -> None:
        nodes = [next((n for n in self.node_topoes.values() if n.cluster_id == cid and n.name == h), None)
                 for h in names]
        if None in nodes:
            raise ValueError(f"hosts {[h for h, n in zip(names, nodes) if n is None]} have no node topo")
        brick = next((b for b in self.brick_topoes.values() if b.rack_id == rack.id and b.position == u), None)
        if brick is None:
            here = {n.brick_id for n in nodes if n.brick_id}
            mine = {n.id for n in nodes}
            brick = next((self.brick_topoes[b] for b in here if len(here) == 1 and all(
                m.id in mine for m in self.node_topoes.values() if m.brick_id == b)), None)
            if brick is not None:                                  # reuse the node's own brick: move it
                self._check_fit("apply_topology", rack, u, height, skip=brick.id)
                brick.rack_id, brick.position, brick.height = rack.id, u, height
            else:
                bid = self._new_id("brick-topo")
                name = names[0] if len(names) == 1 else f"{rack.name}-U{u}"
                self._check_fit("apply_topology", rack, u, height)
                brick = self.brick_topoes[bid] = BrickTopo(bid, _lid(bid), cid, rack.id, name, u, height)
        brick.rows, brick.columns = 1, max(brick.columns * brick.rows, len(names))
        for n in nodes:
            n.brick_id = None
        for i, n in enumerate(nodes):
            self._place_node("apply_topology", n, brick, (1, i + 1))
