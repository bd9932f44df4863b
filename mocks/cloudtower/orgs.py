"""Organizations and datacenters of a simulated CloudTower (mixed into :class:`CloudTowerModel`).

``create-datacenter`` is synchronous (``task_id`` null, as the guide answers; ``datacenter_task = True`` gives a
task). A name is unique within its organization (a duplicate -> 400).

``add-clusters-to-datacenter`` (SDK: a list of ``AddClustersToDatacenterParams`` ``{where: {id}, data: {clusters:
ClusterWhereInput}}`` -> a list of ``WithTaskDatacenter``) **moves** the matched clusters: a non-stretched cluster
belongs to at most one datacenter (``ClusterCreationParams`` takes one ``datacenter_id``; the primary / secondary
zone datacenters exist for stretched clusters only, which the simulator does not model), so afterwards each is in
exactly the target datacenter and its earlier one no longer lists it. A cluster already there stays (no error);
a ``clusters`` filter that matches nothing changes nothing. ``remove-clusters-from-datacenter`` (same shape)
takes them out of that datacenter.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import GqlError, RestError
from .filters import FilterError, matches
from .tasks import TaskFault

DATACENTER_TASK_S = 3.0         # create-datacenter, only when ``datacenter_task`` is on


@dataclass
class Organization:
    id: str
    name: str


@dataclass
class Datacenter:
    id: str
    name: str
    organization_id: str


@dataclass(frozen=True)
class DatacenterSpec:
    """One ``create-datacenter`` item (``DatacenterCreationParams``), already checked for shape."""

    organization_id: str
    name: str


class OrgsMixin:
    """State: ``organizations``, ``datacenters`` (id -> record), ``datacenter_task``."""

    @property
    def is_set_up(self) -> bool:
        return self.root is not None and bool(self.organizations)

    def create_organization(self, name: str) -> Organization:
        if not name.strip():
            raise GqlError("organization name must be a non-empty string", "BAD_USER_INPUT")
        with self.lock:
            if any(o.name == name for o in self.organizations.values()):
                raise GqlError(f"an organization named {name!r} already exists", "ALREADY_EXISTS")
            org = Organization(self._new_id("organization"), name)
            self.organizations[org.id] = org
            return org

    def organization_view(self, o: Organization) -> dict:
        return {"id": o.id, "name": o.name,
                "datacenters": [{"id": d.id, "name": d.name} for d in self.datacenters.values()
                                if d.organization_id == o.id]}

    def list_organizations(self) -> list[dict]:
        with self.lock:
            return [self.organization_view(o) for o in self.organizations.values()]

    def datacenter_view(self, d: Datacenter) -> dict:
        org = self.organizations.get(d.organization_id)
        clusters = [c for c in self.clusters.values() if d.id in c.datacenter_ids]
        host_num = 0
        for c in clusters:
            info = self._view_info(c, self.connect_state(c))
            host_num += len(info["hosts"]) if info else 0
        return {
            "id": d.id, "name": d.name, "cluster_num": len(clusters), "host_num": host_num, "vm_num": 0,
            "total_data_capacity": None, "used_data_space": None, "failure_data_space": None,
            "total_cpu_hz": None, "used_cpu_hz": None, "total_memory_bytes": None, "used_memory_bytes": None,
            "organization": {"id": org.id, "name": org.name} if org else None,
            "clusters": [{"id": c.id, "name": c.name} for c in clusters],
            "labels": [],
        }

    def list_datacenters(self) -> list[dict]:
        self.settle()
        with self.lock:
            return [self.datacenter_view(d) for d in self.datacenters.values()]

    def _check_datacenters(self, specs: list[DatacenterSpec]) -> None:
        seen: set[tuple[str, str]] = set()
        for i, s in enumerate(specs):
            if s.organization_id not in self.organizations:
                raise RestError(404, f"[{i}].organization_id: no organization with id {s.organization_id}")
            key = (s.organization_id, s.name)
            if key in seen or any((d.organization_id, d.name) == key for d in self.datacenters.values()):
                raise RestError(400, f"[{i}].name: a datacenter named {s.name!r} already exists in organization "
                                     f"{self.organizations[s.organization_id].name!r}")
            seen.add(key)

    def create_datacenters(self, specs: list[DatacenterSpec], user_id: str | None,
                           fault: TaskFault | None = None) -> list[dict]:
        """``create-datacenter``: every item is checked before any is created (all or nothing)."""
        with self.lock:
            self._check_datacenters(specs)
            out = []
            for s in specs:
                d = Datacenter(self._new_id("datacenter"), s.name, s.organization_id)
                self.datacenters[d.id] = d
                task_id = None
                if self.datacenter_task:
                    task_id = self._task(description=f"create datacenter {d.name}", key="create_datacenter",
                                         resource_type="Datacenter", resource_id=d.id, mutation="createDatacenter",
                                         args={"name": d.name, "organization_id": d.organization_id},
                                         running_s=DATACENTER_TASK_S, user_id=user_id, fault=fault).id
                out.append({"data": self.datacenter_view(d), "task_id": task_id})
            return out

    # ------------------------------------------------------------------ clusters of a datacenter
    def _matched_clusters(self, i: int, where: dict) -> list:
        try:
            return [c for c in self.clusters.values() if matches(self.cluster_view(c), where, typename="Cluster")]
        except FilterError as exc:
            raise RestError(400, f"[{i}].data.clusters: {exc}") from None

    def _datacenter_moves(self, moves: list[tuple[str, dict]]) -> list[tuple[Datacenter, list]]:
        out = []
        for i, (dc_id, where) in enumerate(moves):
            d = self.datacenters.get(dc_id)
            if d is None:
                raise RestError(404, f"[{i}].where: no datacenter with id {dc_id}")
            out.append((d, self._matched_clusters(i, where)))
        return out

    def add_clusters_to_datacenter(self, moves: list[tuple[str, dict]], user_id: str | None,
                                   fault: TaskFault | None = None) -> list[dict]:
        """``add-clusters-to-datacenter``: ``moves`` = ``[(datacenter id, ClusterWhereInput)]``. Each matched
        cluster ends up in exactly that datacenter (see the module doc). All checked before any moves."""
        self.settle()
        with self.lock:
            plan = self._datacenter_moves(moves)
            return [self._regroup(d, cs, [d.id], "add clusters to", user_id, fault) for d, cs in plan]

    def remove_clusters_from_datacenter(self, moves: list[tuple[str, dict]], user_id: str | None,
                                        fault: TaskFault | None = None) -> list[dict]:
        """``remove-clusters-from-datacenter``: the matched clusters leave that datacenter."""
        self.settle()
        with self.lock:
            plan = self._datacenter_moves(moves)
            return [self._regroup(d, cs, None, "remove clusters from", user_id, fault) for d, cs in plan]

    def _regroup(self, d: Datacenter, clusters: list, to: list[str] | None, what: str, user_id: str | None,
                 fault: TaskFault | None) -> dict:
        for c in clusters:
            c.datacenter_ids = list(to) if to is not None else [x for x in c.datacenter_ids if x != d.id]
        task_id = None
        if self.datacenter_task:
            task_id = self._task(description=f"{what} datacenter {d.name}", key="update_datacenter",
                                 resource_type="Datacenter", resource_id=d.id, mutation="updateDatacenter",
                                 args={"name": d.name, "clusters": [c.id for c in clusters]},
                                 running_s=DATACENTER_TASK_S, user_id=user_id, fault=fault).id
        return {"data": self.datacenter_view(d), "task_id": task_id}
