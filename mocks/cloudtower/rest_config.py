"""REST v2 calls of guide §06 (``POST /v2/api/<call>``): cluster settings, alert rules, monitoring views and
graphs, rack topology. Registered in :data:`mocks.cloudtower.rest.REST_CALLS` when ``rest.py`` imports this
module (its last line); the shapes are the SDK's (see the models' module docs)."""
from __future__ import annotations

from typing import Any

from .errors import RestError
from .models import CloudTowerModel
from .rest import RestCtx, rest_call


# --------------------------------------------------------------------------- settings, alert rules
@rest_call("get-cluster-settingses", kind="get", typename="ClusterSettings")
def get_cluster_settingses(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_cluster_settings()


@rest_call("get-global-alert-rules", kind="get", typename="GlobalAlertRule")
def get_global_alert_rules(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_global_alert_rules(rest=True)


@rest_call("get-alert-rules", kind="get", typename="AlertRule")
def get_alert_rules(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_alert_rules()


def _where_data(name: str, body: Any) -> dict:
    if set(body) - {"where", "data"} or not isinstance(body.get("data"), dict):
        raise RestError(400, f"{name}: the body must be {{where, data}}")
    return body


@rest_call("update-global-alert-rule", kind="action")
def update_global_alert_rule(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.rest_update_global_alert_rules(_where_data("update-global-alert-rule", body), customize=False)


@rest_call("update-customize-alert-rule", kind="action")
def update_customize_alert_rule(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.rest_update_global_alert_rules(_where_data("update-customize-alert-rule", body), customize=True)


# --------------------------------------------------------------------------- views and graphs
@rest_call("create-view", kind="create")
def create_view(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.create_views(items)


@rest_call("get-views", kind="get", typename="View")
def get_views(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_views()


@rest_call("update-view", kind="action")
def update_view(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.update_views(body)


@rest_call("delete-view", kind="action")
def delete_view(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.delete_views(body)


@rest_call("create-graph", kind="create")
def create_graph(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.create_graphs(items)


@rest_call("get-graphs", kind="get", typename="Graph")
def get_graphs(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
    return tower.list_graphs()


@rest_call("update-graph", kind="action")
def update_graph(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.update_graphs(body)


@rest_call("delete-graph", kind="action")
def delete_graph(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.delete_graphs(body)


# --------------------------------------------------------------------------- rack topology
def _topo_get(kind: str, typename: str):
    def handler(tower: CloudTowerModel, ctx: RestCtx) -> list[dict]:
        return tower.list_topo(kind)
    return rest_call(f"get-{kind.replace('_', '-')}", kind="get", typename=typename)(handler)


for _kind, _typename in (("cluster_topoes", "ClusterTopo"), ("zone_topoes", "ZoneTopo"), ("rack_topoes", "RackTopo"),
                         ("brick_topoes", "BrickTopo"), ("node_topoes", "NodeTopo")):
    _topo_get(_kind, _typename)


@rest_call("create-rack-topo", kind="create")
def create_rack_topo(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.create_racks(items, ctx.user_id)


@rest_call("update-rack-topo", kind="action")
def update_rack_topo(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.update_racks(body, ctx.user_id)


@rest_call("delete-rack-topo", kind="action")
def delete_rack_topo(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.delete_racks(body, ctx.user_id)


@rest_call("create-brick-topo", kind="create")
def create_brick_topo(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    return tower.create_bricks(items, ctx.user_id)


@rest_call("update-brick-topo", kind="action")
def update_brick_topo(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.update_bricks(body, ctx.user_id)


@rest_call("move-brick-topo", kind="action")
def move_brick_topo(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.move_bricks(body, ctx.user_id)


@rest_call("delete-brick-topo", kind="action")
def delete_brick_topo(tower: CloudTowerModel, body: dict, ctx: RestCtx) -> list[dict]:
    return tower.delete_bricks(body, ctx.user_id)


@rest_call("move-node-topo", kind="create")
def move_node_topo(tower: CloudTowerModel, items: list, ctx: RestCtx) -> list[dict]:
    """``NodeTopoApi.update_node_topo``: a **list** of ``{where, data}`` (the SDK's ``NodeTopUpdationParam``)."""
    return tower.move_nodes(items, ctx.user_id)
