"""Stage 09 (the FIO test VMs) against the simulator: the happy path and a rerun, and the faults the issue names (an
import task FAILED, a VM that never gets VM tools), the --test-vms cap and the ``vm-nic-ip-update`` profile.

The steps are called one by one (in process) against a simulator fast-forwarded to ``components-ready`` (stages 01-07;
stage 05's steps run first through the harness and publish the cluster, as 05 would). :class:`Workloads` carries the
steps of stages 09-11 and is shared with tests/test_stage10.py and tests/test_stage11.py. The assertions read
CloudTower's own VM model in the simulator (mocks/cloudtower/vms.py)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clients.addressing import AddressMap
from clients.ct_vms import TEST_VM_PREFIX
from fixtures.outputs import TestImageUpload, TestVmPlan, TestVms
from fixtures.session import WorkloadOptions
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .ct_harness import NEXT, Harness, fails_clearly, harnesses, simulators
from .suite_runs import load_steps

S09 = load_steps("test_09_workloads", "_s09_")
S10 = load_steps("test_10_performance", "_s10_")
S11 = load_steps("test_11_cleanup", "_s11_")
IMPORT = "/v2/api/import-vm"
CLONE = "/v2/api/clone-vm"
ALL_FLASH = {(L.SHEET_HOSTS, "Q19"): "全闪-不分层"}
TWO_ADDRESSES = {(L.SHEET_MGMT, "E19"): "10.0.20.232"}      # the test range 10.0.20.231-232


def write_plan(folder: Path, name: str = "plan", *, hosts: int = 3, overrides: dict | None = None) -> Path:
    return write_example(folder / f"{name}.xlsx", hosts=hosts, business=1, overrides=overrides)


class Workloads(Harness):
    """The harness with the steps of stages 09, 10 and 11 and the fixtures they take (``run.workloads``: the
    defaults of --test-vms … --keep-test-vms, overridden by ``workloads=dict(...)``; ``amap`` for SSH into the
    guests)."""

    def __init__(self, sim, plan, tmp_path: Path, workloads: dict | None = None, **options):
        super().__init__(sim, plan, tmp_path, **{"simulate": True, "packages": None,
                                                 "workloads": WorkloadOptions(**(workloads or {})), **options})
        self.amap = AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)

    @property
    def wl(self) -> WorkloadOptions:
        return self.run.workloads

    # -- stage 09
    def snapshot(self):
        S09.test_customer_snapshot(self.ct, self.state, self.step("09.snapshot"))

    def image(self):
        S09.test_image(self.run, self.state, self.step("09.image"))

    def vm_plan(self):
        S09.test_vm_plan(self.plan, self.run, self.state, self.step("09.plan"))

    def network(self):
        S09.test_network(self.plan, self.ct, self.state, self.step("09.network"))

    def import_vm(self):
        S09.test_import(self.run, self.ct, self.state, self.step("09.import"), self.pacing)

    def clones(self):
        S09.test_clones(self.run, self.ct, self.state, self.step("09.clones"), self.pacing)

    def start(self):
        S09.test_start(self.run, self.ct, self.state, self.step("09.start"), self.pacing)

    def ip(self):
        S09.test_ip(self.run, self.ct, self.amap, self.state, self.step("09.ip"), self.pacing)

    def prepare(self):
        """09 up to (not including) the import."""
        for fn in (self.snapshot, self.image, self.vm_plan, self.network):
            fn()
        return self

    def stage09(self):
        for fn in (self.prepare, self.import_vm, self.clones, self.start, self.ip):
            fn()
        return self

    # -- stage 10
    def disks(self):
        S10.test_disks(self.run, self.amap, self.state, self.step("10.disks"), self.pacing)

    def profile(self, name: str):
        p = next(p for p in S10.PROFILES if p.name == name)
        S10.test_profile(p, self.plan, self.run, self.amap, self.ct, self.state, self.step(f"10.{name}"))

    def reliability(self):
        S10.test_reliability(self.run, self.amap, self.ct, self.state, self.step("10.reliability"), self.pacing)

    # -- stage 11
    def remove_vms(self):
        S11.test_remove_test_vms(self.run, self.ct, self.state, self.step("11.vms"), self.pacing)

    def cancel_uploads(self):
        S11.test_cancel_uploads(self.run, self.ct, self.state, self.step("11.uploads"))

    def verify(self):
        S11.test_verify(self.run, self.ct, self.state, self.step("11.verify"))

    def stage11(self):
        for fn in (self.remove_vms, self.cancel_uploads, self.verify):
            fn()
        return self

    # -- what CloudTower holds
    def test_vms(self) -> list:
        return [v for v in self.tower.ct_vms.values() if v.name.startswith(TEST_VM_PREFIX)]

    def test_volumes(self) -> list:
        return [v for v in self.tower.ct_volumes.values() if v.name.startswith(TEST_VM_PREFIX)]


def workload_fixtures(folder: str):
    """The fixtures ``plan_file`` (a three-host example plan written in a temporary ``folder``), ``plan``, ``world``
    (``world(plan, *profiles)``: a simulator at ``components-ready``, stages 01-07 done, serving on loopback) and
    ``harness`` (``harness(sim, plan, name="run", workloads=..., **options)``: a :class:`Workloads`):
    ``plan_file, plan, world, harness = workload_fixtures(...)``."""
    @pytest.fixture(scope="module")
    def plan_file(tmp_path_factory) -> Path:
        return write_plan(tmp_path_factory.mktemp(folder))

    @pytest.fixture(scope="module")
    def plan(plan_file):
        return load(plan_file)[0]

    @pytest.fixture
    def world(monkeypatch):
        with simulators(monkeypatch) as build:
            yield lambda plan, *profiles: build(plan, *profiles, preset="components-ready")

    @pytest.fixture
    def harness(tmp_path):
        with harnesses(tmp_path, Workloads) as make:
            yield make

    return plan_file, plan, world, harness


plan_file, plan, world, harness = workload_fixtures("s09")


# =========================================================================== the normal path
def test_the_test_vms_are_imported_cloned_started_and_addressed(world, plan, harness):
    sim = world(plan)
    h = harness(sim, plan).attach().stage09()
    vms = h.state.take(TestVms)
    assert vms.ready and vms.ip_how == "import" and [v["how"] for v in vms.vms] == ["imported", "cloned", "cloned"]
    assert len({v["host_id"] for v in vms.vms}) == 3, "one test VM per host"
    assert [v["ip"] for v in vms.vms] == [str(a) for a in plan.test_addresses()[:3]]
    assert sim.count("POST", IMPORT) == 1 and sim.count("POST", CLONE) == 2
    assert sorted(v.name for v in h.test_vms()) == [f"{TEST_VM_PREFIX}0{i}" for i in (1, 2, 3)]
    assert not h.state.pending_intents(), "every long operation ended"
    assert not h.state.take(TestVmPlan).capped


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_the_guest_address_set_through_update_vm_nic_passes_09_to_11(world, plan, harness):
    """Profile ``vm-nic-ip-update``: the import's NIC address never reaches the guest; 09.ip sets it."""
    sim = world(plan, "vm-nic-ip-update")
    h = harness(sim, plan).attach().stage09()
    assert h.state.take(TestVms).ip_how == "update-vm-nic" and "update-vm-nic" in h.notes("09.ip")
    assert sim.count("POST", "/v2/api/update-vm-nic") == 3
    h.disks()
    h.profile("4k-randread")
    h.stage11()
    assert not h.test_vms() and not h.test_volumes()
    assert h.state.take(S11.CleanupSummary).verified


# =========================================================================== faults
def test_an_import_task_failed_fails_at_once_and_cleanup_removes_only_what_exists(world, plan, harness):
    sim = world(plan)
    sim.faults.add({"method": "POST", "path": IMPORT, "times": 1,
                    "action": {"operation": "fail", "msg": "not enough memory on the host"}})
    h = harness(sim, plan).attach().prepare()
    polls = sim.count("POST", "/v2/api/get-tasks")
    with fails_clearly(rf"导入 / import {TEST_VM_PREFIX}01 任务失败 / the task failed: not enough memory on the host"):
        h.import_vm()
    assert sim.count("POST", "/v2/api/get-tasks") - polls < 30, "FAILED fails at once, not at the 15 min limit"
    assert not h.test_vms() and not h.test_volumes(), "a failed import leaves no VM and no volume"
    assert h.state.pending_intents()["09.import"].get("task_id"), "the import's intent stays pending"
    assert h.state.take(TestVms) is None
    with pytest.raises(AssertionError, match="09.import"):          # what 09.clones needs was never published
        h.clones()
    uploads = h.state.take(TestImageUpload).uploads
    assert uploads and all(h.tower.upload_tasks[t].status == "SUCCESSED" for _, t, _ in uploads)
    customer = sorted(v.id for v in h.tower.ct_vms.values())
    h.stage11()
    summary = h.state.take(S11.CleanupSummary)
    assert summary.removed == [] and summary.leftovers == [] and summary.verified
    assert "cancelled 0 unfinished upload tasks (of 1 recorded)" in h.notes("11.uploads")
    assert sorted(v.id for v in h.tower.ct_vms.values()) == customer, "cleanup removed nothing else"
    assert sim.count("POST", "/v2/api/delete-vm") == 0 and sim.count("POST", "/v2/api/cancel-upload-task") == 0


class Killed(BaseException):
    """Stands for the run's death mid-upload (escapes the uploader, as a SIGKILL would end it)."""


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_an_upload_left_unfinished_by_a_killed_run_is_cancelled_by_cleanup(world, plan, harness, monkeypatch):
    """The run dies after the image's first chunk (of two): cleanup cancels the upload task it journaled."""
    sim = world(plan)
    h = harness(sim, plan).attach().prepare()

    def dies(self, *args, **kwargs):
        raise Killed()

    monkeypatch.setattr(S09.ct_vms.ElfUpload, "send", dies)
    with pytest.raises(Killed):
        h.import_vm()
    (task,) = [t for t in h.tower.upload_tasks.values() if t.resource_type.startswith("VM_VOLUME")]
    assert task.status == "UPLOADING" and task.received == 1 and sim.count("POST", IMPORT) == 0
    h.stage11()
    assert task.id not in h.tower.upload_tasks, "the unfinished upload was cancelled"
    summary = h.state.take(S11.CleanupSummary)
    assert [r[2] for r in summary.removed] == [task.id] and summary.leftovers == [] and summary.verified
    assert "cancelled 1 unfinished upload tasks (of 1 recorded)" in h.notes("11.uploads")
    assert sim.count("POST", "/v2/api/delete-vm") == 0


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_vm_that_never_gets_vm_tools_fails_naming_them_and_what_to_do(world, plan, harness):
    sim = world(plan)
    h = harness(sim, plan).attach().prepare()
    h.tower.test_vm_tools = False
    h.import_vm()
    h.clones()
    h.run.workloads = dataclasses.replace(h.wl, timeout_min=0.5)      # --test-vm-timeout 0.5 from here on
    with fails_clearly(r"VM tools never ran in smtx-acceptance-fio-0\d within 0.5 min") as info:
        h.start()
    nxt = str(info.value).split(NEXT)[1]
    assert "install them in the VM from CloudTower" in nxt and "--resume" in nxt
    seen = S09.ct_vms.vms(h.ct, prefix=TEST_VM_PREFIX)
    assert len(seen) == 3 and {(v["status"], v["vm_tools_status"]) for v in seen} == {("RUNNING", "NOT_RUNNING")}
    assert h.state.take(TestVms) and not h.state.take(TestVms).ready


# =========================================================================== the cap on the number of test VMs
@pytest.fixture(scope="module")
def two_address_plan(tmp_path_factory):
    return load(write_plan(tmp_path_factory.mktemp("s09cap"), overrides=TWO_ADDRESSES))[0]


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_more_test_vms_than_the_test_range_holds_are_capped_and_the_report_says_so(world, two_address_plan, harness):
    from fixtures.as_built_perf import workloads_section

    plan = two_address_plan
    assert len(plan.test_addresses()) == 2
    sim = world(plan)
    h = harness(sim, plan, workloads={"vms": 5}).attach().stage09()
    vp = h.state.take(TestVmPlan)
    assert (vp.wanted, vp.addresses, vp.capped, vp.requested, len(vp.vms)) == (5, 2, True, 5, 2)
    assert "test VMs capped from 5 to 2: the test range has 2 addresses" in h.notes("09.plan")
    assert len(h.test_vms()) == 2 and sim.count("POST", CLONE) == 1
    section = "".join(workloads_section(h.state))
    assert "test VMs capped from 5 to 2 (the test range has 2 addresses" in section


# =========================================================================== a whole run
@pytest.mark.slow
def test_a_run_whose_import_failed_blocks_09_10_and_still_cleans_up(plan_file, tmp_path):
    from mocks.presets import apply_preset

    from .suite_runs import outcomes, run_suite, simulator, state_of

    plan = load(plan_file)[0]
    with simulator(plan_file) as sim:
        apply_preset(sim, "cloudtower-configured")
        sim.faults.add({"method": "POST", "path": IMPORT, "action": {"operation": "fail",
                                                                     "msg": "not enough memory on the host"}})
        run_dir = tmp_path / "r"
        proc = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir))
        tower = sim.state.cloudtower.tower(str(plan.cloudtower.ip))
        assert not [v for v in tower.ct_vms.values() if v.name.startswith(TEST_VM_PREFIX)]
        assert sim.count("POST", "/v2/api/delete-vm") == 0, "nothing to remove, nothing removed"
    got = outcomes(run_dir)
    assert proc.returncode != 0 and got["09.import"] == "failed", proc.stdout[-3000:]
    state = state_of(run_dir)
    step = state["steps"]["09.import"]
    assert "not enough memory on the host" in step["cause"] and "--resume" in step["next"], step
    blocked = ["09.clones", "09.start", "09.ip", "10.disks", *(f"10.{p.name}" for p in S10.PROFILES)]
    assert {s: got[s] for s in blocked} == dict.fromkeys(blocked, "blocked")
    assert {got[s] for s in ("11.vms", "11.uploads", "11.verify")} == {"passed"}, "cleanup runs after a failed 09"
    cleanup = state["outputs"]["cleanup"]
    assert cleanup["removed"] == [] and cleanup["leftovers"] == [] and cleanup["verified"]
