"""Simulated CloudTower, stage 05 (attach the cluster): add-clusters-to-datacenter, the duplicate refusals, the
``connect-auth`` / ``cluster-sync`` / ``rest-bodies`` profile groups, DISCONNECTED when the VIP stops answering,
the stuck-connect knob (``tower.connect_seconds``) and the ``cluster-attached`` preset. In-process simulators over
real HTTPS on loopback, started from a ``cloudtower-ready`` snapshot."""
from __future__ import annotations

import json

import pytest

from mocks import Simulator
from mocks.cloudtower.clusters import AUTH_FAIL_S, CONNECT_S, SYNC_LAG_S
from mocks.cloudtower.models import DatacenterSpec
from mocks.presets import PRESETS, PresetError, apply_preset
from mocks.profiles import META_PROFILES, PROFILES, apply_profiles, groups, parse

from .ct_world import ready_fixtures, towers
from .test_sim_cloudtower import CUID, TOWER_PW, Tower, rest_error


plan, ready = ready_fixtures("attachplan")


@pytest.fixture
def world(plan, ready, monkeypatch):
    """``world(profiles=None)`` -> a logged-in :class:`Tower` client on a started cloudtower-ready simulator."""
    with towers(plan, ready, monkeypatch) as tower:
        def make(profiles=None) -> Tower:
            t = tower(profiles)
            t.vip = str(plan.vip)
            t.org = t.ok(t.rest("get-organizations", {"where": {"name": plan.customer}}))[0]
            return t

        yield make


def _dc(t: Tower, name: str) -> dict:
    (item,) = t.ok(t.rest("create-datacenter", [{"organization_id": t.org["id"], "name": name}]))
    return item["data"]


def _connect(t: Tower, dc: dict | None = None, password: str | None = None):
    item = {"ip": t.vip, "username": "root", "password": password or t.plan.cluster_admin_password}
    if dc is not None:
        item["datacenter_id"] = dc["id"]
    return t.rest("connect-cluster", [item])


def _cluster(t: Tower) -> dict:
    (c,) = t.ok(t.rest("get-clusters", {"where": {"ip": t.vip}}))
    return c


def _attached(t: Tower, dc: dict) -> dict:
    (item,) = t.ok(_connect(t, dc))
    t.sim.advance(t.tower.connect_seconds + 1)
    c = _cluster(t)
    assert c["connect_state"] == "CONNECTED", c
    return item


def _move(t: Tower, dc_id: str, clusters: dict, call: str = "add-clusters-to-datacenter"):
    return t.rest(call, [{"where": {"id": dc_id}, "data": {"clusters": clusters}}])


def _counts(tower) -> tuple[int, int, int, int]:
    return len(tower.organizations), len(tower.datacenters), len(tower.clusters), len(tower.tasks)


# --------------------------------------------------------------------------- add-clusters-to-datacenter
def test_add_clusters_to_datacenter_moves_the_cluster(world):
    t = world()
    dc1, dc2 = _dc(t, "DC1"), _dc(t, "DC2")
    _attached(t, dc1)
    cid = _cluster(t)["id"]
    (item,) = t.ok(_move(t, dc2["id"], {"id": cid}))
    assert set(item) == {"data", "task_id"} and item["task_id"] is None
    assert item["data"]["id"] == dc2["id"] and item["data"]["clusters"] == [{"id": cid, "name": t.plan.cluster_name}]
    assert item["data"]["cluster_num"] == 1 and item["data"]["host_num"] == len(t.plan.hosts)
    assert _cluster(t)["datacenters"] == [{"id": dc2["id"], "name": "DC2"}]          # exactly the target one
    by_name = {d["name"]: d for d in t.ok(t.rest("get-datacenters"))}
    assert by_name["DC1"]["cluster_num"] == 0 and by_name["DC1"]["clusters"] == []
    assert by_name["DC2"]["cluster_num"] == 1
    # again into the same datacenter, by another filter: no error, no change; a filter matching nothing: no-op
    assert t.ok(_move(t, dc2["id"], {"ip": t.vip}))[0]["data"]["cluster_num"] == 1
    assert t.ok(_move(t, dc1["id"], {"ip": "10.255.255.1"}))[0]["data"]["cluster_num"] == 0
    assert _cluster(t)["datacenters"] == [{"id": dc2["id"], "name": "DC2"}]
    # and back, then out
    t.ok(_move(t, dc1["id"], {"id_in": [cid]}))
    assert [d["id"] for d in _cluster(t)["datacenters"]] == [dc1["id"]]
    (out,) = t.ok(_move(t, dc1["id"], {"id": cid}, "remove-clusters-from-datacenter"))
    assert out["data"]["cluster_num"] == 0 and _cluster(t)["datacenters"] == []
    # a task when the tower makes one for datacenter changes
    t.tower.datacenter_task = True
    (item,) = t.ok(_move(t, dc2["id"], {"id": cid}))
    assert CUID.match(item["task_id"])
    (task,) = t.ok(t.rest("get-tasks", {"where": {"id": item["task_id"]}}))
    assert task["resource_type"] == "Datacenter" and task["args"]["clusters"] == [cid]


def test_add_clusters_to_datacenter_refusals(world):
    t = world()
    dc = _dc(t, "DC1")
    rest_error(t.rest("add-clusters-to-datacenter", {"where": {"id": dc["id"]}, "data": {"clusters": {}}}), 400,
               "JSON array")
    rest_error(_move(t, "c" + "0" * 24, {"ip": t.vip}), 404, "no datacenter")
    rest_error(t.rest("add-clusters-to-datacenter", [{"where": {"name": "DC1"}, "data": {"clusters": {}}}]), 400,
               "where must be {id}")
    rest_error(t.rest("add-clusters-to-datacenter", [{"where": {"id": dc["id"]}, "data": {}}]), 400,
               "data.clusters is required")
    rest_error(t.rest("add-clusters-to-datacenter", [{"where": {"id": dc["id"]}}]), 400, "data must be")
    t.ok(_connect(t, dc))
    rest_error(_move(t, dc["id"], {"nope": 1}), 400, '"nope" is not a filter of Cluster')


# --------------------------------------------------------------------------- duplicates
def test_duplicate_connect_and_duplicate_datacenter_are_400_error_bodies(world):
    t = world()
    dc = _dc(t, "DC1")
    rest_error(t.rest("create-datacenter", [{"organization_id": t.org["id"], "name": "DC1"}]), 400, "already exists")
    rest_error(t.rest("create-datacenter", [{"organization_id": t.org["id"], "name": "DC9"},
                                            {"organization_id": t.org["id"], "name": "DC9"}]), 400, "already exists")
    assert [d["name"] for d in t.ok(t.rest("get-datacenters"))] == ["DC1"]            # all or nothing
    t.ok(_connect(t, dc))
    before = _counts(t.tower)
    rest_error(_connect(t, dc), 400, "already connected")                            # INITIALIZING
    t.sim.advance(CONNECT_S + 1)
    rest_error(_connect(t), 400, "already connected")                                # CONNECTED
    assert _counts(t.tower) == before


# --------------------------------------------------------------------------- connect-auth
def test_profile_groups_defaults_and_real_gear():
    g = groups()
    assert {p.name for p in g["connect-auth"]} == {"connect-auth-refused", "connect-auth-late"}
    assert {p.name for p in g["cluster-sync"]} == {"cluster-sync-prompt", "cluster-sync-lags"}
    assert {p.name for p in g["rest-bodies"]} == {"rest-bodies-strict", "rest-bodies-lenient"}
    assert all(PROFILES[n].default for n in ("connect-auth-refused", "cluster-sync-prompt", "rest-bodies-strict"))
    real = {p.name for p in parse("real-gear")}
    assert "cluster-sync-lags" in real and not real & {"connect-auth-late", "rest-bodies-lenient"}
    assert "real-gear" in PROFILES["cluster-sync-lags"].summary and "real-gear" in PROFILES[
        "connect-auth-refused"].summary
    assert set(META_PROFILES["real-gear"]) == real


def test_connect_auth_refused_answers_400_at_once(world):
    t = world()
    dc = _dc(t, "DC1")
    before = _counts(t.tower)
    rest_error(_connect(t, dc, "wrong-password"), 400, "wrong username or password", code="LOAD_CLUSTER_UNAUTHORIZED")
    assert _counts(t.tower) == before and t.ok(t.rest("get-clusters")) == []


def test_connect_auth_late_fails_the_task_then_a_right_password_connects(world):
    t = world("connect-auth-late")
    assert t.tower.connect_auth == "late"
    dc = _dc(t, "DC1")
    (item,) = t.ok(_connect(t, dc, "wrong-password"))
    assert item["data"]["connect_state"] == "INITIALIZING"
    t.sim.advance(AUTH_FAIL_S / 2)
    c = _cluster(t)
    assert c["connect_state"] == "INITIALIZING" and c["disconnected_reason"] is None
    t.sim.advance(AUTH_FAIL_S)
    c = _cluster(t)
    assert c["connect_state"] == "CONNECTED_ERROR" and c["disconnected_reason"] == "LOAD_CLUSTER_UNAUTHORIZED"
    assert c["disconnected_date"] and c["host_num"] == 0 and c["hosts"] == []
    (task,) = t.ok(t.rest("get-tasks", {"where": {"id": item["task_id"]}}))
    assert task["status"] == "FAILED" and task["error_code"] == "LOAD_CLUSTER_UNAUTHORIZED"
    assert "wrong username or password" in task["error_message"]
    # other probe failures stay synchronous under this profile
    t.sim.set_up(t.vip, 443, False)
    rest_error(_connect(t, dc), 400, code="LOAD_CLUSTER_NETWORK_ERROR")
    t.sim.set_up(t.vip, 443, True)
    # a retry with the right password replaces the failed record
    (again,) = t.ok(_connect(t, dc))
    t.sim.advance(CONNECT_S + 1)
    (c,) = t.ok(t.rest("get-clusters"))
    assert c["id"] == again["data"]["id"] and c["connect_state"] == "CONNECTED" and c["disconnected_reason"] is None


def test_connect_auth_profile_applies_to_a_tower_already_running(world):
    t = world()
    assert t.tower.connect_auth == "refused"
    apply_profiles(t.sim, "connect-auth-late,rest-bodies-lenient")
    assert t.tower.connect_auth == "late" and t.tower.rest_bodies == "lenient"
    assert t.ok(_connect(t, None, "wrong-password"))[0]["data"]["connect_state"] == "INITIALIZING"


def test_operation_fault_reason_is_load_cluster_failed(world):
    t = world()
    dc = _dc(t, "DC1")
    t.sim.faults.add({"method": "POST", "path": "/v2/api/connect-cluster", "operation": "fail", "msg": "boom"})
    (item,) = t.ok(_connect(t, dc))
    t.sim.advance(CONNECT_S + 1)
    c = _cluster(t)
    assert c["connect_state"] == "CONNECTED_ERROR" and c["disconnected_reason"] == "LOAD_CLUSTER_FAILED"
    (task,) = t.ok(t.rest("get-tasks", {"where": {"id": item["task_id"]}}))
    assert task["error_code"] == "LOAD_CLUSTER_FAILED" and task["error_message"] == "boom"


# --------------------------------------------------------------------------- DISCONNECTED
def test_a_connected_cluster_whose_vip_stops_answering_reads_disconnected(world):
    t = world()
    dc = _dc(t, "DC1")
    _attached(t, dc)
    t.sim.set_up(t.vip, 443, False)
    c = _cluster(t)
    assert c["connect_state"] == "DISCONNECTED" and c["disconnected_reason"] == "LOAD_CLUSTER_NETWORK_ERROR"
    since = c["disconnected_date"]
    assert since and c["host_num"] == len(t.plan.hosts)                    # CloudTower keeps what it synced
    hosts = t.ok(t.rest("get-hosts", {"where": {"cluster": {"id": c["id"]}}}))
    assert {h["connect_status"] for h in hosts} == {"DISCONNECTED"}
    t.sim.advance(60)
    assert _cluster(t)["disconnected_date"] == since                     # when CloudTower first noticed
    rest_error(_connect(t, dc), 400, "already connected")                  # still known: never connected twice
    t.sim.set_up(t.vip, 443, True)
    c = _cluster(t)
    assert c["connect_state"] == "CONNECTED" and c["disconnected_reason"] is None and c["disconnected_date"] is None


# --------------------------------------------------------------------------- cluster-sync
def test_cluster_sync_lags_shows_connected_with_no_hosts_first(world):
    t = world("cluster-sync-lags")
    assert t.tower.sync_lag_s == SYNC_LAG_S
    dc = _dc(t, "DC1")
    _attached(t, dc)
    c = _cluster(t)
    assert c["connect_state"] == "CONNECTED" and c["host_num"] == 0 and c["hosts"] == [] and c["vdses"] == []
    assert c["settings"]["id"] and c["local_id"]                          # the rest of the record is there
    assert t.ok(t.rest("get-hosts")) == [] and t.ok(t.rest("get-vdses")) == [] and t.ok(t.rest("get-vlans")) == []
    assert t.ok(t.rest("get-datacenters"))[0]["host_num"] == 0
    t.sim.advance(SYNC_LAG_S)
    c = _cluster(t)
    assert c["host_num"] == len(t.plan.hosts) and c["vdses"]
    assert sorted(h["management_ip"] for h in c["hosts"]) == sorted(str(h.mgmt_ip) for h in t.plan.hosts)
    assert len(t.ok(t.rest("get-hosts"))) == len(t.plan.hosts) and t.ok(t.rest("get-vlans"))


def test_cluster_sync_prompt_fills_hosts_at_connected(world):
    t = world()
    assert t.tower.sync_lag_s == 0.0
    _attached(t, _dc(t, "DC1"))
    assert _cluster(t)["host_num"] == len(t.plan.hosts)


# --------------------------------------------------------------------------- the stuck knob
def test_connect_seconds_keeps_a_connect_initializing_and_survives_a_snapshot(world, plan):
    t = world()
    t.tower.connect_seconds = 10**6
    (item,) = t.ok(_connect(t, _dc(t, "DC1")))
    t.sim.advance(3600)
    assert _cluster(t)["connect_state"] == "INITIALIZING"
    (task,) = t.ok(t.rest("get-tasks", {"where": {"id": item["task_id"]}}))
    assert task["status"] == "EXECUTING" and task["progress"] < 0.01
    state = t.tower.export_state()
    assert state["tunables"]["connect_seconds"] == 10**6
    snap = json.loads(json.dumps(t.sim.snapshot()))
    again = Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, profiles=[], snapshot=snap).start()
    try:
        tower = again.state.cloudtower.tower(t.ip)
        assert tower.connect_seconds == 10**6
        again.advance(7200)
        assert [tower.connect_state(c) for c in tower.clusters.values()] == ["INITIALIZING"]
    finally:
        again.close()


# --------------------------------------------------------------------------- rest-bodies
def test_bare_create_bodies_only_under_rest_bodies_lenient(world):
    t = world()
    rest_error(t.rest("create-datacenter", {"organization_id": t.org["id"], "name": "DC1"}), 400, "JSON array")
    t2 = world("rest-bodies-lenient")
    r = t2.ok(t2.rest("create-datacenter", {"organization_id": t2.org["id"], "name": "DC1"}))
    assert set(r) == {"data", "task_id"} and r["data"]["name"] == "DC1"                 # the guide's bare answer
    r = t2.ok(t2.rest("connect-cluster", {"datacenter_id": r["data"]["id"], "ip": t2.vip, "username": "root",
                                          "password": t2.plan.cluster_admin_password}))
    assert r["data"]["connect_state"] == "INITIALIZING" and CUID.match(r["task_id"])
    assert len(t2.ok(t2.rest("create-datacenter", [{"organization_id": t2.org["id"], "name": "DC2"}]))) == 1


# --------------------------------------------------------------------------- the cluster-attached preset
def test_cluster_attached_preset_and_applying_it_twice(plan, ready):
    assert "cluster-attached" in PRESETS
    with Simulator.from_plan(plan, load_env_faults=False, profiles="cluster-sync-lags",
                             snapshot=json.loads(json.dumps(ready))) as sim:
        summary = apply_preset(sim, "cluster-attached")
        tower = sim.state.cloudtower.tower(str(plan.cloudtower.ip))
        info = summary["cloudtower_cluster"]
        assert info["connect_state"] == "CONNECTED" and info["ip"] == str(plan.vip)
        assert info["datacenter"]["name"] == plan.datacenter and info["organization"]["name"] == plan.customer
        (c,) = tower.list_clusters()
        assert c["id"] == info["id"] and c["host_num"] == len(plan.hosts)          # synced, also under the lag
        assert c["datacenters"] == [info["datacenter"]] and c["settings"]["id"] == info["settings_id"]
        (task,) = tower.list_tasks()
        assert task["id"] == info["task_id"] and task["status"] == "SUCCESSED"
        (dc,) = tower.list_datacenters()
        assert dc["organization"]["name"] == plan.customer and dc["cluster_num"] == 1
        before = _counts(tower)
        assert apply_preset(sim, "cluster-attached")["cloudtower_cluster"] == info
        assert _counts(tower) == before                                         # nothing created twice
        # moved elsewhere meanwhile: the preset moves it back, without connecting again
        (other,) = tower.create_datacenters([DatacenterSpec(dc["organization"]["id"], "elsewhere")], None)
        other = other["data"]
        tower.add_clusters_to_datacenter([(other["id"], {"id": c["id"]})], None)
        apply_preset(sim, "cluster-attached")
        assert tower.list_clusters()[0]["datacenters"] == [info["datacenter"]]
        assert len(tower.tasks) == before[3] and len(tower.clusters) == 1


def test_cluster_attached_over_rest_and_its_errors(plan, ready):
    with Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, profiles=[],
                             snapshot=json.loads(json.dumps(ready))) as sim:
        sim.start()
        summary = apply_preset(sim, "cluster-attached")
        t = Tower(sim, str(plan.cloudtower.ip))
        try:
            assert t.login(TOWER_PW).status_code == 200
            (c,) = t.ok(t.rest("get-clusters", {"where": {"ip": str(plan.vip)}}))
            assert c["connect_state"] == "CONNECTED" and c["id"] == summary["cloudtower_cluster"]["id"]
            assert sorted(h["management_ip"] for h in c["hosts"]) == sorted(str(h.mgmt_ip) for h in plan.hosts)
        finally:
            t.http.close()
        sim.set_up(str(plan.vip), 443, False)                      # DISCONNECTED: the preset cannot make it so
        with pytest.raises(PresetError, match="DISCONNECTED"):
            apply_preset(sim, "cluster-attached")
