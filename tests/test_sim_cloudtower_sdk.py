"""The official CloudTower SDK (``cloudtower-sdk`` 2.23.0, a test-only dependency) drives the simulated CloudTower
of ``python -m mocks serve --preset cloudtower-ready``: login, get-organizations, create-datacenter, connect-cluster,
get-clusters until CONNECTED, get-vlans, get-vdses, get-tasks (and get-hosts, get-datacenters,
add-clusters-to-datacenter, an ErrorBody).

Every answer must deserialize in the SDK; on top of that each raw answer is checked against the SDK's models
(:func:`check_shape`): every key is a field of the model, enum values are among the model's allowed values,
primitive types match, and required fields are present and not null. A shape the SDK cannot take is a
simulator bug. Only 127.0.0.0/8 is ever contacted: the SDK talks to the loopback port serving the CloudTower IP's
443, proxies are cleared, and every request the SDK sends is checked."""
from __future__ import annotations

import json
import re
import time
from urllib.parse import urlsplit

import pytest

ct = pytest.importorskip("cloudtower", reason="cloudtower-sdk is a test dependency: pip install -e '.[test]'")
from cloudtower import models as M  # noqa: E402
from cloudtower.api import (ClusterApi, DatacenterApi, HostApi, OrganizationApi, TaskApi, UserApi,  # noqa: E402
                            VdsApi, VlanApi)
from cloudtower.exceptions import ApiException  # noqa: E402

from mocks.testing import load_plan  # noqa: E402

from .sdk_serve import PLAN, TOWER_PW, Recorder, sdk_client, sdk_configuration, serve  # noqa: E402
from .sdk_serve import loopback as _loopback  # noqa: E402

_PRIMITIVES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
PARTIAL = {"Host"}        # the simulator's Host view carries what the suite reads, not every required field


# --------------------------------------------------------------------------- strict shape check against the SDK
def _required(klass) -> set[str]:
    """The attributes whose setter refuses None (the OpenAPI spec's required fields)."""
    inst, out = klass(), set()
    for attr in klass.openapi_types:
        try:
            setattr(inst, attr, None)
        except ValueError:
            out.add(attr)
    return out


def check_shape(value, typ: str, path: str = "$") -> list[str]:
    """Problems of the JSON ``value`` as the SDK type ``typ`` (``list[Cluster]``, ``Task``, ``str`` ...)."""
    problems: list[str] = []
    _check(value, typ, path, problems)
    return problems


def _check(value, typ: str, path: str, problems: list[str]) -> None:
    if value is None:
        return
    m = re.fullmatch(r"list\[(.*)\]", typ)
    if m:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list ({typ}), got {type(value).__name__}")
            return
        for i, v in enumerate(value):
            _check(v, m.group(1), f"{path}[{i}]", problems)
        return
    if typ in _PRIMITIVES:
        if not isinstance(value, _PRIMITIVES[typ]) or (typ != "bool" and isinstance(value, bool)):
            problems.append(f"{path}: expected {typ}, got {value!r}")
        return
    if typ in ("object", "datetime", "date"):
        return
    klass = getattr(M, typ)
    if not klass.openapi_types:                                   # an enum
        allowed = getattr(klass, "allowable_values", None)
        if allowed is not None and value not in allowed:
            problems.append(f"{path}: {value!r} is not a {typ} {allowed}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({typ}), got {type(value).__name__}")
        return
    wire = {key: attr for attr, key in klass.attribute_map.items()}
    problems += [f"{path}.{k}: not a field of {typ}" for k in value if k not in wire]
    for attr in sorted(_required(klass)):
        key = klass.attribute_map[attr]
        if value.get(key) is None and (key in value or typ not in PARTIAL):
            problems.append(f"{path}.{key}: required by {typ}, but {'null' if key in value else 'missing'}")
    for key, v in value.items():
        if key in wire:
            _check(v, klass.openapi_types[wire[key]], f"{path}.{key}", problems)


def test_the_shape_check_catches_what_the_sdk_would_silently_take():
    bad = [{"id": "c1", "name": None, "connect_state": "FAILED", "host_num": "4", "hostnum": 4}]
    problems = "\n".join(check_shape(bad, "list[Cluster]"))
    for needle in ("hostnum: not a field", "name: required by Cluster, but null", "ip: required by Cluster, but "
                   "missing", "'FAILED' is not a ConnectState", "host_num: expected int"):
        assert needle in problems, problems


# --------------------------------------------------------------------------- the served simulator
@pytest.fixture(scope="module")
def served():
    """``python -m mocks serve --preset cloudtower-ready`` at 1000x: its control URL, CA, preset summary."""
    with serve("cloudtower-ready", wait_s=60) as info:
        yield info


@pytest.fixture
def sdk(served, monkeypatch):
    conf = sdk_configuration(served, monkeypatch)
    assert _loopback(urlsplit(conf.host).hostname)
    with sdk_client(conf) as (client, rec):
        yield client, rec


def _shape(rec: Recorder, typ: str) -> object:
    body = rec.raw()
    problems = check_shape(body, typ)
    assert not problems, "\n".join(problems)
    return body


def test_the_official_sdk_drives_the_simulated_cloudtower(sdk, served):
    client, rec = sdk
    plan = load_plan(PLAN)
    vip = served["summary"]["vip"]

    login = UserApi(client).login(M.LoginInput(username="root", password=TOWER_PW, source=M.UserSource.LOCAL))
    _shape(rec, "WithTaskLoginResponse")
    client.configuration.api_key["Authorization"] = login.data.token

    (org,) = OrganizationApi(client).get_organizations(
        M.GetOrganizationsRequestBody(where=M.OrganizationWhereInput(name=plan.customer)))
    _shape(rec, "list[Organization]")
    assert org.name == plan.customer

    dcs = DatacenterApi(client)
    (made,) = dcs.create_datacenter([M.DatacenterCreationParams(organization_id=org.id, name=plan.datacenter)])
    _shape(rec, "list[WithTaskDatacenter]")
    assert made.data.name == plan.datacenter and made.data.organization.id == org.id
    with pytest.raises(ApiException) as exc:                                   # the same name again
        dcs.create_datacenter([M.DatacenterCreationParams(organization_id=org.id, name=plan.datacenter)])
    assert exc.value.status == 400 and not check_shape(json.loads(exc.value.body), "ErrorBody")

    clusters = ClusterApi(client)
    (item,) = clusters.connect_cluster([M.ClusterCreationParams(ip=vip, username="root",
                                                                password=plan.cluster_admin_password,
                                                                datacenter_id=made.data.id)])
    _shape(rec, "list[WithTaskCluster]")
    assert item.data.connect_state == M.ConnectState.INITIALIZING and item.task_id
    with pytest.raises(ApiException) as exc:                                   # never connected twice
        clusters.connect_cluster([M.ClusterCreationParams(ip=vip, username="root",
                                                          password=plan.cluster_admin_password)])
    assert exc.value.status == 400 and not check_shape(json.loads(exc.value.body), "ErrorBody")

    seen, deadline = [], time.monotonic() + 30
    while True:
        (cl,) = clusters.get_clusters(M.GetClustersRequestBody(where=M.ClusterWhereInput(ip=vip)))
        _shape(rec, "list[Cluster]")
        if not seen or seen[-1] != cl.connect_state:
            seen.append(cl.connect_state)
        if cl.connect_state == M.ConnectState.CONNECTED or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert seen == ["INITIALIZING", "CONNECTED"], seen
    assert cl.host_num == len(plan.hosts) and cl.local_id and cl.settings.id
    assert sorted(h.management_ip for h in cl.hosts) == sorted(str(h.mgmt_ip) for h in plan.hosts)
    assert [d.id for d in cl.datacenters] == [made.data.id]

    where_cluster = M.ClusterWhereInput(id=cl.id)
    vdses = VdsApi(client).get_vdses(M.GetVdsesRequestBody(where=M.VdsWhereInput(cluster=where_cluster)))
    _shape(rec, "list[Vds]")
    assert any(v.type == M.NetworkType.MANAGEMENT for v in vdses)
    vlans = VlanApi(client).get_vlans(M.GetVlansRequestBody(where=M.VlanWhereInput(   # nested filters know the
        vds=M.VdsWhereInput(id_in=[v.id for v in vdses]))))                           # nested view's fields only
    _shape(rec, "list[Vlan]")
    assert vlans and all(isinstance(v.vlan_id, int) for v in vlans)
    hosts = HostApi(client).get_hosts(M.GetHostsRequestBody(where=M.HostWhereInput(cluster=where_cluster)))
    _shape(rec, "list[Host]")
    assert len(hosts) == len(plan.hosts)
    (task,) = TaskApi(client).get_tasks(M.GetTasksRequestBody(where=M.TaskWhereInput(id=item.task_id)))
    _shape(rec, "list[Task]")
    assert task.status == M.TaskStatus.SUCCESSED
    TaskApi(client).get_tasks(M.GetTasksRequestBody())
    _shape(rec, "list[Task]")

    # move the cluster to another datacenter and back: it is in exactly one afterwards
    (other,) = dcs.create_datacenter([M.DatacenterCreationParams(organization_id=org.id, name="sdk-other")])
    (moved,) = dcs.add_clusters_to_datacenter([M.AddClustersToDatacenterParams(
        where=M.DatacenterWhereUniqueInput(id=other.data.id),
        data=M.AddClustersToDatacenterParamsData(clusters=where_cluster))])
    _shape(rec, "list[WithTaskDatacenter]")
    assert [c.id for c in moved.data.clusters] == [cl.id]
    listed = dcs.get_datacenters(M.GetDatacentersRequestBody(where=M.DatacenterWhereInput(organization=M.
                                                                                        OrganizationWhereInput(id=org.id))))
    _shape(rec, "list[Datacenter]")
    assert {d.name: d.cluster_num for d in listed} == {plan.datacenter: 0, "sdk-other": 1}
    assert all(_loopback(urlsplit(u).hostname) for u in rec.urls) and len(rec.urls) >= 14
