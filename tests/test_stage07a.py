"""Stage 07a (Observability) against the simulator: the happy path and every fault the issue names.

The steps are called one by one (in process) against a simulator fast-forwarded to ``cloudtower-configured``
(stages 01-06); stage 05's steps run first through the same harness (they find the cluster attached and publish it
as 05 would). The assertions read CloudTower's own OBS state in the simulator (mocks/cloudtower/obs.py)."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from clients import obs as O
from clients.packages import OBS, stand_in
from clients.poll import WaitTimeout
from fixtures.outputs import ObsInstance, ObsPackage, ObsServices
from fixtures.steps import Packages
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .ct_harness import Harness, fail_once, fails_clearly, gives_up_at_the_limit, harnesses, simulators
from .suite_runs import load_steps

S07 = load_steps("test_07a_observability", "_s07a_")
CHUNKS = "/api/ovm-operator/api/v1/chunkedUploads"
COMMIT = "/api/ovm-operator/api/v3/chunkedUploads/*:commit"


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("s07a") / "plan.xlsx", hosts=3, business=1)


@pytest.fixture(scope="module")
def plan(plan_file):
    return load(plan_file)[0]


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory, plan):
    """One small real OBS package (the simulator checks the gzip stream), made once for the module."""
    folder = tmp_path_factory.mktemp("obs-packages")
    stand_in(folder, OBS, plan.components["obs"].version or "1.4.2")
    return folder


@pytest.fixture
def world(plan, monkeypatch):
    with simulators(monkeypatch) as build:
        yield lambda *profiles, p=None: build(p or plan, *profiles, preset="cloudtower-configured")


class Stage07a(Harness):
    """The harness with stage 07a's steps (stage 05's run first)."""

    def __init__(self, sim, plan, tmp_path, packages_dir=None, **options):
        super().__init__(sim, plan, tmp_path, **{"obs_timeout_min": 30, **options})
        self.packages = Packages(SimpleNamespace(packages=packages_dir, simulate=True, run_dir=tmp_path))
        from clients.addressing import AddressMap

        self.amap = AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)
        tmp_path.mkdir(parents=True, exist_ok=True)

    def package(self):
        S07.test_obs_package(self.plan, self.ct, self.packages, self.run, self.state, self.step("07a.package"),
                             self.pacing)

    def tasks(self):
        S07.test_obs_package_tasks(self.plan, self.ct, self.run, self.state, self.step("07a.package_tasks"),
                                   self.pacing)

    def instance(self):
        S07.test_obs_instance(self.plan, self.ct, self.run, self.state, self.step("07a.instance"), self.pacing)

    def ntp(self):
        S07.test_obs_ntp(self.plan, self.ct, self.state, self.step("07a.ntp"))

    def connect_cluster(self):
        S07.test_obs_connect_cluster(self.plan, self.ct, self.state, self.step("07a.connect_cluster"))

    def system_service(self):
        S07.test_obs_system_service(self.plan, self.ct, self.state, self.step("07a.system_service"))

    def dns(self):
        S07.test_obs_dns(self.plan, self.run, self.amap, self.state, self.step("07a.dns"))

    def record(self):
        S07.test_obs_record(self.plan, self.ct, self.state, self.step("07a.record"))

    def uploaded(self):
        """The package uploaded and its tasks waited for (the first two steps)."""
        self.package()
        self.tasks()
        return self

    def all(self):
        for fn in (self.package, self.tasks, self.instance, self.ntp, self.connect_cluster, self.system_service,
                   self.dns, self.record):
            fn()


@pytest.fixture
def harness(tmp_path, package_dir):
    with harnesses(tmp_path, Stage07a) as make:
        yield lambda sim, plan, name="run", **kw: make(sim, plan, name, packages_dir=package_dir, **kw)


def obs_world(tower) -> tuple[int, int, int]:
    """(packages, instances, uploads committed) in the simulated CloudTower."""
    committed = [u for u in tower.obs_uploads.values() if u.status == "COMMITTED"]
    return len(tower.obs_packages), len(tower.obs_instances), len(committed)


# =========================================================================== the normal path and a rerun
@pytest.mark.slow   # a deployment and its rerun (~2 s): the fast suite keeps its margin under 90 s
def test_obs_deploys_and_a_rerun_reuses_the_package_and_the_instance(world, plan, harness):
    sim = world()
    h = harness(sim, plan, "first").attach()
    h.all()
    pkg, inst, svc = (h.state.take(k) for k in (ObsPackage, ObsInstance, ObsServices))
    assert pkg.how == "uploaded" and pkg.package_id and pkg.mb_per_s and pkg.release.startswith("v1.4")
    assert sorted(k for k, _ in [(O.task_kind({"description": d}, pkg.file, pkg.release), s)
                                 for d, s in pkg.tasks]) == ["application", "installation"]
    assert all(s == "SUCCESSED" for _, s in pkg.tasks)
    assert inst.how == "created" and inst.status == "SUCCESS" and inst.vm_status == "RUNNING"
    assert inst.ip == str(plan.components["obs"].ip) and inst.version == pkg.release
    assert O.server_set(svc.ntp) == set(plan.ntp)
    assert svc.clusters and svc.rules == 22 and any(s.startswith("CLOUDTOWER") for s in svc.system_services)
    assert svc.dns == list(plan.dns) and "M4" in svc.serial_note
    assert "MB/s" in h.notes("07a.package") and "M4" in h.notes("07a.record")
    tower = h.tower
    assert obs_world(tower) == (1, 1, 1)
    one = next(iter(tower.obs_instances.values()))
    assert one.vm_spec["vlan_id"] in tower._cluster_vlans(one.cluster_id)
    services = one.system_services
    assert len(services) == 1 and len(services[0]["alerting_rules"]) == 22

    again = harness(sim, plan, "again").attach()   # a fresh run (no state) against the same CloudTower
    again.all()
    assert obs_world(tower) == (1, 1, 1), "a rerun created something twice"
    assert sim.count("POST", "/api/ovm-operator/api/v3/chunkedUploads") == 1, "a rerun uploaded again"
    assert again.state.take(ObsPackage).how == "already" and again.state.take(ObsInstance).how == "already"
    assert "not uploaded" in again.notes("07a.package") and "reused" in again.notes("07a.instance")
    assert "not sent" in again.notes("07a.connect_cluster") and "not sent" in again.notes("07a.system_service")


def test_a_blank_obs_ip_makes_every_obs_step_not_applicable(world, plan, harness, tmp_path):
    from fixtures.session import NOT_APPLICABLE

    blank = replace(plan, components={**plan.components, "obs": replace(plan.components["obs"], ip=None)})
    h = harness(world(), blank).attach()
    with pytest.raises(pytest.skip.Exception, match=NOT_APPLICABLE + r".*集群管理信息!E4"):
        h.package()
    assert obs_world(h.tower) == (0, 0, 0)
    # the whole run: every step carries the same marker, decided before any prerequisite
    marked = [f for n, f in vars(S07).items() if n.startswith("test_")]
    assert len(marked) == 8 and all(any(m.name == "applies" and not m.args[0](blank) and m.args[0](plan)
                                        for m in f.pytestmark) for f in marked)
    assert L.COMPONENT_ROWS["obs"] == 4


# =========================================================================== faults
def test_a_chunk_whose_answer_times_out_after_the_append_is_not_sent_again(world, plan, harness, monkeypatch):
    sim = world()
    monkeypatch.setattr(O, "CHUNK_TIMEOUT_S", 1.0)
    sim.faults.add({"method": "POST", "path": CHUNKS, "nth": 2, "times": 1, "action": {"delay": 3}})
    h = harness(sim, plan).attach()
    h.package()
    h.tasks()                       # a replayed chunk would corrupt the package: its task would fail
    up = next(iter(h.tower.obs_uploads.values()))
    assert up.offset == h.state.take(ObsPackage).size and up.verdict is None
    assert sim.count("POST", CHUNKS) == -(-up.offset // O.CHUNK), "no chunk was sent twice"
    assert sim.count("GET", "/api/ovm-operator/api/v3/chunkedUploads/*") >= 1, "the state was read"
    assert "not sent again" in h.notes("07a.package")


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_lost_chunk_answer_without_a_readable_state_fails_clearly(world, plan, harness, monkeypatch):
    sim = world()
    monkeypatch.setattr(O, "CHUNK_TIMEOUT_S", 1.0)
    sim.faults.add({"method": "POST", "path": CHUNKS, "nth": 2, "times": 1, "action": {"delay": 3}})
    sim.faults.add({"method": "GET", "path": "/api/ovm-operator/api/v3/chunkedUploads/*", "action": {"status": 404}})
    h = harness(sim, plan).attach()
    with fails_clearly(r"cannot be read: nobody can tell .* not re-sent"):
        h.package()
    assert sim.count("POST", CHUNKS) == 2, "the chunk was not re-sent"
    assert h.state.pending_intents()["07a.package"].get("abandoned"), "the next run starts a new upload"


def test_a_failed_package_task_fails_at_once_with_its_error(world, plan, harness):
    sim = world()
    fail_once(sim, COMMIT, "disk full on the OVM")
    h = harness(sim, plan).attach()
    h.package()
    with fails_clearly(r"OBS package task failed: Create Installation package .*disk full"):
        h.tasks()
    polls = sim.count("POST", "/v2/api/get-tasks")
    assert polls < 60, f"FAILED fails at once, not at the limit ({polls} polls)"


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_stale_tasks_of_an_earlier_upload_are_not_taken_for_this_one(world, plan, harness):
    """An earlier upload of the same file whose tasks SUCCEEDED (its package since deleted) must not end the wait."""
    sim = world()
    h = harness(sim, plan).attach().uploaded()
    tower = h.tower
    tower.obs_packages.clear()                      # the package is gone; its old tasks stay
    h2 = harness(sim, plan, "second").attach()
    h2.package()
    pkg = h2.state.take(ObsPackage)
    assert pkg.how == "uploaded" and len(pkg.stale_task_ids) == 2
    h2.tasks()
    assert len(tower.obs_packages) == 1
    assert all(d for d, _ in h2.state.take(ObsPackage).tasks)


def test_an_instance_stuck_installing_fails_at_the_limit_with_its_last_status(world, plan, harness):
    sim = world()
    sim.faults.add({"method": "POST", "path": "/api", "operation_name": "createBundleApplicationInstance",
                    "action": {"operation": "stuck"}})
    h = harness(sim, plan, obs_timeout_min=20).attach().uploaded()
    gives_up_at_the_limit(h, h.instance, "status=INSTALLING", "--obs-timeout", "上限 1200s", progress="status=INSTALLING")
    assert h.state.pending_intents()["07a.instance"].get("instance_id"), "the intent stays pending"


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_resumed_instance_step_reattaches_and_creates_nothing(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach().uploaded()
    h.run.obs_timeout_min = 1                   # the limit ends the wait before the install does (a killed run)
    with pytest.raises(WaitTimeout):
        h.instance()
    h.run.obs_timeout_min = 30
    h.instance()
    assert h.state.take(ObsInstance).how == "reattached" and obs_world(h.tower)[1] == 1
    assert "not created again" in h.notes("07a.instance")


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_failed_install_fails_at_once(world, plan, harness):
    sim = world()
    sim.faults.add({"method": "POST", "path": "/api", "operation_name": "createBundleApplicationInstance",
                    "action": {"operation": "fail", "msg": "no host can run the VM"}})
    h = harness(sim, plan).attach().uploaded()
    with pytest.raises(AssertionError, match=r"install failed: status=FAILED"):
        h.instance()


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_an_expired_cookie_mid_stage_logs_in_again_once(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach().uploaded()
    assert h.tower.revoke_cookies() >= 1
    h.instance()
    h.ntp()
    assert h.ct.relogins == 1


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_default_vlan_on_another_cluster_is_not_taken(world, plan, harness):
    sim = world()
    h = harness(sim, plan).attach()
    foreign = h.tower.add_foreign_vlan("default")
    assert h.ct.rest("get-vlans", {"where": {"name": "default"}})[0]["id"] == foreign["id"], "listed first"
    h.package()
    h.tasks()
    h.instance()
    inst = h.state.take(ObsInstance)
    assert inst.vlan_id != foreign["id"] and inst.vlan_id in h.tower._cluster_vlans(next(
        iter(h.tower.obs_instances.values())).cluster_id)
    assert "this cluster's" in h.notes("07a.instance")
