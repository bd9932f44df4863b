"""Monitoring views (dashboards) and their graphs (guide §06 "配置监控面板"; facts 06-09-11 §1).

REST, the SDK's ``ViewApi`` / ``GraphApi``:

* ``create-view`` list of ``{name*, cluster_id*, time_unit* (MINUTE|HOUR|DAY|MONTH), time_span* int >= 1}`` ->
  ``[{data: View, task_id: null}]``; ``get-views``; ``update-view`` ``{where*, data: {name, time_unit,
  time_span}}``; ``delete-view`` ``{where*}`` (its graphs go with it) -> ``[{data: {id}, task_id: null}]``.
* ``create-graph`` list of ``{type* (AREA|STACK), resource_type*, view_id*, title*, cluster_id*, connect_id* [ids],
  metric_name*, metric_type? (NORMAL|TOPK|BOTTOMK), metric_count? int (a digit string is taken: the dashboard
  script sends "5"), network?, service?, instance_ids?}`` -> ``[{data: Graph, task_id: null}]``; ``get-graphs``
  (filters ``view``, ``metric_name``, ``title``, ``resource_type`` …); ``update-graph``; ``delete-graph``.

Decisions [inf]: views and graphs are CloudTower's own records (nothing to sync to the cluster), so the calls
are synchronous and answer ``task_id: null``. Graphs are never unique (the facts: a re-run of the script
duplicates them). View names: duplicates allowed (profile ``ct-names-free``, the default) or refused with 400
per cluster (``ct-names-unique``; ``tower.unique_names``). The cluster must be CONNECTED (unknown -> 404); a
graph's ``cluster_id`` must be its view's; ``connect_id`` must name the cluster (resource_type ``cluster``) or
its hosts (``host``); TOPK / BOTTOMK need ``metric_count`` >= 1.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from . import params as P
from .errors import RestError
from .filters import FilterError, matches

TIME_UNITS = ("MINUTE", "HOUR", "DAY", "MONTH")
GRAPH_TYPES = ("AREA", "STACK")
METRIC_TYPES = ("NORMAL", "TOPK", "BOTTOMK")
NETWORK_TYPES = ("ACCESS", "ERSPAN", "MANAGEMENT", "MIGRATION", "STORAGE", "STORAGE_ACCESS", "VM", "VPC_SYS",
                 "VPC_VM")
_VIEW_FIELDS = {"name", "cluster_id", "time_unit", "time_span"}
_GRAPH_FIELDS = {"type", "resource_type", "view_id", "title", "cluster_id", "connect_id", "metric_name",
                 "metric_type", "metric_count", "network", "service", "instance_ids"}


@dataclass
class View:
    id: str
    local_id: str
    cluster_id: str
    name: str
    time_unit: str
    time_span: int


@dataclass
class Graph:
    id: str
    local_id: str
    cluster_id: str
    view_id: str
    title: str
    type: str
    resource_type: str
    metric_name: str
    metric_type: str = "NORMAL"
    metric_count: int = 0
    connect_id: list[str] = field(default_factory=list)
    network: str | None = None
    service: str | None = None
    instance_ids: list[str] = field(default_factory=list)


def _local_id(oid: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://{oid}"))


class ViewsMixin:
    """State: ``views``, ``graphs`` (id -> record); ``unique_names`` (profile group ``ct-names``)."""

    def _connected_cluster(self, at: str, cluster_id: str):
        c = self.clusters.get(cluster_id)
        if c is None:
            raise RestError(404, f"{at}.cluster_id: no cluster with id {cluster_id}")
        if self.connect_state(c) != "CONNECTED":
            raise RestError(400, f"{at}.cluster_id: cluster {c.name or c.ip} is {self.connect_state(c)}, "
                                 f"not CONNECTED")
        return c

    # ------------------------------------------------------------------ views
    def view_view(self, v: View) -> dict:
        c = self.clusters.get(v.cluster_id)
        return {"id": v.id, "local_id": v.local_id, "name": v.name,
                "cluster": {"id": v.cluster_id, "name": (c.name or c.ip) if c else None},
                "time_unit": v.time_unit, "time_span": v.time_span,
                "graphs": [{"id": g.id} for g in self.graphs.values() if g.view_id == v.id],
                "entityAsyncStatus": None}

    def list_views(self) -> list[dict]:
        self.sync_config()
        with self.lock:
            return [self.view_view(v) for v in self.views.values()]

    def _name_taken(self, cluster_id: str, name: str, skip: str | None = None) -> bool:
        return self.unique_names and any(v.cluster_id == cluster_id and v.name == name and v.id != skip
                                         for v in self.views.values())

    def create_views(self, items: list) -> list[dict]:
        self.sync_config()
        with self.lock:
            specs, seen = [], set()
            for i, it in enumerate(items):
                at = f"[{i}]"
                it = P.obj(at, it, _VIEW_FIELDS, "ViewCreationParams")
                name, cid = P.text(at, it, "name"), P.text(at, it, "cluster_id")
                self._connected_cluster(at, cid)
                unit = P.choice(at, it, "time_unit", TIME_UNITS)
                span = P.integer(at, it, "time_span", minimum=1)
                if self._name_taken(cid, name) or (self.unique_names and (cid, name) in seen):
                    raise RestError(400, f"{at}.name: a view named {name!r} already exists in this cluster")
                seen.add((cid, name))
                specs.append((name, cid, unit, span))
            out = []
            for name, cid, unit, span in specs:
                vid = self._new_id("view")
                v = View(id=vid, local_id=_local_id(vid), cluster_id=cid, name=name, time_unit=unit, time_span=span)
                self.views[vid] = v
                out.append({"data": self.view_view(v), "task_id": None})
            return out

    def _view_matching(self, table: dict, view_fn, where: dict, typename: str) -> list:
        try:
            return [x for x in table.values() if matches(view_fn(x), where, typename=typename)]
        except FilterError as exc:
            raise RestError(400, f"where: {exc}") from None

    def update_views(self, body: dict) -> list[dict]:
        self.sync_config()
        where, data = P.where_of("body", body, {"where", "data"}, "ViewUpdationParams")
        data = P.obj("data", data, {"name", "time_unit", "time_span"}, "ViewUpdationParamsData")
        name = P.text("data", data, "name", required=False)
        unit = P.choice("data", data, "time_unit", TIME_UNITS, required=False)
        span = P.integer("data", data, "time_span", required=False, minimum=1)
        with self.lock:
            hits = self._view_matching(self.views, self.view_view, where, "View")
            for v in hits:
                if name is not None and self._name_taken(v.cluster_id, name, skip=v.id):
                    raise RestError(400, f"data.name: a view named {name!r} already exists in this cluster")
            for v in hits:
                v.name = name if name is not None else v.name
                v.time_unit = unit or v.time_unit
                v.time_span = span if span is not None else v.time_span
            return [{"data": self.view_view(v), "task_id": None} for v in hits]

    def delete_views(self, body: dict) -> list[dict]:
        self.sync_config()
        where, _ = P.where_of("body", body, {"where"}, "ViewDeletionParams")
        with self.lock:
            hits = self._view_matching(self.views, self.view_view, where, "View")
            for v in hits:
                del self.views[v.id]
                for g in [g for g in self.graphs.values() if g.view_id == v.id]:
                    del self.graphs[g.id]
            return [{"data": {"id": v.id}, "task_id": None} for v in hits]

    # ------------------------------------------------------------------ graphs
    def _hosts_by_id(self) -> dict[str, dict]:
        return {h["id"]: h for h in self.list_hosts()}

    def graph_view(self, g: Graph, known: dict[str, dict] | None = None) -> dict:
        """``known``: hosts by id (``_hosts_by_id()``, read once per request)."""
        c = self.clusters.get(g.cluster_id)
        v = self.views.get(g.view_id)
        hosts = []
        if g.resource_type == "host":
            known = self._hosts_by_id() if known is None else known
            hosts = [{"id": h, "name": known[h]["name"], "management_ip": known[h]["management_ip"]}
                     for h in g.connect_id if h in known]
        return {"id": g.id, "local_id": g.local_id, "title": g.title, "type": g.type,
                "resource_type": g.resource_type, "metric_name": g.metric_name, "metric_type": g.metric_type,
                "metric_count": g.metric_count, "network": g.network, "service": g.service,
                "instance_ids": list(g.instance_ids), "targets": {},
                "cluster": {"id": g.cluster_id, "name": (c.name or c.ip) if c else None},
                "view": {"id": g.view_id, "name": v.name if v else None},
                "hosts": hosts, "vms": [], "disks": [], "nics": [], "vmNics": [], "vmVolumes": [], "luns": [],
                "namespaces": [], "witnesses": [], "zones": [], "entityAsyncStatus": None}

    def list_graphs(self) -> list[dict]:
        self.sync_config()
        known = self._hosts_by_id()
        with self.lock:
            return [self.graph_view(g, known) for g in self.graphs.values()]

    def _connect_ids(self, at: str, resource_type: str, cluster_id: str, ids: list[str]) -> None:
        if resource_type == "cluster":
            bad = [x for x in ids if x != cluster_id]
        elif resource_type == "host":
            hosts = {h["id"] for h in self.list_hosts() if h["cluster"]["id"] == cluster_id}
            bad = [x for x in ids if x not in hosts]
        else:
            return
        if bad:
            raise RestError(400, f"{at}.connect_id: {bad} are not {resource_type} ids of cluster {cluster_id}")

    def _graph_spec(self, at: str, it: dict) -> dict:
        it = P.obj(at, it, _GRAPH_FIELDS, "GraphCreationParams")
        view_id, cid = P.text(at, it, "view_id"), P.text(at, it, "cluster_id")
        v = self.views.get(view_id)
        if v is None:
            raise RestError(404, f"{at}.view_id: no view with id {view_id}")
        self._connected_cluster(at, cid)
        if v.cluster_id != cid:
            raise RestError(400, f"{at}.cluster_id {cid} is not the cluster of view {v.name} ({v.cluster_id})")
        spec = {"view_id": view_id, "cluster_id": cid, "type": P.choice(at, it, "type", GRAPH_TYPES),
                "resource_type": P.text(at, it, "resource_type"), "title": P.text(at, it, "title"),
                "metric_name": P.text(at, it, "metric_name"), "connect_id": P.strings(at, it, "connect_id"),
                "metric_type": P.choice(at, it, "metric_type", METRIC_TYPES, required=False, default="NORMAL"),
                "metric_count": P.integer(at, it, "metric_count", required=False, minimum=0, lenient=True) or 0,
                "network": P.choice(at, it, "network", NETWORK_TYPES, required=False),
                "service": P.text(at, it, "service", required=False),
                "instance_ids": P.strings(at, it, "instance_ids", required=False)}
        if spec["metric_type"] != "NORMAL" and spec["metric_count"] < 1:
            raise RestError(400, f"{at}.metric_count must be >= 1 for metric_type {spec['metric_type']}")
        self._connect_ids(at, spec["resource_type"], cid, spec["connect_id"])
        return spec

    def create_graphs(self, items: list) -> list[dict]:
        self.sync_config()
        with self.lock:
            specs = [self._graph_spec(f"[{i}]", it) for i, it in enumerate(items)]
            known = self._hosts_by_id()
            out = []
            for spec in specs:
                gid = self._new_id("graph")
                g = Graph(id=gid, local_id=_local_id(gid), **spec)
                self.graphs[gid] = g
                out.append({"data": self.graph_view(g, known), "task_id": None})
            return out

    def update_graphs(self, body: dict) -> list[dict]:
        self.sync_config()
        where, data = P.where_of("body", body, {"where", "data"}, "GraphUpdationParams")
        data = P.obj("data", data, {"title", "type", "metric_name", "metric_type", "metric_count", "resource_type",
                                    "connect_id", "network", "service", "instance_ids"}, "GraphUpdationParamsData")
        known = self._hosts_by_id()
        with self.lock:
            hits = self._view_matching(self.graphs, lambda g: self.graph_view(g, known), where, "Graph")
            specs = []
            for g in hits:
                merged = {k: getattr(g, k) for k in ("type", "resource_type", "title", "metric_name", "metric_type",
                                                     "metric_count", "connect_id", "network", "service",
                                                     "instance_ids")}
                specs.append(self._graph_spec("data", {**merged, **data, "view_id": g.view_id,
                                                       "cluster_id": g.cluster_id}))
            for g, spec in zip(hits, specs):
                for k, v in spec.items():
                    setattr(g, k, v)
            return [{"data": self.graph_view(g, known), "task_id": None} for g in hits]

    def delete_graphs(self, body: dict) -> list[dict]:
        self.sync_config()
        where, _ = P.where_of("body", body, {"where"}, "GraphDeletionParams")
        known = self._hosts_by_id()
        with self.lock:
            hits = self._view_matching(self.graphs, lambda g: self.graph_view(g, known), where, "Graph")
            for g in hits:
                del self.graphs[g.id]
            return [{"data": {"id": g.id}, "task_id": None} for g in hits]

    def _views_of_gone_clusters(self) -> None:
        for v in [v for v in self.views.values() if v.cluster_id not in self.clusters]:
            del self.views[v.id]
        for g in [g for g in self.graphs.values() if g.view_id not in self.views]:
            del self.graphs[g.id]


# --------------------------------------------------------------------------- the dashboard script's views
# (facts 06-09-11 §1: the public init script; every graph AREA, each view HOUR x 2)
DASHBOARDS: tuple[tuple[str, str, str, int, tuple[str, ...]], ...] = (
    ("Cluster", "cluster", "NORMAL", 0, ("cluster_cpu_usage_percent", "cluster_memory_usage_percent",
                                         "zbs_cluster_provisioned_data_space_bytes")),
    ("Host", "host", "NORMAL", 0, ("host_cpu_overall_usage_percent", "elf_host_vcpus_provisioned_running",
                                   "host_cpu_temperature_celsius", "host_memory_usage_percent",
                                   "zbs_chunk_read_cache_hit_ratio", "zbs_chunk_write_cache_hit_ratio",
                                   "zbs_chunk_used_data_space_bytes")),
    ("VM", "vm", "TOPK", 5, ("elf_vm_cpu_overall_usage_percent", "elf_vm_cpu_overall_steal_time_percent",
                             "elf_vm_memory_usage_percent", "elf_vm_disk_overall_write_speed_bps",
                             "elf_vm_disk_overall_avg_read_write_latency_ns")),
)


class DashboardsMixin:
    """:meth:`ensure_dashboards`: the script's three views and their graphs (presets, tests)."""

    def ensure_dashboards(self, cluster_id: str) -> dict[str, int]:
        """Find-or-create each view (by cluster and name) and each graph (by view and ``metric_name``); idempotent.
        Returns ``{view name: graph count}``."""
        self.sync_config()
        hosts = [h["id"] for h in self.list_hosts() if h["cluster"]["id"] == cluster_id]
        out = {}
        with self.lock:
            for name, resource, metric_type, count, metrics in DASHBOARDS:
                v = next((v for v in self.views.values() if v.cluster_id == cluster_id and v.name == name), None)
                if v is None:
                    (made,) = self.create_views([{"name": name, "cluster_id": cluster_id, "time_unit": "HOUR",
                                                  "time_span": 2}])
                    v = self.views[made["data"]["id"]]
                have = {g.metric_name for g in self.graphs.values() if g.view_id == v.id}
                connect = {"cluster": [cluster_id], "host": hosts}.get(resource, [])
                todo = [{"type": "AREA", "resource_type": resource, "view_id": v.id, "title": m,
                         "cluster_id": cluster_id, "connect_id": connect, "metric_name": m,
                         "metric_type": metric_type, **({"metric_count": count} if count else {})}
                        for m in metrics if m not in have]
                if todo:
                    self.create_graphs(todo)
                out[name] = sum(1 for g in self.graphs.values() if g.view_id == v.id)
        return out
