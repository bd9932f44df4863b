"""Stage 05 (attach the cluster to CloudTower) against the simulator: every fault the issue names.

The steps are called one by one (in process) against a simulator fast-forwarded to ``cloudtower-ready``; the
assertions read CloudTower's own state in the simulator. Whole runs (a resume after a failure mid-stage) are
under ``-m slow`` at the end."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.outputs import CloudTowerCluster, CloudTowerDatacenter
from mocks.presets import apply_preset
from plan.example import write_example
from plan.parse import load

from .ct_harness import fail_once, gives_up_at_the_limit, harnesses, simulators
from .suite_runs import outcomes, run_suite, simulator, state_of

CONNECT = "/v2/api/connect-cluster"


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    return write_example(tmp_path_factory.mktemp("s05") / "plan.xlsx", hosts=3, business=1)


@pytest.fixture(scope="module")
def plan(plan_file):
    return load(plan_file)[0]


@pytest.fixture
def world(plan, monkeypatch):
    """``world(*profiles)``: a simulator at ``cloudtower-ready`` (stages 01-04 done), serving on loopback."""
    with simulators(monkeypatch) as build:
        yield lambda *profiles: build(plan, *profiles, preset="cloudtower-ready")


@pytest.fixture
def harness(tmp_path):
    with harnesses(tmp_path) as make:
        yield make


def _world_counts(sim, tower) -> tuple[int, int, int]:
    return len(tower.datacenters), len(tower.clusters), sim.count("POST", CONNECT, status=200)


# =========================================================================== the normal path and a rerun
def test_attach_publishes_the_ids_and_a_rerun_creates_nothing(world, plan, harness):
    sim = world()
    first = harness(sim, plan, "first")
    first.attach()
    c = first.state.take(CloudTowerCluster)
    assert c.how == "connected" and c.connect_state == "CONNECTED" and c.host_num == 3
    assert c.id and c.local_id and c.settings_id and c.connect_seconds and c.connect_seconds > 0
    assert sorted(ip for _, ip in c.hosts) == sorted(str(h.mgmt_ip) for h in plan.hosts)
    dc = first.state.take(CloudTowerDatacenter)
    assert dc.created and dc.name == plan.datacenter
    assert _world_counts(sim, first.tower) == (1, 1, 1)

    again = harness(sim, plan, "again")   # a fresh run (no state) against the same CloudTower
    again.attach()
    assert _world_counts(sim, again.tower) == (1, 1, 1), "a rerun created something twice"
    assert again.state.take(CloudTowerCluster).how == "already"
    assert again.state.take(CloudTowerDatacenter).created is False
    assert "not connected again" in again.notes("05.connect")


def test_a_missing_organization_fails_clearly(world, plan, harness):
    h = harness(world(), replace(plan, customer="NoSuchCustomer"))
    with pytest.raises(AssertionError, match=r"no organization NoSuchCustomer .*文档描述!C15"):
        h.org()


# =========================================================================== faults
def test_a_connect_stuck_in_initializing_fails_at_the_limit_with_its_state(world, plan, harness):
    sim = world()
    sim.faults.add({"method": "POST", "path": CONNECT, "action": {"operation": "stuck"}})
    h = harness(sim, plan, attach_timeout_min=2)
    h.org()
    h.datacenter()
    gives_up_at_the_limit(h, h.connect, "connect_state=INITIALIZING", "--attach-timeout", "上限 120s",
                          progress="INITIALIZING")
    assert h.state.pending_intents().get("05.connect", {}).get("task_id"), "the connect's intent stays pending"


def test_connected_error_fails_at_once_and_a_rerun_never_connects_over_it(world, plan, harness):
    sim = world()
    fail_once(sim, CONNECT, "cannot load the cluster")
    h = harness(sim, plan)
    h.org()
    h.datacenter()
    with pytest.raises(AssertionError, match=r"CONNECTED_ERROR") as exc:
        h.connect()
    text = str(exc.value)
    assert "下一步 / next:" in text and "cannot load the cluster" in text, "CloudTower's own reason (the task's)"
    assert "Remove cluster" in text, "how to remove it, so that a resumed run connects anew"
    polls = sim.count("POST", "/v2/api/get-clusters")   # the task fails when its connect time is over (~150 s)
    assert polls <= h.tower.connect_seconds / 10 + 4 < 60, f"a terminal state fails at once, not at the 10 min limit " \
                                                          f"({polls} polls)"
    with pytest.raises(AssertionError, match=r"CONNECTED_ERROR"):   # resumed: looked at again, not connected over
        h.connect()
    assert sim.count("POST", CONNECT) == 1
    # the engineer removes the failed cluster in CloudTower; the resumed step connects it anew, once
    h.tower.clusters.clear()
    h.connect()
    h.hosts()
    assert _world_counts(sim, h.tower) == (1, 1, 2)
    assert h.state.take(CloudTowerCluster).connect_state == "CONNECTED"


@pytest.mark.parametrize("profile, fails_with", [
    ("connect-auth-refused", r"refused \(HTTP 400\) \(LOAD_CLUSTER_UNAUTHORIZED\)"),
    ("connect-auth-late", r"CONNECTED_ERROR \(LOAD_CLUSTER_UNAUTHORIZED\)"),
])
def test_a_wrong_cluster_password_names_the_reason_and_the_cell(world, plan, harness, profile, fails_with):
    sim = world(profile)
    h = harness(sim, plan)
    h.org()
    h.datacenter()
    with pytest.raises(AssertionError, match=fails_with) as exc:
        h.connect(replace(plan, cluster_admin_password="Not-the-Passw0rd"))
    assert "主机规划!M19" in str(exc.value)
    assert sim.count("POST", "/v2/api/get-clusters") <= h.tower.connect_seconds / 10 + 4 < 60


def test_an_expired_token_mid_stage_logs_in_again_once(world, plan, harness):
    sim = world()
    h = harness(sim, plan)
    h.org()
    assert h.tower.revoke_tokens() >= 1          # the token expires between two steps
    h.datacenter()
    h.connect()
    h.hosts()
    assert h.ct.relogins == 1
    assert sim.count("POST", "/v2/api/login", status=200) == 2


def test_a_cluster_in_another_datacenter_is_moved_not_connected_again(world, plan, harness):
    sim = world()
    h = harness(sim, plan)
    h.org()
    org_id = h.state.data["outputs"]["cloudtower_organization"]["id"]
    other = h.ct.create_datacenter(org_id, "OLD-DC")["data"]
    h.ct.connect_cluster(str(plan.vip), plan.cluster_admin_password, other["id"])
    h.datacenter()
    h.connect()
    h.hosts()
    c = h.state.take(CloudTowerCluster)
    assert c.how == "moved" and c.moved_from == "OLD-DC"
    assert "moved to" in h.notes("05.connect") and "OLD-DC" in h.notes("05.connect")
    assert sim.count("POST", CONNECT) == 1 and sim.count("POST", "/v2/api/add-clusters-to-datacenter") == 1
    dcs = h.ct.clusters(ip=str(plan.vip))[0]["datacenters"]
    assert [d["name"] for d in dcs] == [plan.datacenter]


def test_hosts_synced_after_connected_are_waited_for(world, plan, harness):
    sim = world("cluster-sync-lags")
    h = harness(sim, plan)
    h.attach()
    assert h.state.take(CloudTowerCluster).host_num == 3


# =========================================================================== whole runs
@pytest.mark.slow
def test_a_rerun_after_a_failure_mid_stage_creates_nothing_twice(plan_file, tmp_path):
    """connect-cluster answers 503 once (a mutation: never retried): 05.connect fails after 05.datacenter created
    the datacenter; the resumed run connects once and creates no second datacenter."""
    with simulator(plan_file) as sim:
        apply_preset(sim, "cloudtower-ready")
        sim.faults.add({"method": "POST", "path": CONNECT, "times": 1, "action": {"status": 503}})
        run_dir = tmp_path / "r"
        first = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir))
        got = outcomes(run_dir)
        assert first.returncode != 0 and got["05.connect"] == "failed" and got["05.cluster"] == "blocked", got
        assert got["05.datacenter"] == "passed"
        second = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--resume", str(run_dir))
        assert second.returncode == 0, second.stdout[-4000:]
        tower = sim.state.cloudtower.towers[str(load(plan_file)[0].cloudtower.ip)]
        assert len(tower.datacenters) == 1 and len(tower.clusters) == 1
        assert sim.count("POST", "/v2/api/create-datacenter") == 1
        assert sim.count("POST", CONNECT, status=200) == 1
        assert state_of(run_dir)["outputs"]["cloudtower_cluster"]["connect_state"] == "CONNECTED"


def test_more_hosts_in_cloudtower_than_planned_fails_at_once(world, plan, harness):
    sim = world()
    h = harness(sim, replace(plan, hosts=plan.hosts[:2]))
    h.org()
    h.datacenter()
    h.connect()
    before = sim.count("POST", "/v2/api/get-clusters")
    with pytest.raises(AssertionError, match=r"CloudTower shows 3 hosts in the cluster; the plan has 2"):
        h.hosts()
    assert sim.count("POST", "/v2/api/get-clusters") - before <= 2, "fails at once, not at the limit"
