"""Stage 06 (configure the cluster through CloudTower) against the simulator: each step, and every fault the issue
names (a GraphQL ``errors[]`` answer with HTTP 200, ``host_num`` 0 right after the connect, an expired token
mid-stage, a rerun that must duplicate nothing), plus the pagination trap and a plan without rack data.

The steps are called one by one (in process) against a simulator fast-forwarded to ``cluster-attached`` (stages
01-05); stage 05's steps run first through the same harness (they find everything attached and publish the cluster
as 05 would). The assertions read CloudTower's own state in the simulator."""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import floor

import pytest

from clients.alerts import notice_threshold
from clients.base import ApiError
from clients.dashboards import VIEWS
from fixtures import report
from fixtures.outputs import (CloudTowerCapacityAlert, CloudTowerCluster, CloudTowerDashboards, CloudTowerRacks,
                              CloudTowerStoragePolicy)
from fixtures.session import NOT_APPLICABLE
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .ct_harness import Harness, harnesses, simulators
from .suite_runs import load_steps

S06 = load_steps("test_06_cloudtower_config", "_s06_")
RULE = "zbs_cluster_data_space_use_rate"
GUIDE_WHERE = {"AND": [{"AND": [{"alert_rules_some": {}}, {"name_not_starts_with": "elf_"},
                                {"name_not_starts_with": "scvm_"}, {"name_not_starts_with": "vsphere_"},
                                {"name_not_starts_with": "witness_"}, {"name_not_starts_with": "zone"},
                                {"name_not_starts_with": "metro_"}, {"name_not_starts_with": "system."},
                                {"object_not_in": ["SKS_SERVICE", "SKS_REGISTRY", "SKS_CLUSTER", "SKS_CLUSTER_NODE",
                                                   "SKS_PV", "SKS_PVC"]}]}]}
NO_RACKS = {(L.SHEET_HOSTS, f"{c}{r}"): None for r in range(3, 19) for c in "PQ"}


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """Plans by name, written once: ``three`` (3 hosts, A01 U1/3/5), ``chassis`` (hosts 2 and 3 share A02 U10),
    ``no-racks`` (16 hosts, no rack data)."""
    folder = tmp_path_factory.mktemp("s06")
    made: dict[str, object] = {}

    def get(name: str):
        if name not in made:
            kw = {"three": {"hosts": 3},
                  "chassis": {"hosts": 3, "overrides": {(L.SHEET_HOSTS, "P4"): "A02", (L.SHEET_HOSTS, "Q4"): 10,
                                                        (L.SHEET_HOSTS, "P5"): "A02", (L.SHEET_HOSTS, "Q5"): 10}},
                  "no-racks": {"hosts": 16, "overrides": NO_RACKS}}[name]
            made[name] = load(write_example(folder / f"{name}.xlsx", business=1, **kw))[0]
        return made[name]

    return get


@pytest.fixture
def world(monkeypatch):
    """``world(plan, *profiles, preset=...)``: a simulator fast-forwarded by a preset, serving on loopback."""
    with simulators(monkeypatch) as build:
        yield lambda plan, *profiles, preset="cluster-attached", **kw: build(plan, *profiles, preset=preset, **kw)


class Stage06(Harness):
    """The harness with stage 06's steps: stage 05's run first (:meth:`Harness.attach`)."""

    def call(self, fn, sid: str):
        return fn(self.plan, self.ct, self.run, self.state, self.step(sid), self.pacing)

    def policy(self):
        return self.call(S06.test_storage_policy, "06.storage_policy")

    def alert(self):
        return self.call(S06.test_capacity_alert, "06.capacity_alert")

    def dashboards(self):
        return self.call(S06.test_dashboards, "06.dashboards")

    def racks(self):
        return self.call(S06.test_racks, "06.racks")

    def all(self):
        self.policy()
        self.alert()
        self.dashboards()
        self.racks()

    @property
    def cluster_id(self) -> str:
        return self.state.take(CloudTowerCluster).id


@pytest.fixture
def harness(tmp_path):
    with harnesses(tmp_path, Stage06) as make:
        yield make


def gql_count(sim, operation: str) -> int:
    return sum(1 for r in sim.requests if r.path == "/api" and isinstance(r.body, dict)
               and r.body.get("operationName") == operation)


def topology(tower, cluster_id: str) -> dict:
    """What the world holds: racks and bricks of the cluster, and each host's (rack, U) through its node."""
    racks = {r.id: r for r in tower.rack_topoes.values() if r.cluster_id == cluster_id}
    bricks = {b.id: b for b in tower.brick_topoes.values() if b.cluster_id == cluster_id}
    where = {}
    for n in tower.node_topoes.values():
        b = bricks.get(n.brick_id)
        where[n.name] = (racks[b.rack_id].name, b.position, (n.row, n.column)) if b else None
    return {"racks": sorted(r.name for r in racks.values()), "bricks": sorted((b.name, racks[b.rack_id].name,
                                                                               b.position, b.height)
                                                                              for b in bricks.values()),
            "hosts": where}


def counts(sim, tower) -> dict:
    return {"views": len(tower.views), "graphs": len(tower.graphs), "racks": len(tower.rack_topoes),
            "bricks": len(tower.brick_topoes), "writes": sum(1 for r in sim.requests if r.method == "POST" and (
                r.path.startswith(("/v2/api/create-", "/v2/api/update-", "/v2/api/move-"))
                or (r.path == "/api" and isinstance(r.body, dict)
                    and str(r.body.get("operationName", "")).startswith("update"))))}


# =========================================================================== the formula
def test_notice_threshold_is_exact_integer_arithmetic():
    assert [notice_threshold(n) for n in (3, 4, 5, 6, 8, 10, 16)] == [61, 70, 75, 78, 82, 85, 88]
    assert notice_threshold(2) == 45
    for n in range(2, 200):      # ⌊((n-1)/n - 5/100)·100⌋ with exact fractions, where floats may round wrong
        assert notice_threshold(n) == floor((Fraction(n - 1, n) - Fraction(5, 100)) * 100), n
    with pytest.raises(ValueError):
        notice_threshold(1)


# =========================================================================== the normal path, and a rerun
@pytest.mark.parametrize("profiles", [(), ("topology-nodes-in-bricks", "ct-names-unique", "gql-variables-200")],
                         ids=["defaults", "bricks-unique-names"])
def test_stage06_configures_everything_and_a_rerun_duplicates_nothing(world, plans, harness, profiles):
    plan = plans("three")
    sim = world(plan, *profiles)
    first = harness(sim, plan, "first").attach()
    first.all()
    tower, cid = first.tower, first.cluster_id

    pol = first.state.take(CloudTowerStoragePolicy)
    assert (pol.policy, pol.replica_num, pol.thin_provision, pol.how) == ("REPLICA_2_THIN_PROVISION", 2, True, "set")
    s = tower.cluster_settings[pol.settings_id]
    assert (s.default_storage_policy, s.default_storage_policy_replica_num,
            s.default_storage_policy_thin_provision) == ("REPLICA_2_THIN_PROVISION", 2, True)

    alert = first.state.take(CloudTowerCapacityAlert)
    assert (alert.host_num, alert.notice, alert.critical, alert.how) == (3, 61, 90, "set")
    g = tower.alert_rule_by_name(RULE)
    mine = next(a for a in tower.alert_rules.values() if a.global_id == g.id and a.cluster_id == cid)
    assert mine.customized and not mine.disabled
    assert {t["severity"]: t["value"] for t in mine.thresholds} == {"CRITICAL": 90, "NOTICE": 61}
    assert {t["severity"]: t["value"] for t in g.thresholds} == {"CRITICAL": 90, "NOTICE": 80}, "global rule kept"

    views = {v.name: v for v in first.state.take(CloudTowerDashboards).views}
    assert {n: (v.graphs, v.created, v.view_created) for n, v in views.items()} == {
        "Cluster": (3, 3, True), "Host": (7, 7, True), "VM": (5, 5, True)}
    by_view = {v.name: sorted(gr.metric_name for gr in tower.graphs.values() if gr.view_id == v.id)
               for v in tower.views.values()}
    assert by_view == {name: sorted(m for m, _ in graphs) for name, _, graphs in VIEWS}
    host_graph = next(gr for gr in tower.graphs.values() if gr.metric_name == "host_cpu_overall_usage_percent")
    assert sorted(host_graph.connect_id) == sorted(h["id"] for h in first.ct.hosts(cid))
    vm_graph = next(gr for gr in tower.graphs.values() if gr.metric_name == "elf_vm_memory_usage_percent")
    assert (vm_graph.metric_type, vm_graph.metric_count, vm_graph.connect_id) == ("TOPK", 5, [])

    topo = topology(tower, cid)
    assert [topo["hosts"][h.hostname][:2] for h in plan.hosts] == [("A01", 1), ("A01", 3), ("A01", 5)]
    assert "A01" in topo["racks"] and topo["racks"].count("A01") == 1
    racks = first.state.take(CloudTowerRacks)
    assert [(p.rack, p.u, p.host) for p in racks.placements] == [("A01", 1 + 2 * i, h.hostname)
                                                                  for i, h in enumerate(plan.hosts)]
    assert racks.racks_created == ["A01"] and (racks.server_height_u, racks.rack_height_u) == (2, 42)

    before, world_before = counts(sim, tower), topology(tower, cid)
    again = harness(sim, plan, "again").attach()     # a fresh run (no state) against the same CloudTower
    again.all()
    after = counts(sim, tower)
    assert after == before, f"a rerun wrote or created something: {before} -> {after}"
    assert topology(tower, cid) == world_before
    assert again.state.take(CloudTowerStoragePolicy).how == "already"
    assert again.state.take(CloudTowerCapacityAlert).how == "already"
    assert all(v.created == 0 and not v.view_created for v in again.state.take(CloudTowerDashboards).views)
    r2 = again.state.take(CloudTowerRacks)
    assert (r2.racks_created, r2.bricks_created, r2.bricks_moved, r2.nodes_moved) == ([], 0, 0, 0)
    assert "nothing written" in again.notes("06.storage_policy") and "nothing written" in again.notes(
        "06.capacity_alert")


def test_on_the_cloudtower_configured_preset_nothing_is_written(world, plans, harness):
    """The simulator's own stage-06 preset and these steps agree: run on it, the steps find everything so."""
    from mocks.presets import PRESETS

    if "cloudtower-configured" not in PRESETS:
        pytest.skip("the simulator has no cloudtower-configured preset yet")
    plan = plans("chassis")
    sim = world(plan, preset="cloudtower-configured")
    h = harness(sim, plan).attach()
    before = counts(sim, h.tower)
    h.all()
    assert counts(sim, h.tower) == before
    assert h.state.take(CloudTowerStoragePolicy).how == "already"
    assert h.state.take(CloudTowerCapacityAlert).how == "already"
    assert [v.created for v in h.state.take(CloudTowerDashboards).views] == [0, 0, 0]


def test_the_report_shows_the_cloudtower_configuration(world, plans, harness):
    plan = plans("chassis")
    h = harness(world(plan), plan).attach()
    h.all()
    html = "".join(report._cloudtower_config(h.state))
    assert "CloudTower 配置 / CloudTower configuration" in html
    assert "REPLICA_2_THIN_PROVISION" in html and "NOTICE 61%, CRITICAL 90%" in html
    for name, n in (("Cluster", 3), ("Host", 7), ("VM", 5)):
        assert f"<td>{name}</td>" in html and f"<td>{n}</td>" in html
    assert "<td>A01</td><td>1</td>" in html and "<td>A02</td><td>10</td>" in html
    assert "multi-node chassis" in html and html.count("shares this U") == 2


# =========================================================================== the pagination trap
def test_the_rule_is_found_by_name_not_in_the_guides_first_page(world, plans, harness):
    plan = plans("three")
    sim = world(plan)
    h = harness(sim, plan).attach()
    page, count = h.ct.global_alert_rules(GUIDE_WHERE)          # the guide's query: 50 of 94, the rule not there
    assert count == 94 and len(page) == 50 and RULE not in {r["name"] for r in page}
    h.alert()
    asked = [r.body["variables"]["where"] for r in sim.requests if isinstance(r.body, dict)
             and r.body.get("operationName") == "globalAlertRules"][1:]
    assert asked and all(w == {"name": RULE} for w in asked)
    assert h.state.take(CloudTowerCapacityAlert).notice == 61
    assert "1 page(s) read" in h.notes("06.capacity_alert")


def test_a_server_that_ignores_the_name_filter_is_paged_through(world, plans, harness, monkeypatch):
    """Inferred behaviour (facts 06.2: the filter exists in the SDK): should CloudTower ignore ``where.name``, the
    count says there are more and the next pages are read until the rule shows (it is 73rd of the guide's 94)."""
    plan = plans("three")
    sim = world(plan)
    h = harness(sim, plan).attach()
    real = h.ct.global_alert_rules
    monkeypatch.setattr(h.ct, "global_alert_rules", lambda where, **kw: real(GUIDE_WHERE, **kw))
    h.alert()
    assert h.state.take(CloudTowerCapacityAlert).notice == 61
    assert "2 page(s) read" in h.notes("06.capacity_alert")


# =========================================================================== faults
@pytest.mark.parametrize("operation, step", [("updateClusterSettings", "policy"), ("updateGlobalAlertRule", "alert"),
                                             ("globalAlertRules", "alert")])
def test_graphql_errors_with_http_200_fail_the_step_in_plain_words(world, plans, harness, operation, step):
    plan = plans("three")
    sim = world(plan)
    h = harness(sim, plan).attach()
    sim.faults.add({"method": "POST", "path": "/api", "operation_name": operation, "times": 1,
                    "action": {"status": 200, "msg": "resolver exploded"}})
    with pytest.raises(AssertionError) as exc:
        getattr(h, step)()
    text = str(exc.value)
    assert "resolver exploded" in text and "CloudTower answered errors" in text and "下一步 / next:" in text
    assert any(r.status == 200 and r.fault for r in sim.requests if r.path == "/api")
    getattr(h, step)()                 # the rerun (--resume) passes, and writes once
    assert gql_count(sim, operation) >= 2
    if step == "policy":
        assert h.state.take(CloudTowerStoragePolicy).policy == "REPLICA_2_THIN_PROVISION"
    else:
        assert h.state.take(CloudTowerCapacityAlert).notice == 61


def test_host_num_still_0_right_after_the_connect_is_waited_for(world, plans, harness):
    """cluster-sync-lags: CONNECTED with host_num 0 for 40 simulated s. Stage 06 runs right after 05.connect (before
    05.cluster's own wait): the NOTICE is computed from the three hosts once synced, never from 0."""
    plan = plans("three")
    sim = world(plan, "cluster-sync-lags", preset="cloudtower-ready", time_scale=0.005)   # the lag outlasts 05
    h = harness(sim, plan).attach(hosts=False)
    assert h.ct.clusters(id=h.cluster_id)[0]["host_num"] == 0
    h.alert()
    alert = h.state.take(CloudTowerCapacityAlert)
    assert (alert.host_num, alert.notice) == (3, 61)
    assert any("host_num=0 / 3" in line for line in h.lines), h.lines
    h.policy()
    assert h.state.take(CloudTowerStoragePolicy).policy == "REPLICA_2_THIN_PROVISION"


def test_a_per_cluster_rule_that_shows_late_is_waited_for(world, plans, harness):
    """The facts' "alert_rules empty until sync": the global rule is there, the cluster's own rule comes later."""
    plan = plans("three")
    sim = world(plan, preset="cloudtower-ready", time_scale=0.005)   # the lag must outlast stage 05's wall time
    sim.state.cloudtower.configure(alert_rules_lag=120.0)
    h = harness(sim, plan).attach()
    rule, _ = h.ct.global_alert_rule(RULE)
    assert rule and not [a for a in rule["alert_rules"] if (a.get("cluster") or {}).get("id") == h.cluster_id]
    h.alert()
    assert h.state.take(CloudTowerCapacityAlert).notice == 61
    assert any("alert_rules=0" in line for line in h.lines), h.lines


def test_an_expired_token_mid_stage_logs_in_again_once_per_expiry(world, plans, harness):
    plan = plans("three")
    sim = world(plan)
    h = harness(sim, plan).attach()
    h.policy()
    assert h.tower.revoke_tokens() >= 1          # expires between two steps: GraphQL next
    h.alert()
    assert h.tower.revoke_tokens() >= 1          # and again: REST next
    h.dashboards()
    h.racks()
    assert h.ct.relogins == 2
    assert h.state.take(CloudTowerCapacityAlert).notice == 61 and len(h.tower.views) == 3


def test_a_failure_mid_dashboards_then_a_rerun_creates_nothing_twice(world, plans, harness):
    plan = plans("three")
    sim = world(plan)
    h = harness(sim, plan).attach()
    sim.faults.add({"method": "POST", "path": "/v2/api/create-graph", "nth": 2, "times": 1, "action": {"status": 500}})
    with pytest.raises(ApiError) as exc:
        h.dashboards()                   # Cluster done, Host's graphs refused (a mutation: never retried)
    assert exc.value.status == 500
    assert len(h.tower.views) == 2 and len(h.tower.graphs) == 3
    h.dashboards()
    assert (len(h.tower.views), len(h.tower.graphs)) == (3, 15)
    assert sim.count("POST", "/v2/api/create-view") == 3


# =========================================================================== racks
def test_a_multi_node_chassis_is_one_brick_and_noted(world, plans, harness):
    plan = plans("chassis")
    sim = world(plan, "topology-nodes-in-bricks")
    h = harness(sim, plan).attach()
    h.racks()
    topo = topology(h.tower, h.cluster_id)
    names = [x.hostname for x in plan.hosts]
    assert topo["hosts"][names[0]][:2] == ("A01", 1)
    assert {topo["hosts"][n][:2] for n in names[1:]} == {("A02", 10)}
    assert {topo["hosts"][n][2] for n in names[1:]} == {(1, 1), (1, 2)}
    chassis = [b for b in topo["bricks"] if b[1] == "A02"]
    assert chassis == [("A02-U10", "A02", 10, 2)]
    assert "multi-node" in h.notes("06.racks")
    assert f"empty bricks left in place (not deleted): {names[2]}" in h.notes("06.racks")   # its default brick
    racks = h.state.take(CloudTowerRacks)
    assert sorted(p.shared_with for p in racks.placements if p.rack == "A02") == [[names[1]], [names[2]]]
    before = counts(sim, h.tower)
    h.racks()
    assert counts(sim, h.tower) == before


def test_a_plan_without_rack_data_is_not_applicable_before_any_call(world, plans, harness):
    plan = plans("no-racks")
    sim = world(plan)
    h = harness(sim, plan).attach()
    sim.requests.clear()
    with pytest.raises(pytest.skip.Exception) as exc:
        h.racks()
    assert str(exc.value.msg).startswith(f"{NOT_APPLICABLE}, ") and "P/Q" in str(exc.value.msg)
    assert len(sim.requests) == 0


def test_heights_that_cannot_hold_the_plan_fail_before_any_call(world, plans, harness):
    plan = plans("three")
    sim = world(plan)
    h = harness(sim, plan, server_height_u=3).attach()      # U 1, 3, 5 with 3U servers overlap
    sim.requests.clear()
    with pytest.raises(AssertionError) as exc:
        h.racks()
    text = str(exc.value)
    assert "overlap" in text and "主机规划!Q3" in text and "--server-height" in text and "下一步 / next:" in text
    assert len(sim.requests) == 0
    h.run.server_height_u, h.run.rack_height_u = 2, 4                # U5 + 2U reaches past a 4U rack
    with pytest.raises(AssertionError, match=r"past the top of a 4U rack"):
        h.racks()


def test_hosts_are_moved_when_the_plan_changes(world, plans, harness):
    """A rerun after the engineer corrected the plan moves the existing bricks rather than adding new ones."""
    plan = plans("three")
    sim = world(plan)
    harness(sim, plan, "first").attach().racks()
    shifted = replace(plan, hosts=[replace(x, rack="B07", rack_u=x.rack_u + 20) for x in plan.hosts])
    h = harness(sim, shifted, "second").attach()
    h.racks()
    topo = topology(h.tower, h.cluster_id)
    assert [topo["hosts"][x.hostname][:2] for x in plan.hosts] == [("B07", 21), ("B07", 23), ("B07", 25)]
    racks = h.state.take(CloudTowerRacks)
    assert (racks.racks_created, racks.bricks_created, racks.bricks_moved) == (["B07"], 0, 3)
    assert len(topo["bricks"]) == 3 and topo["racks"].count("A01") == 1     # A01 stays (nothing is deleted)


# =========================================================================== whole runs
@pytest.mark.slow
def test_a_second_whole_run_on_the_same_world_creates_nothing_in_stage06(tmp_path):
    """Two runs of the main job (fresh delivery folders, one standalone simulator): the second finds stage 06 done."""
    from .suite_runs import outcomes, run_suite, simulator

    plan_file = write_example(tmp_path / "plan.xlsx", hosts=3, business=1,
                              overrides={(L.SHEET_HOSTS, "Q4"): 1, (L.SHEET_HOSTS, "P4"): "A01",
                                         (L.SHEET_HOSTS, "Q3"): 1})
    with simulator(plan_file) as sim:
        tower = sim.state.cloudtower
        first = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(tmp_path / "a"))
        assert first.returncode == 0, first.stdout[-4000:]
        t = tower.tower(str(load(plan_file)[0].cloudtower.ip))
        before = counts(sim, t)
        assert (before["views"], before["graphs"]) == (3, 15)
        second = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(tmp_path / "b"))
        assert second.returncode == 0, second.stdout[-4000:]
        got = outcomes(tmp_path / "b")
        assert all(got[s] == "passed" for s in ("06.storage_policy", "06.capacity_alert", "06.dashboards", "06.racks"))
        after = counts(sim, t)
        assert {k: v for k, v in after.items() if k != "writes"} == {k: v for k, v in before.items() if k != "writes"}
        assert sim.count("POST", "/v2/api/create-graph") == 3 and sim.count("POST", "/v2/api/create-rack-topo") == 1


@pytest.mark.slow
def test_a_resume_after_a_failure_mid_stage06_creates_nothing_twice(tmp_path):
    """create-graph answers 500 once (a mutation: never retried): 06.dashboards fails with the Cluster view made,
    06.racks still runs (it depends on 05.cluster only); the resumed run finishes the dashboards, nothing twice."""
    from .suite_runs import outcomes, run_suite, simulator

    plan_file = write_example(tmp_path / "plan.xlsx", hosts=3, business=1)
    with simulator(plan_file) as sim:
        sim.faults.add({"method": "POST", "path": "/v2/api/create-graph", "nth": 2, "times": 1,
                        "action": {"status": 500}})
        run_dir = tmp_path / "r"
        first = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir))
        got = outcomes(run_dir)
        assert first.returncode != 0 and got["06.dashboards"] == "failed" and got["06.racks"] == "passed", got
        second = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--resume", str(run_dir))
        assert second.returncode == 0, second.stdout[-4000:]
        t = sim.state.cloudtower.tower(str(load(plan_file)[0].cloudtower.ip))
        assert (len(t.views), len(t.graphs)) == (3, 15)
        assert sim.count("POST", "/v2/api/create-view") == 3 and sim.count("POST", "/v2/api/create-rack-topo") == 1
