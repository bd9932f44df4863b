"""Organizations and datacenters of a simulated CloudTower (mixed into :class:`CloudTowerModel`)."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import GqlError, RestError
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
            info = self._info(c) if self.connect_state(c) == "CONNECTED" else None
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
