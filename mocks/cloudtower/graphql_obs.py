"""GraphQL resolvers of stage 07a (OBS, guide §07), merged into :data:`mocks.cloudtower.graphql.RESOLVERS`.

Schema: ``schema_obs.graphql``; state: :mod:`mocks.cloudtower.obs`. Every field needs a session: the
``connect.sid`` cookie of the GraphQL ``login`` (what the guide's OBS calls send alone) or the token.

* ``observabilityInstanceAndApps`` (G L2325): ``bundleApplicationPackages``, ``bundleApplicationInstances``,
  ``bundleApplicationConnectedClusters`` (optional ``where`` / ``skip`` / ``first``);
* ``createBundleApplicationInstance(data)`` -> the instance (INSTALLING); an ``operation`` fault rule
  (``operation_name: createBundleApplicationInstance``) ``stuck`` keeps it INSTALLING, ``fail`` makes it FAILED;
* ``updateObservabilityNtpUrl(data: {ntp_service_url: "a,b"}, where: {id})`` -> ``{ntp_service_url: "a;b"}``;
* ``updateBundleApplicationInstanceConnectClusters(where: {id}, data: {connected_clusters: ClusterWhereInput})``:
  the CONNECTED clusters the filter matches become the instance's connected clusters (``id_in`` naming an unknown
  cluster -> ``NOT_FOUND``);
* ``updateObservabilityConnectedSystemServices(ovm_name, connected_system_services)`` -> the services given.
"""
from __future__ import annotations

from typing import Callable

from .filters import FilterError, select
from .graphql import Ctx
from .errors import GqlError


def _select(items: list[dict], args: dict, typename: str) -> list[dict]:
    try:
        return select(items, args, typename=typename)
    except FilterError as exc:
        raise GqlError(str(exc), "BAD_USER_INPUT") from None


def _packages(_root, info, **args) -> list[dict]:
    ctx: Ctx = info.context
    ctx.user()
    return _select(ctx.tower.list_obs_packages(), args, "BundleApplicationPackage")


def _instances(_root, info, **args) -> list[dict]:
    ctx: Ctx = info.context
    ctx.user()
    return _select(ctx.tower.list_obs_instances(), args, "BundleApplicationInstance")


def _connected_clusters(_root, info, **args) -> list[dict]:
    ctx: Ctx = info.context
    ctx.user()
    return _select(ctx.tower.list_obs_connected_clusters(), args, "BundleApplicationConnectedCluster")


def _create_instance(_root, info, data: dict) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    return ctx.tower.create_obs_instance(data, getattr(ctx, "fault", None))


def _update_ntp(_root, info, data: dict, where: dict) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    return {"ntp_service_url": ctx.tower.set_obs_ntp(where.get("id"), data["ntp_service_url"])}


def _connect_clusters(_root, info, where: dict, data: dict) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    tower = ctx.tower
    if set(where) - {"id"} or not where.get("id"):
        raise GqlError("where: the simulator selects the instance by id only", "BAD_USER_INPUT")
    want = data["connected_clusters"]
    clusters = [c for c in tower.list_clusters() if c["connect_state"] == "CONNECTED"]
    chosen = _select(clusters, {"where": want}, "Cluster")
    missing = [i for i in want.get("id_in") or [] if i not in {c["id"] for c in chosen}]
    if missing:
        raise GqlError(f"connected_clusters: no CONNECTED cluster with id {', '.join(missing)}", "NOT_FOUND")
    return tower.connect_obs_clusters(where["id"], chosen)


def _system_services(_root, info, ovm_name: str, connected_system_services: list[dict]) -> dict:
    ctx: Ctx = info.context
    ctx.user()
    return {"connected_system_services": ctx.tower.set_obs_system_services(ovm_name, connected_system_services)}


RESOLVERS: dict[tuple[str, str], Callable] = {
    ("Query", "bundleApplicationPackages"): _packages,
    ("Query", "bundleApplicationInstances"): _instances,
    ("Query", "bundleApplicationConnectedClusters"): _connected_clusters,
    ("Mutation", "createBundleApplicationInstance"): _create_instance,
    ("Mutation", "updateObservabilityNtpUrl"): _update_ntp,
    ("Mutation", "updateBundleApplicationInstanceConnectClusters"): _connect_clusters,
    ("Mutation", "updateObservabilityConnectedSystemServices"): _system_services,
}
