"""Stage 09 (the FIO test VMs) against the simulator: the happy path and a rerun, and the faults the issue names (an
import task FAILED, a VM that never gets VM tools), the --test-vms cap and the ``vm-nic-ip-update`` profile.

The steps are called one by one (in process) against a simulator fast-forwarded to ``components-ready`` (stages 01-07;
stage 05's steps run first through the harness and publish the cluster, as 05 would). :class:`Workloads` carries the
steps of stages 09-11 and is shared with tests/test_stage10.py and tests/test_stage11.py. The assertions read
CloudTower's own VM model in the simulator (mocks/cloudtower/vms.py)."""
from __future__ import annotations

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


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    return write_plan(tmp_path_factory.mktemp("s09"))


@pytest.fixture(scope="module")
def plan(plan_file):
    return load(plan_file)[0]


@pytest.fixture
def world(monkeypatch):
    """``world(plan, *profiles)``: a simulator at ``components-ready`` (stages 01-07 done), serving on loopback."""
    with simulators(monkeypatch) as build:
        yield lambda plan, *profiles: build(plan, *profiles, preset="components-ready")


@pytest.fixture
def harness(tmp_path):
    with harnesses(tmp_path, Workloads) as make:
        yield make


# =========================================================================== the normal path and a rerun
def test_the_test_vms_are_imported_cloned_started_and_addressed(world, plan, harness):
    sim = world(plan)
    h = harness(sim, plan).attach().stage09()
    vms = h.state.take(TestVms)
    assert vms.ready and [v["how"] for v in vms.vms] == ["imported", "cloned", "cloned"]
    assert len({v["host_id"] for v in vms.vms}) == 3, "one test VM per host"
    assert sim.count("POST", IMPORT) == 1 and sim.count("POST", CLONE) == 2
    assert sorted(v.name for v in h.test_vms()) == [f"{TEST_VM_PREFIX}0{i}" for i in (1, 2, 3)]
