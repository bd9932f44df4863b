"""Simulated CloudTower, stage 06 (configure the cluster through CloudTower): cluster settings, alert rules (the
pagination trap, per-cluster rules on CONNECTED), the GraphQL errors[] fault on an operationName, monitoring views
and graphs, rack topology, the stage-06 profiles, snapshot / restore and the ``cloudtower-configured`` preset.
In-process simulators over real HTTPS on loopback, started from a ``cloudtower-ready`` snapshot."""
from __future__ import annotations

import json

import pytest

from mocks import Simulator
from mocks.cloudtower.alert_catalog import CATALOG, GUIDE_COUNT, TARGET, TARGET_POSITION
from mocks.cloudtower.views import DASHBOARDS
from mocks.presets import apply_preset, capacity_notice
from mocks.testing import load_plan, plan_path

from .ct_world import ready_fixtures, towers
from .test_sim_cloudtower import TOWER_PW, Tower, rest_error

# the guide's documents, verbatim (§06, L2052 / L2089 / L2156)
Q_SETTINGS = ("mutation updateClusterSettings($data: ClusterSettingsUpdateInput!, $where: "
              "ClusterSettingsWhereUniqueInput!) {\n  updateClusterSettings(where: $where, data: $data) {\n    id\n"
              "    default_ha\n    default_ha_priority\n    enabled_iscsi\n    default_storage_policy\n"
              "    default_storage_policy_replica_num\n    default_storage_policy_ec_k\n"
              "    default_storage_policy_ec_m\n    default_storage_policy_thin_provision\n"
              "    default_storage_encryption\n    __typename\n  }\n}\n")
Q_RULES = ("query globalAlertRules($where: GlobalAlertRuleWhereInput, $orderBy: GlobalAlertRuleOrderByInput, "
           "$skip: Int, $first: Int) {\n  globalAlertRules(where: $where, orderBy: $orderBy, skip: $skip, first: "
           "$first) {\n    message\n    thresholds {\n      severity\n      __typename\n    }\n    object\n    id\n"
           "    disabled\n    name\n    alert_rules {\n      id\n      customized\n      disabled\n      thresholds {\n"
           "        severity\n        value\n        __typename\n      }\n      __typename\n    }\n    __typename\n"
           "  }\n  globalAlertRulesConnection(where: $where) {\n    aggregate {\n      count\n      __typename\n"
           "    }\n    __typename\n  }\n}\n")
# CX's variant: thresholds.value and alert_rules.cluster too
Q_RULES_CX = Q_RULES.replace("thresholds {\n      severity\n", "thresholds {\n      value\n      severity\n").replace(
    "        __typename\n      }\n      __typename\n    }\n    __typename\n",
    "        __typename\n      }\n      cluster {\n        id\n        name\n      }\n      __typename\n    }\n"
    "    __typename\n")
Q_UPDATE_RULE = ("mutation updateGlobalAlertRule($data: GlobalAlertRuleUpdateInput!, $where: "
                 "GlobalAlertRuleWhereUniqueInput!) {\n  updateGlobalAlertRule(data: $data, where: $where) {\n    id\n"
                 "    disabled\n    thresholds {\n      value\n      severity\n      __typename\n    }\n"
                 "    alert_rules {\n      id\n      disabled\n      customized\n      thresholds {\n        value\n"
                 "        severity\n        __typename\n      }\n      cluster {\n        id\n        name\n"
                 "        __typename\n      }\n      __typename\n    }\n    __typename\n  }\n}\n")
_EXCLUDED = ["elf_", "scvm_", "vsphere_", "witness_", "zone", "metro_", "system."]
GUIDE_WHERE = {"AND": [{"AND": [{"alert_rules_some": {}}, *({"name_not_starts_with": p} for p in _EXCLUDED),
                                {"object_not_in": ["SKS_SERVICE", "SKS_REGISTRY", "SKS_CLUSTER", "SKS_CLUSTER_NODE",
                                                   "SKS_PV", "SKS_PVC"]}]}]}
POLICY = {"default_storage_policy": "REPLICA_2_THIN_PROVISION", "default_storage_policy_replica_num": 2,
          "default_storage_policy_ec_k": None, "default_storage_policy_ec_m": None,
          "default_storage_policy_thin_provision": True}


def T(value, severity):
    return {"value": value, "severity": severity, "quantile": 0, "__typename": "Thresholds"}


plan, ready = ready_fixtures("configplan")


@pytest.fixture
def world(plan, ready, monkeypatch):
    """``world(profiles=None, connect=True)`` -> a logged-in :class:`Tower` on a cloudtower-ready simulator; with
    ``connect`` the cluster is connected (datacenter DC) and CONNECTED."""
    with towers(plan, ready, monkeypatch) as tower:
        def make(profiles=None, connect: bool = True) -> Tower:
            t = tower(profiles)
            org = t.ok(t.rest("get-organizations"))[0]
            t.dc = t.ok(t.rest("create-datacenter", [{"organization_id": org["id"], "name": "DC"}]))[0]["data"]
            if connect:
                connect_cluster(t)
                t.sim.advance(t.tower.connect_seconds + 1)
                t.cluster = cluster(t)
                assert t.cluster["connect_state"] == "CONNECTED" and t.cluster["host_num"] == 3
            return t

        yield make


def connect_cluster(t: Tower) -> dict:
    (item,) = t.ok(t.rest("connect-cluster", [{"datacenter_id": t.dc["id"], "ip": str(t.plan.vip),
                                               "username": "root", "password": t.plan.cluster_admin_password}]))
    return item


def cluster(t: Tower) -> dict:
    (c,) = t.ok(t.rest("get-clusters", {"where": {"ip": str(t.plan.vip)}}))
    return c


def gql(t: Tower, op: str, query: str, variables: dict, **kw):
    return t.gql(op, query, variables, **kw)


def errors(r, code: str, *needles: str, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["errors"] and body.get("data") is None, body
    err = body["errors"][0]
    assert err["extensions"]["code"] == code, err
    for n in needles:
        assert n in err["message"].replace("'", '"'), err["message"]
    return err


def rules(t: Tower, where=None, *, skip=0, first=50, query=Q_RULES) -> dict:
    v = {"skip": skip, "first": first, "where": GUIDE_WHERE if where is None else where, "orderBy": "id_ASC"}
    return t.data(gql(t, "globalAlertRules", query, v))


# --------------------------------------------------------------------------- 06.1 default storage policy
def test_storage_policy_through_graphql_read_back_through_rest(world):
    t = world()
    sid = t.cluster["settings"]["id"]
    (before,) = t.ok(t.rest("get-cluster-settingses", {"where": {"cluster": {"id": t.cluster["id"]}}}))
    assert before["id"] == sid and before["default_storage_policy"] == "REPLICA_2_THICK_PROVISION"
    assert before["cluster"] == {"id": t.cluster["id"], "name": t.cluster["name"]}
    r = gql(t, "updateClusterSettings", Q_SETTINGS, {"data": POLICY, "where": {"id": sid}})
    d = t.data(r)["updateClusterSettings"]
    assert d == {"id": sid, "default_ha": None, "default_ha_priority": "LEVEL_2_MEDIUM", "enabled_iscsi": None,
                 **POLICY, "default_storage_encryption": None, "__typename": "ClusterSettings"}   # the guide's answer
    (after,) = t.ok(t.rest("get-cluster-settingses", {"where": {"cluster": {"id": t.cluster["id"]}}}))
    assert {k: after[k] for k in POLICY} == POLICY
    assert "default_ha_priority" not in after and "default_storage_encryption" not in after   # SDK REST model
    assert t.data(gql(t, "updateClusterSettings", Q_SETTINGS, {"data": POLICY, "where": {"id": sid}}))  # idempotent
    # a policy name alone: the replica number and thin flag follow from it
    d = t.data(gql(t, "updateClusterSettings", Q_SETTINGS,
                   {"data": {"default_storage_policy": "REPLICA_3_THICK_PROVISION"}, "where": {"id": sid}}))
    assert d["updateClusterSettings"]["default_storage_policy_replica_num"] == 3
    assert d["updateClusterSettings"]["default_storage_policy_thin_provision"] is False


def test_storage_policy_bad_input_answers_errors(world):
    t = world()
    sid = t.cluster["settings"]["id"]
    upd = lambda data, where=None, **kw: gql(t, "updateClusterSettings", Q_SETTINGS,   # noqa: E731
                                             {"data": data, "where": where or {"id": sid}}, **kw)
    errors(upd(POLICY | {"default_storage_policy_replica_num": 3}), "BAD_USER_INPUT", "replica_num must be 2")
    errors(upd(POLICY | {"default_storage_policy_thin_provision": False}), "BAD_USER_INPUT", "thin_provision")
    errors(upd({"default_storage_policy": "EC", "default_storage_policy_ec_k": 4,
                "default_storage_policy_ec_m": 2}), "BAD_USER_INPUT", "needs 6 hosts")
    errors(upd(POLICY, {"id": "cstale0000000000000000000"}), "NOT_FOUND", "stale")
    errors(upd(POLICY, token="-"), "UNAUTHENTICATED")
    # an enum value CloudTower does not have: variable coercion (profile gql-variables-400: HTTP 400)
    bad = POLICY | {"default_storage_policy": "EC_4_2_THIN_PROVISION"}     # CX's vocabulary, not the SDK's
    errors(upd(bad), "BAD_USER_INPUT", "EC_4_2_THIN_PROVISION", status=400)
    (s,) = t.ok(t.rest("get-cluster-settingses", {"where": {"id": sid}}))
    assert s["default_storage_policy"] == "REPLICA_2_THICK_PROVISION"         # nothing above changed it
    d = t.data(upd({"default_storage_policy": "EC", "default_storage_policy_ec_k": 2,
                    "default_storage_policy_ec_m": 1}))["updateClusterSettings"]
    assert d["default_storage_policy"] == "EC" and d["default_storage_policy_replica_num"] is None


def test_bad_variables_answer_200_under_gql_variables_200(world):
    t = world(profiles=["gql-variables-200"])
    r = gql(t, "updateClusterSettings", Q_SETTINGS, {"data": POLICY | {"default_storage_policy": "REPLICA_4"},
                                                     "where": {"id": t.cluster["settings"]["id"]}})
    assert r.status_code == 200 and "data" not in r.json(), r.text                  # Apollo Server 4's answer
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_settings_appear_when_the_cluster_is_connected(world):
    t = world(connect=False)
    t.tower.initial_storage_policy = "REPLICA_3_THIN_PROVISION"
    connect_cluster(t)
    c = cluster(t)
    assert c["connect_state"] == "INITIALIZING"
    errors(gql(t, "updateClusterSettings", Q_SETTINGS, {"data": POLICY, "where": {"id": c["settings"]["id"]}}),
           "NOT_FOUND")
    assert t.ok(t.rest("get-cluster-settingses")) == []
    t.sim.advance(t.tower.connect_seconds + 1)
    (s,) = t.ok(t.rest("get-cluster-settingses"))
    assert s["id"] == c["settings"]["id"] and s["default_storage_policy"] == "REPLICA_3_THIN_PROVISION"


# --------------------------------------------------------------------------- 06.2 capacity alert
def test_the_target_rule_lies_past_the_first_page(world):
    t = world()
    page = rules(t)
    assert page["globalAlertRulesConnection"]["aggregate"]["count"] == GUIDE_COUNT == 94        # the guide's count
    assert len(page["globalAlertRules"]) == 50 and TARGET not in {r["name"] for r in page["globalAlertRules"]}
    ids = [r["id"] for r in page["globalAlertRules"]]
    assert ids == sorted(ids) and all(len(i) == 25 and i.startswith("c") for i in ids)
    rest = rules(t, skip=50)["globalAlertRules"]
    assert len(rest) == 44 and [r["name"] for r in rest].index(TARGET) + 51 == TARGET_POSITION == 73
    # the fix: filter by name (the guide's where plus the name)
    by_name = {"AND": [*GUIDE_WHERE["AND"], {"name": TARGET}]}
    d = rules(t, by_name, query=Q_RULES_CX)
    assert d["globalAlertRulesConnection"]["aggregate"]["count"] == 1
    (rule,) = d["globalAlertRules"]
    assert rule["object"] == "CLUSTER" and rule["message"] == "集群存储空间使用率超过 { .threshold }。 "
    assert rule["thresholds"] == [{"value": 90, "severity": "CRITICAL", "__typename": "Thresholds"},
                                  {"value": 80, "severity": "NOTICE", "__typename": "Thresholds"}]
    (per,) = rule["alert_rules"]
    assert per["customized"] is False and per["cluster"] == {"id": t.cluster["id"], "name": t.cluster["name"]}
    assert [x["value"] for x in per["thresholds"]] == [90, 80]
    everything = rules(t, {}, first=500)
    assert everything["globalAlertRulesConnection"]["aggregate"]["count"] == len(CATALOG) > 94


def test_per_cluster_rules_appear_only_on_connected(world):
    t = world(connect=False)
    assert rules(t)["globalAlertRulesConnection"]["aggregate"]["count"] == 0          # alert_rules_some: {}
    assert all(r["alert_rules"] == [] for r in rules(t, {}, first=500)["globalAlertRules"])
    t.tower.alert_rules_lag = 30.0                                       # the "empty until sync" fault
    connect_cluster(t)
    assert rules(t)["globalAlertRulesConnection"]["aggregate"]["count"] == 0          # INITIALIZING
    t.sim.advance(t.tower.connect_seconds + 1)
    assert cluster(t)["connect_state"] == "CONNECTED"
    assert rules(t)["globalAlertRulesConnection"]["aggregate"]["count"] == 0          # CONNECTED, not synced yet
    assert t.ok(t.rest("get-alert-rules")) == []
    t.sim.advance(30)
    assert rules(t)["globalAlertRulesConnection"]["aggregate"]["count"] == 94
    per = t.ok(t.rest("get-alert-rules", {"where": {"global_alert_rule": {"name": TARGET}}}))
    assert len(per) == 1 and per[0]["cluster"]["name"] == cluster(t)["name"]
    assert len(t.ok(t.rest("get-alert-rules"))) == len(CATALOG)


def _target(t: Tower) -> dict:
    (rule,) = rules(t, {"name": TARGET}, query=Q_RULES_CX)["globalAlertRules"]
    return rule


def test_update_the_per_cluster_rule_with_the_guides_payload(world):
    t = world()
    rule = _target(t)
    (per,) = rule["alert_rules"]
    notice = capacity_notice(t.cluster["host_num"])
    assert notice == 61
    v = {"where": {"id": rule["id"]}, "data": {
        "thresholds": [T(80, "NOTICE"), T(90, "CRITICAL")], "disabled": False,
        "alert_rules": {"update": [{"where": {"id": per["id"]}, "data": {
            "customized": True, "disabled": False, "thresholds": [T(90, "CRITICAL"), T(notice, "NOTICE")]}}]}}}
    r = gql(t, "updateGlobalAlertRule", Q_UPDATE_RULE, v)
    assert '"value":61' in r.text.replace(" ", "") and "61.0" not in r.text          # integral numbers as JS writes
    d = t.data(r)["updateGlobalAlertRule"]
    assert [(x["severity"], x["value"]) for x in d["thresholds"]] == [("CRITICAL", 90), ("NOTICE", 80)]
    (a,) = d["alert_rules"]
    assert a["customized"] is True and a["cluster"]["id"] == t.cluster["id"] and a["cluster"]["__typename"] == "Cluster"
    assert [(x["severity"], x["value"]) for x in a["thresholds"]] == [("CRITICAL", 90), ("NOTICE", 61)]
    (back,) = _target(t)["alert_rules"]                                               # read back
    assert back["customized"] is True and [x["value"] for x in back["thresholds"]] == [90, 61]
    (rest,) = t.ok(t.rest("get-alert-rules", {"where": {"id": per["id"]}}))
    assert rest["customized"] is True and rest["global_alert_rule"]["name"] == TARGET
    # the global rule changes: a customized per-cluster rule keeps its own thresholds
    t.data(gql(t, "updateGlobalAlertRule", Q_UPDATE_RULE, {"where": {"id": rule["id"]}, "data": {
        "thresholds": [T(85, "NOTICE"), T(95, "CRITICAL")]}}))
    assert [x["value"] for x in _target(t)["alert_rules"][0]["thresholds"]] == [90, 61]


def test_update_global_alert_rule_refuses_bad_input_all_or_nothing(world):
    t = world()
    rule = _target(t)
    (per,) = rule["alert_rules"]
    upd = lambda data, rid=rule["id"]: gql(t, "updateGlobalAlertRule", Q_UPDATE_RULE,   # noqa: E731
                                           {"where": {"id": rid}, "data": data})
    per_upd = lambda ths, aid=per["id"]: {"disabled": True, "alert_rules": {"update": [   # noqa: E731
        {"where": {"id": aid}, "data": {"customized": True, "thresholds": ths}}]}}
    errors(upd(per_upd([T(90, "NOTICE"), T(61, "CRITICAL")])), "BAD_USER_INPUT", "NOTICE (90) must be below CRITICAL")
    errors(upd(per_upd([T(90, "CRITICAL"), T(61, "WARNING")])), "BAD_USER_INPUT", "severity")
    errors(upd(per_upd([T(190, "CRITICAL")])), "BAD_USER_INPUT", "percentage")
    errors(upd(per_upd([{"value": 61, "severity": "NOTICE", "level": 1}])), "BAD_USER_INPUT", "level")
    errors(upd(per_upd([T(90, "CRITICAL")], aid="cnope00000000000000000000")), "NOT_FOUND", "no alert rule")
    errors(upd({"disabled": False}, rid="cnope00000000000000000000"), "NOT_FOUND")
    after = _target(t)
    assert after["disabled"] is False and after["alert_rules"][0]["customized"] is False    # nothing applied


def test_rest_alert_calls(world):
    t = world()
    (g,) = t.ok(t.rest("get-global-alert-rules", {"where": {"name": TARGET}}))
    assert g["alert_rules"] == [{"id": g["alert_rules"][0]["id"]}] and g["unit"] == "PERCENT"   # SDK: NestedAlertRule
    (out,) = t.ok(t.rest("update-customize-alert-rule", {"where": {"name": TARGET}, "data": {
        "clusters": {"id": t.cluster["id"]}, "thresholds": [{"value": 90, "severity": "CRITICAL"},
                                                            {"value": 61, "severity": "NOTICE"}]}}))
    assert out["task_id"] is None and out["data"]["id"] == g["id"]
    (per,) = t.ok(t.rest("get-alert-rules", {"where": {"global_alert_rule": {"name": TARGET}}}))
    assert per["customized"] is True and [x["value"] for x in per["thresholds"]] == [90, 61]
    # the global rule: the non-customized per-cluster rules follow it
    t.ok(t.rest("update-global-alert-rule", {"where": {"name": "cluster_cpu_usage_percent"}, "data": {
        "thresholds": [{"value": 70, "severity": "NOTICE"}, {"value": 85, "severity": "CRITICAL"}]}}))
    (cpu,) = t.ok(t.rest("get-alert-rules", {"where": {"global_alert_rule": {"name": "cluster_cpu_usage_percent"}}}))
    assert cpu["customized"] is False and [x["value"] for x in cpu["thresholds"]] == [85, 70]
    rest_error(t.rest("update-customize-alert-rule", {"where": {"name": TARGET}, "data": {"thresholds": []}}), 400,
               "clusters")


# --------------------------------------------------------------------------- faults
def test_graphql_errors_fault_on_one_operation_and_expired_token(world):
    t = world()
    sid = t.cluster["settings"]["id"]
    rule = t.sim.faults.add({"method": "POST", "path": "/api", "operation_name": "updateClusterSettings",
                             "status": 200, "envelope_error": "INTERNAL_SERVER_ERROR", "msg": "zbs busy", "times": 1})
    assert rules(t)["globalAlertRulesConnection"]["aggregate"]["count"] == 94      # another operation: untouched
    r = gql(t, "updateClusterSettings", Q_SETTINGS, {"data": POLICY, "where": {"id": sid}})
    assert r.status_code == 200 and r.json()["errors"][0]["message"] == "zbs busy", r.text
    assert r.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert rule.hits == 1 and rule.matches == 1
    assert t.data(gql(t, "updateClusterSettings", Q_SETTINGS, {"data": POLICY, "where": {"id": sid}}))
    with pytest.raises(ValueError, match="operation_name"):
        t.sim.faults.add({"operation_name": 5, "status": 500})
    # the token expires mid-stage
    assert t.tower.revoke_tokens() >= 1
    errors(gql(t, "globalAlertRules", Q_RULES, {"where": GUIDE_WHERE}), "UNAUTHENTICATED")
    rest_error(t.rest("get-cluster-settingses"), 401)
    assert t.login(TOWER_PW).status_code == 200
    assert rules(t)["globalAlertRulesConnection"]["aggregate"]["count"] == 94


# --------------------------------------------------------------------------- views and graphs
def _dashboards(t: Tower) -> dict[str, dict]:
    cid = t.cluster["id"]
    hosts = [h["id"] for h in t.ok(t.rest("get-hosts", {"where": {"cluster": {"id": cid}}}))]
    views = {}
    for name, resource, metric_type, count, metrics in DASHBOARDS:
        (item,) = t.ok(t.rest("create-view", [{"name": name, "cluster_id": cid, "time_unit": "HOUR",
                                               "time_span": 2}]))
        v = views[name] = item["data"]
        connect = {"cluster": [cid], "host": hosts}.get(resource, [])
        extra = {"metric_type": metric_type, "metric_count": str(count)} if count else {}   # the script's "5"
        out = t.ok(t.rest("create-graph", [{"type": "AREA", "resource_type": resource, "view_id": v["id"],
                                            "title": f"图 {m}", "cluster_id": cid, "connect_id": connect,
                                            "metric_name": m, **extra} for m in metrics]))
        assert len(out) == len(metrics) and all(o["task_id"] is None for o in out)
    return views


def test_views_and_graphs(world):
    t = world()
    cid = t.cluster["id"]
    views = _dashboards(t)
    for name, _r, _mt, _c, metrics in DASHBOARDS:
        (v,) = t.ok(t.rest("get-views", {"where": {"cluster": {"id": cid}, "name": name}}))
        assert v["time_unit"] == "HOUR" and v["time_span"] == 2 and len(v["graphs"]) == len(metrics)
        graphs = t.ok(t.rest("get-graphs", {"where": {"view": {"id": v["id"]}}}))
        assert sorted(g["metric_name"] for g in graphs) == sorted(metrics)
    assert [len(m) for *_x, m in DASHBOARDS] == [3, 7, 5]
    (g,) = t.ok(t.rest("get-graphs", {"where": {"view": {"id": views["VM"]["id"]},
                                               "metric_name": "elf_vm_memory_usage_percent"}}))
    assert g["metric_type"] == "TOPK" and g["metric_count"] == 5 and g["type"] == "AREA"
    (h,) = t.ok(t.rest("get-graphs", {"where": {"metric_name": "host_memory_usage_percent"}}))
    assert len(h["hosts"]) == 3 and h["view"] == {"id": views["Host"]["id"], "name": "Host"}
    # a re-run that does not check first duplicates (profile ct-names-free, the default)
    t.ok(t.rest("create-view", [{"name": "Cluster", "cluster_id": cid, "time_unit": "HOUR", "time_span": 2}]))
    assert len(t.ok(t.rest("get-views", {"where": {"name": "Cluster"}}))) == 2
    # refusals
    base = {"type": "AREA", "resource_type": "host", "view_id": views["Host"]["id"], "title": "x", "cluster_id": cid,
            "connect_id": [cid], "metric_name": "m"}
    rest_error(t.rest("create-graph", [base]), 400, "not host ids")
    rest_error(t.rest("create-graph", [base | {"view_id": "cnope"}]), 404, "no view")
    rest_error(t.rest("create-graph", [base | {"connect_id": [], "metric_type": "TOPK"}]), 400, "metric_count")
    rest_error(t.rest("create-graph", [base | {"type": "LINE"}]), 400, "AREA")
    rest_error(t.rest("create-view", [{"name": "x", "cluster_id": cid, "time_unit": "WEEK", "time_span": 2}]), 400)
    rest_error(t.rest("create-view", [{"name": "x", "cluster_id": "cnope", "time_unit": "HOUR", "time_span": 2}]), 404)
    rest_error(t.rest("create-view", {"name": "x"}), 400, "JSON array")
    # update and delete (a view's graphs go with it)
    (u,) = t.ok(t.rest("update-view", {"where": {"id": views["VM"]["id"]}, "data": {"time_span": 6}}))
    assert u["data"]["time_span"] == 6
    t.ok(t.rest("delete-view", {"where": {"id": views["VM"]["id"]}}))
    assert t.ok(t.rest("get-graphs", {"where": {"view": {"id": views["VM"]["id"]}}})) == []


def test_unique_view_names_under_ct_names_unique(world):
    t = world(profiles=["ct-names-unique"])
    item = {"name": "Cluster", "cluster_id": t.cluster["id"], "time_unit": "HOUR", "time_span": 2}
    t.ok(t.rest("create-view", [item]))
    rest_error(t.rest("create-view", [item]), 400, "already exists")
    assert t.tower.ensure_dashboards(t.cluster["id"]) == {"Cluster": 3, "Host": 7, "VM": 5}    # finds, not creates
    assert t.tower.ensure_dashboards(t.cluster["id"]) == {"Cluster": 3, "Host": 7, "VM": 5}
    assert len(t.ok(t.rest("get-views"))) == 3 and len(t.ok(t.rest("get-graphs"))) == 15


# --------------------------------------------------------------------------- rack topology
def _topo(t: Tower) -> dict:
    cid = t.cluster["id"]
    hosts = t.ok(t.rest("get-hosts", {"where": {"cluster": {"id": cid}}}))
    return {"cluster": t.ok(t.rest("get-cluster-topoes", {"where": {"cluster": {"id": cid}}})),
            "zones": t.ok(t.rest("get-zone-topoes", {"where": {"cluster": {"id": cid}}})),
            "racks": t.ok(t.rest("get-rack-topoes", {"where": {"cluster": {"id": cid}}})),
            "bricks": t.ok(t.rest("get-brick-topoes", {"where": {"cluster": {"id": cid}}})),
            "nodes": {h["name"]: t.ok(t.rest("get-node-topoes", {"where": {"host": {"id": h["id"]}}}))[0]
                      for h in hosts}}


def test_topology_default_placement(world):
    t = world()
    topo = _topo(t)
    (ct,) = topo["cluster"]
    (zone,) = topo["zones"]
    (rack,) = topo["racks"]
    assert zone["cluster_topo"] == {"id": ct["id"], "name": ct["name"]} and rack["name"] == "defrack"
    assert rack["brick_topoes"] == [] and topo["bricks"] == [] and len(topo["nodes"]) == 3
    assert all(n["brick_topo"] is None and n["cluster_topo"]["id"] == ct["id"] for n in topo["nodes"].values())
    bricked = _topo(world(profiles=["topology-nodes-in-bricks"]))
    assert [b["position"] for b in bricked["bricks"]] == [1, 2, 3]
    assert all(n["brick_topo"]["name"] == name for name, n in bricked["nodes"].items())


def test_topology_create_move_and_refuse(world):
    t = world()
    cid, topo = t.cluster["id"], _topo(t)
    zone = topo["zones"][0]["id"]
    names = sorted(topo["nodes"])
    (r,) = t.ok(t.rest("create-rack-topo", [{"cluster_id": cid, "zone_topo_id": zone, "name": "A01", "height": 42}]))
    rack = r["data"]
    t.sim.advance(10)
    assert t.ok(t.rest("get-tasks", {"where": {"id": r["task_id"]}}))[0]["status"] == "SUCCESSED"
    (b,) = t.ok(t.rest("create-brick-topo", [{"cluster_id": cid, "rack_topo_id": rack["id"], "name": names[0],
                                              "position": 1, "height": 2, "capacity": {"row": 1, "column": 1},
                                              "node_topoes": {"name": names[0]}}]))
    assert b["data"]["node_topoes"][0]["name"] == names[0] and b["data"]["rack_topo"]["name"] == "A01"
    brick = lambda **kw: [{"cluster_id": cid, "rack_topo_id": rack["id"], "name": "x", "height": 2} | kw]  # noqa: E731
    rest_error(t.rest("create-brick-topo", brick(position=2)), 400, "overlaps")
    rest_error(t.rest("create-brick-topo", brick(position=42)), 400, "does not fit")
    rest_error(t.rest("create-brick-topo", brick(position=0)), 400, ">= 1")
    (chassis,) = t.ok(t.rest("create-brick-topo", brick(position=3, name="A01-U3", capacity={"row": 1, "column": 2})))
    node = topo["nodes"]
    moves = [{"where": {"id": node[n]["id"]}, "data": {"brick_topo_id": chassis["data"]["id"],
                                                       "position": {"row": 1, "column": i + 1}}}
             for i, n in enumerate(names[1:])]
    out = t.ok(t.rest("move-node-topo", moves))
    assert [o["data"]["position"] for o in out] == [{"row": 1, "column": 1}, {"row": 1, "column": 2}]
    rest_error(t.rest("move-node-topo", [moves[0] | {"data": {"brick_topo_id": chassis["data"]["id"],
                                                              "position": {"row": 1, "column": 2}}}]), 400, "already")
    rest_error(t.rest("move-node-topo", moves[0]), 400, "JSON array")          # the SDK sends a list
    # a brick moves to another rack (the nodes come along); the rack height must keep its bricks
    (r2,) = t.ok(t.rest("create-rack-topo", [{"cluster_id": cid, "zone_topo_id": zone, "name": "A02", "height": 42}]))
    t.ok(t.rest("move-brick-topo", {"where": {"id": chassis["data"]["id"]}, "data": {"position": 7,
                                                                                     "rack_topo_id": r2["data"]["id"]}}))
    now = _topo(t)
    assert now["nodes"][names[2]]["brick_topo"]["id"] == chassis["data"]["id"]
    assert {b["name"]: (b["rack_topo"]["name"], b["position"]) for b in now["bricks"]} == {
        names[0]: ("A01", 1), "A01-U3": ("A02", 7)}
    rest_error(t.rest("update-rack-topo", {"where": {"id": r2["data"]["id"]}, "data": {"height": 5}}), 400, "fit")
    rest_error(t.rest("delete-rack-topo", {"where": {"id": rack["id"]}}), 400, "holds bricks")
    rest_error(t.rest("delete-rack-topo", {"where": {"name": "defrack"}}), 400, "default rack")
    t.ok(t.rest("delete-brick-topo", {"where": {"id": b["data"]["id"]}}))
    assert _topo(t)["nodes"][names[0]]["brick_topo"] is None
    t.ok(t.rest("delete-rack-topo", {"where": {"id": rack["id"]}}))


def test_apply_topology_is_idempotent(world):
    t = world(profiles=["topology-nodes-in-bricks"])
    plan_rows = [(h.hostname, h.rack, h.rack_u) for h in t.plan.hosts]
    assert [r[1:] for r in plan_rows] == [("A01", 1), ("A01", 3), ("A01", 5)]
    for _ in range(2):
        t.tower.apply_topology(t.cluster["id"], plan_rows)
        topo = _topo(t)
        assert [r["name"] for r in topo["racks"]] == ["defrack", "A01"]
        assert len(topo["bricks"]) == 3                                   # the nodes' own bricks, moved
        placed = {n: (topo["nodes"][n]["brick_topo"]["id"]) for n in topo["nodes"]}
        pos = {b["id"]: (b["rack_topo"]["name"], b["position"], b["height"]) for b in topo["bricks"]}
        assert {n: pos[b] for n, b in placed.items()} == {h: (r, u, 2) for h, r, u in plan_rows}


# --------------------------------------------------------------------------- snapshot, preset
def test_snapshot_keeps_the_configuration(world, plan):
    t = world()
    t.tower.set_default_storage_policy(t.cluster["id"], "REPLICA_2_THIN_PROVISION")
    t.tower.set_cluster_alert(t.cluster["id"], TARGET, [{"severity": "CRITICAL", "value": 90},
                                                        {"severity": "NOTICE", "value": 61}])
    t.tower.ensure_dashboards(t.cluster["id"])
    t.tower.apply_topology(t.cluster["id"], [(h.hostname, h.rack, h.rack_u) for h in plan.hosts])
    before = {k: t.ok(t.rest(k)) for k in ("get-cluster-settingses", "get-alert-rules", "get-views", "get-graphs",
                                           "get-rack-topoes", "get-brick-topoes", "get-node-topoes")}
    snap = json.loads(json.dumps(t.sim.snapshot()))
    with Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, profiles=[], snapshot=snap) as again:
        again.start()
        t2 = Tower(again, t.ip)
        try:
            assert t2.login().status_code == 200
            assert {k: t2.ok(t2.rest(k)) for k in before} == before
        finally:
            t2.http.close()


def test_cloudtower_configured_preset(plan, ready):
    from mocks.presets import PRESETS

    if "cloudtower-configured" not in PRESETS:
        pytest.skip("the cloudtower-configured preset is not wired yet")
    with Simulator.from_plan(plan, load_env_faults=False, profiles=[],
                             snapshot=json.loads(json.dumps(ready))) as sim:
        first = apply_preset(sim, "cloudtower-configured")
        cfg = first["cloudtower_config"]
        assert cfg["default_storage_policy"] == "REPLICA_2_THIN_PROVISION"
        assert cfg["capacity_alert"] | {} == {"rule": TARGET, "hosts": 3, "NOTICE": 61, "CRITICAL": 90}
        assert cfg["dashboards"] == {"Cluster": 3, "Host": 7, "VM": 5}
        assert cfg["racks"] == [{"rack": "A01", "u": u, "host": h.hostname} for h, u in zip(plan.hosts, (1, 3, 5))]
        tower = sim.state.cloudtower.tower(str(plan.cloudtower.ip))
        counts = lambda: {k: len(getattr(tower, k)) for k in ("views", "graphs", "rack_topoes",   # noqa: E731
                                                                "brick_topoes", "node_topoes", "clusters")}
        once = counts()
        second = apply_preset(sim, "cloudtower-configured")                 # twice: nothing duplicated
        assert counts() == once == {"views": 3, "graphs": 15, "rack_topoes": 2, "brick_topoes": 3, "node_topoes": 3,
                                    "clusters": 1}
        assert second["cloudtower_config"] == cfg
        (a,) = [a for a in tower.list_alert_rules() if a["global_alert_rule"]["name"] == TARGET]
        assert a["customized"] and [x["value"] for x in a["thresholds"]] == [90, 61]


def test_rest_answers_have_the_sdks_shapes(world):
    """Every stage-06 REST answer against the SDK's models (``check_shape`` of test_sim_cloudtower_sdk)."""
    pytest.importorskip("cloudtower", reason="cloudtower-sdk is a test dependency: pip install -e '.[test]'")
    from .test_sim_cloudtower_sdk import check_shape

    t = world(profiles=["topology-nodes-in-bricks"])
    cid = t.cluster["id"]
    views = _dashboards(t)
    zone = t.ok(t.rest("get-zone-topoes"))[0]["id"]
    node = t.ok(t.rest("get-node-topoes"))[0]
    calls = [
        ("get-cluster-settingses", {}, "list[ClusterSettings]"),
        ("get-global-alert-rules", {"where": {"name": TARGET}}, "list[GlobalAlertRule]"),
        ("get-alert-rules", {"first": 5}, "list[AlertRule]"),
        ("update-global-alert-rule", {"where": {"name": TARGET}, "data": {"disabled": False}},
         "list[WithTaskGlobalAlertRule]"),
        ("update-customize-alert-rule", {"where": {"name": TARGET}, "data": {"clusters": {"id": cid}, "thresholds": [
            {"value": 90, "severity": "CRITICAL"}, {"value": 61, "severity": "NOTICE"}]}},
         "list[WithTaskGlobalAlertRule]"),
        ("get-views", {}, "list[View]"), ("get-graphs", {}, "list[Graph]"),
        ("update-view", {"where": {"id": views["Host"]["id"]}, "data": {"name": "Hosts"}}, "list[WithTaskView]"),
        ("update-graph", {"where": {"metric_name": "cluster_cpu_usage_percent"}, "data": {"title": "CPU"}},
         "list[WithTaskGraph]"),
        ("create-view", [{"name": "x", "cluster_id": cid, "time_unit": "DAY", "time_span": 1}], "list[WithTaskView]"),
        ("delete-graph", {"where": {"metric_name": "cluster_memory_usage_percent"}}, "list[WithTaskDeleteGraph]"),
        ("delete-view", {"where": {"name": "x"}}, "list[WithTaskDeleteView]"),
        ("get-cluster-topoes", {}, "list[ClusterTopo]"), ("get-zone-topoes", {}, "list[ZoneTopo]"),
        ("create-rack-topo", [{"cluster_id": cid, "zone_topo_id": zone, "name": "A01", "height": 42}],
         "list[WithTaskRackTopo]"),
        ("update-rack-topo", {"where": {"name": "A01"}, "data": {"height": 48}}, "list[WithTaskRackTopo]"),
        ("create-brick-topo", [{"cluster_id": cid, "name": "b", "position": 9, "height": 2,
                                "capacity": {"row": 1, "column": 2},
                                "tag_position_in_brick": [{"row": 1, "column": 1, "tag": "N1"}]}],
         "list[WithTaskBrickTopo]"),
        ("move-brick-topo", {"where": {"name": "b"}, "data": {"position": 11}}, "list[WithTaskBrickTopo]"),
        ("update-brick-topo", {"where": {"name": "b"}, "data": {"name": "b2"}}, "list[WithTaskBrickTopo]"),
        ("move-node-topo", [{"where": {"id": node["id"]}, "data": {"cluster_topo_id": node["cluster_topo"]["id"]}}],
         "list[WithTaskNodeTopo]"),
        ("get-rack-topoes", {}, "list[RackTopo]"), ("get-brick-topoes", {}, "list[BrickTopo]"),
        ("get-node-topoes", {}, "list[NodeTopo]"),
        ("delete-brick-topo", {"where": {"name": "b2"}}, "list[WithTaskDeleteBrickTopo]"),
        ("delete-rack-topo", {"where": {"name": "A01"}}, "list[WithTaskDeleteRackTopo]"),
    ]
    problems = []
    for name, body, typ in calls:
        answer = t.ok(t.rest(name, body))
        assert answer, name
        problems += [f"{name}: {p}" for p in check_shape(answer, typ)]
    assert not problems, "\n".join(problems)


def test_preset_on_16_hosts_without_rack_data_keeps_the_default_placement(tmp_path):
    rows = range(3, 19)
    p = plan_path(tmp_path, hosts=16, overrides={("主机规划", f"{c}{r}"): None for r in rows for c in "PQ"})
    if p is None:
        pytest.skip("no plan")
    big = load_plan(p)
    assert len(big.hosts) == 16 and not any(h.rack or h.rack_u for h in big.hosts)
    with Simulator.from_plan(big, load_env_faults=False, profiles=[]) as sim:
        cfg = apply_preset(sim, "cloudtower-configured")["cloudtower_config"]
        assert cfg["racks"] == "default placement (the plan has no rack data)"
        assert cfg["capacity_alert"]["hosts"] == 16 and cfg["capacity_alert"]["NOTICE"] == 88
        tower = sim.state.cloudtower.tower(str(big.cloudtower.ip))
        nodes = tower.list_topo("node_topoes")
        assert len(nodes) == 16 and all(n["brick_topo"] is None for n in nodes)
        assert [r["name"] for r in tower.list_topo("rack_topoes")] == ["defrack"]


def test_hosts_sharing_a_rack_and_u_make_one_chassis(world):
    t = world()
    a, b, c = (h.hostname for h in t.plan.hosts)
    out = t.tower.apply_topology(t.cluster["id"], [(a, "B07", 10), (b, "B07", 10), (c, "B07", 12)])
    assert out == [{"rack": "B07", "u": 10, "host": a}, {"rack": "B07", "u": 10, "host": b},
                   {"rack": "B07", "u": 12, "host": c}]
    bricks = {x["position"]: x for x in t.ok(t.rest("get-brick-topoes", {"where": {"rack_topo": {"name": "B07"}}}))}
    assert sorted(bricks) == [10, 12] and bricks[10]["capacity"] == {"row": 1, "column": 2}
    assert sorted(n["name"] for n in bricks[10]["node_topoes"]) == sorted([a, b])
    slots = {n["name"]: n["position"] for n in t.ok(t.rest("get-node-topoes"))}
    assert slots[a] == {"row": 1, "column": 1} and slots[b] == {"row": 1, "column": 2}
    with pytest.raises(Exception, match="overlaps"):                          # U11 is the chassis' upper half
        t.tower.apply_topology(t.cluster["id"], [(c, "B07", 11)])
