"""CloudTower REST v2 (``POST /v2/api/<call>``), per the wire-format reference (the SDK's shapes).

Every call is a POST with a JSON body. A registry maps the call name to a handler and its kind:

* ``login``  -- ``{username, password, source}`` -> ``{"data": {"token"}, "task_id": null}`` (no auth);
* ``get``    -- body ``{where, orderBy, first, skip, last}`` (``{}`` or an empty body: everything) ->
  a JSON **list** (filtering: :mod:`mocks.cloudtower.filters`);
* ``create`` -- body a JSON **list** of creation parameters (or of ``{where, data}`` items:
  ``add-clusters-to-datacenter``, ``remove-clusters-from-datacenter``) -> a list of ``{"data", "task_id"}``.
  A bare object is refused with 400 (profile ``rest-bodies-strict``, the default: the guide prints bare
  objects, the SDK sends lists); under ``rest-bodies-lenient`` (``tower.rest_bodies = "lenient"``) a bare
  object is taken as a one-item list and answered bare ``{"data", "task_id"}``, as the guide prints it;
* ``action`` -- body ``{where, data}`` -> a list of ``{"data", "task_id"}``;
* ``query``  -- body one JSON object of the call's own shape, handed over as sent (``get-vm-metrics``:
  ``GetVmMetricInput``, not a ``{where}`` read).

Every call but ``login`` needs ``Authorization: <token>`` -- the raw token, no ``Bearer``; otherwise
401. Errors: ``{"message", "status", "path", "code"?, "props"?}`` with that HTTP status.

Adding a call (later stages)::

    @rest_call("create-vm-vlan", kind="create")
    def create_vm_vlan(tower, items, ctx):  # -> list of {"data", "task_id"}
        ...
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable

from .errors import RestError
from .filters import FilterError, select
from .models import USER_SOURCES, CloudTowerModel, ClusterSpec, DatacenterSpec, TaskFault


@dataclass
class RestCtx:
    user_id: str | None
    fault: TaskFault | None       # what an 'operation' fault rule that fired on this call does to its task
    request: Any


@dataclass
class RestCall:
    name: str
    kind: str                     # login | get | create | action | query
    handler: Callable
    auth: bool = True
    typename: str = "object"
    relations: Callable | None = None   # get: tower -> {field: {id: related object}} (filters on nested objects)


REST_CALLS: dict[str, RestCall] = {}


def rest_call(name: str, *, kind: str, auth: bool = True, typename: str = "object",
              relations: Callable | None = None):
    if kind not in ("login", "get", "create", "action", "query"):
        raise ValueError(f"unknown REST call kind {kind!r}")

    def deco(fn):
        REST_CALLS[name] = RestCall(name, kind, fn, auth, typename, relations)
        return fn
    return deco


def dispatch(tower: CloudTowerModel, name: str, body: Any, ctx: RestCtx) -> Any:
    """Run call ``name`` (auth already checked by the caller). Raises :class:`RestError`."""
    call = REST_CALLS[name]
    if call.kind == "get":
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise RestError(400, f"{name}: the body must be a JSON object {{where, orderBy, first, skip}}")
        items = call.handler(tower, ctx)
        try:
            rel = call.relations(tower) if call.relations and body.get("where") else None
            return select(items, body, typename=call.typename, relations=rel)
        except FilterError as exc:
            raise RestError(400, f"{name}: {exc}") from None
    if call.kind == "create":
        if isinstance(body, dict) and getattr(tower, "rest_bodies", "strict") == "lenient":
            return call.handler(tower, [body], ctx)[0]          # the guide's bare object in, bare answer out
        if not isinstance(body, list):
            raise RestError(400, f"{name}: the body must be a JSON array of creation parameters "
                                 f"(got {type(body).__name__ if body is not None else 'no body'})")
        return call.handler(tower, body, ctx)
    if call.kind == "action":
        if not isinstance(body, dict) or "where" not in body:
            raise RestError(400, f"{name}: the body must be a JSON object {{where, data}}")
        return call.handler(tower, body, ctx)
    if call.kind == "query" and not isinstance(body, dict):
        raise RestError(400, f"{name}: the body must be a JSON object")
    return call.handler(tower, body, ctx)


# =========================================================================== bodies -> typed arguments
_DC_FIELDS = {"organization_id", "name", "clusters"}
_CLUSTER_FIELDS = {"datacenter_id", "ip", "username", "password", "primary_zone_datacenter_id",
                   "secondary_zone_datacenter_id"}


def _item(i: int, it: Any, shape: str, allowed: set[str], params: str) -> dict:
    if not isinstance(it, dict):
        raise RestError(400, f"[{i}] must be an object {{{shape}}}")
    unknown = set(it) - allowed
    if unknown:
        raise RestError(400, f"[{i}]: unknown field(s) {sorted(unknown)} for {params}")
    return it


def _required_str(i: int, it: dict, key: str) -> str:
    v = it.get(key)
    if not isinstance(v, str) or not v.strip():
        raise RestError(400, f"[{i}].{key} is required")
    return v


def datacenter_specs(items: list) -> list[DatacenterSpec]:
    """``create-datacenter`` items (``DatacenterCreationParams``) checked for shape."""
    out = []
    for i, it in enumerate(items):
        it = _item(i, it, "organization_id, name", _DC_FIELDS, "DatacenterCreationParams")
        out.append(DatacenterSpec(_required_str(i, it, "organization_id"), _required_str(i, it, "name")))
    return out


def datacenter_moves(items: list) -> list[tuple[str, dict]]:
    """``add-clusters-to-datacenter`` / ``remove-clusters-from-datacenter`` items
    (``AddClustersToDatacenterParams``: ``{where: DatacenterWhereUniqueInput {id}, data: {clusters:
    ClusterWhereInput}}``) -> ``[(datacenter id, clusters where)]``. ``data.clusters`` is required here (the SDK
    allows null; the simulator refuses a move that would name no clusters rather than guess)."""
    out = []
    for i, it in enumerate(items):
        it = _item(i, it, "where: {id}, data: {clusters}", {"where", "data"}, "AddClustersToDatacenterParams")
        where, data = it.get("where"), it.get("data")
        if not isinstance(where, dict) or set(where) != {"id"} or not isinstance(where["id"], str):
            raise RestError(400, f"[{i}].where must be {{id}} (DatacenterWhereUniqueInput)")
        if not isinstance(data, dict) or set(data) - {"clusters"}:
            raise RestError(400, f"[{i}].data must be {{clusters}} (AddClustersToDatacenterParamsData)")
        if not isinstance(data.get("clusters"), dict):
            raise RestError(400, f"[{i}].data.clusters is required: a ClusterWhereInput such as {{id}} or {{ip}}")
        out.append((where["id"], data["clusters"]))
    return out


def cluster_specs(items: list) -> list[ClusterSpec]:
    """``connect-cluster`` items (``ClusterCreationParams``) checked for shape; ``ip`` normalized."""
    out = []
    for i, it in enumerate(items):
        it = _item(i, it, "datacenter_id, ip, username, password", _CLUSTER_FIELDS, "ClusterCreationParams")
        ip, user, pw = (_required_str(i, it, k) for k in ("ip", "username", "password"))
        dc = it.get("datacenter_id")
        if dc is not None and not isinstance(dc, str):
            raise RestError(400, f"[{i}].datacenter_id must be a string")
        try:
            ip = str(ipaddress.IPv4Address(ip.strip()))
        except ValueError:
            raise RestError(400, f"[{i}].ip {it['ip']!r} is not an IPv4 address") from None
        out.append(ClusterSpec(ip, user, pw, dc))
    return out


# =========================================================================== calls
@rest_call("login", kind="login", auth=False)
def login(tower: CloudTowerModel, body: Any, ctx: RestCtx) -> dict:
    if not isinstance(body, dict):
        raise RestError(400, "login: the body must be a JSON object {username, password, source}")
    unknown = set(body) - {"username", "password", "source", "mfa_type", "auth_config_id"}
    if unknown:
        raise RestError(400, f"login: unknown field(s) {sorted(unknown)} for LoginInput")
    username, password, source = body.get("username"), body.get("password"), body.get("source")
    if not isinstance(username, str) or not isinstance(password, str):
        raise RestError(400, "username and password are required strings")
    if source is not None and source not in USER_SOURCES:
        raise RestError(400, f"source must be one of {', '.join(USER_SOURCES)}, got {source!r}")
    token = tower.login(username, password, source or "LOCAL")
    return {"data": {"token": token}, "task_id": None}


@rest_call("get-organizations", kind="get", typename="Organization")
def get_organizations(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_organizations()


@rest_call("get-datacenters", kind="get", typename="Datacenter")
def get_datacenters(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_datacenters()


@rest_call("create-datacenter", kind="create")
def create_datacenter(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.create_datacenters(datacenter_specs(items), ctx.user_id, ctx.fault)


@rest_call("get-clusters", kind="get", typename="Cluster")
def get_clusters(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_clusters()


@rest_call("connect-cluster", kind="create")
def connect_cluster(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.connect_clusters(cluster_specs(items), ctx.user_id, ctx.fault)


@rest_call("add-clusters-to-datacenter", kind="create")
def add_clusters_to_datacenter(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    """Moves the matched clusters into the datacenter (see :mod:`mocks.cloudtower.orgs`)."""
    return tower.add_clusters_to_datacenter(datacenter_moves(items), ctx.user_id, ctx.fault)


@rest_call("remove-clusters-from-datacenter", kind="create")
def remove_clusters_from_datacenter(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.remove_clusters_from_datacenter(datacenter_moves(items), ctx.user_id, ctx.fault)


@rest_call("get-tasks", kind="get", typename="Task")
def get_tasks(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_tasks()


@rest_call("get-hosts", kind="get", typename="Host")
def get_hosts(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_hosts()


@rest_call("get-vdses", kind="get", typename="Vds")
def get_vdses(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_vdses()


@rest_call("get-vlans", kind="get", typename="Vlan",
           relations=lambda tower: {"vds": {v["id"]: v for v in tower.list_vdses()}})
def get_vlans(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_vlans()


# guide §06 (cluster settings, alert rules, views and graphs, rack topology) registers its calls here
from . import rest_config  # noqa: E402,F401
from . import rest_backup  # noqa: E402,F401  (stage 07b: create-vm-vlan, uploads, backup services)
from . import rest_vms  # noqa: E402,F401  (stages 09-11: VMs, disk uploads, metrics)
