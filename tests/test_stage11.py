"""Stage 11 (cleanup) against the simulator: --keep-test-vms and a rerun that creates nothing twice, a customer object
changed meanwhile, the ``vm-delete-volumes-kept`` profile, and (``-m slow``, whole runs) cleanup after a run whose fio
failed followed by a resumed run that builds the test VMs again and ends green.

In process through tests/test_stage09.py's :class:`Workloads` harness, at ``components-ready``; the whole runs start
from ``cloudtower-configured`` (stages 01-06) and read state.json and the simulated world."""
from __future__ import annotations

import pytest

from clients.ct_vms import TEST_VM_PREFIX
from fixtures.outputs import CleanupSummary, TestVms
from fixtures.session import NOT_APPLICABLE
from mocks.presets import apply_preset
from plan.parse import load

from .ct_harness import NEXT, fails_clearly
from .suite_runs import outcomes, run_suite, simulator, state_of
from .test_stage09 import CLONE, IMPORT, workload_fixtures

plan_file, plan, world, harness = workload_fixtures("s11")
UNDONE = ["09.import", "09.clones", "09.start", "09.ip", "10.disks"]


def _kept(h):
    """Stage 11 under --keep-test-vms: 11.vms and 11.uploads are not applicable, 11.verify runs."""
    for fn in (h.remove_vms, h.cancel_uploads):
        with pytest.raises(pytest.skip.Exception, match=NOT_APPLICABLE):
            fn()
    h.verify()
    return h


# =========================================================================== --keep-test-vms and a rerun
@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_kept_test_vms_are_found_by_name_on_a_rerun_and_never_created_twice(world, plan, harness):
    sim = world(plan)
    first = harness(sim, plan, "first", workloads={"keep": True}).attach().stage09()
    first.disks()
    first.profile("4k-randread")
    _kept(first)
    summary = first.state.take(CleanupSummary)
    assert summary.kept and summary.removed == [] and summary.leftovers == [] and summary.verified
    ids = sorted(v.id for v in first.test_vms())
    assert len(ids) == 3 and sim.count("POST", "/v2/api/delete-vm") == 0

    again = harness(sim, plan, "again", workloads={"keep": True}).attach().stage09()   # a new run, same world
    assert [v["how"] for v in again.state.take(TestVms).vms] == ["existing"] * 3
    assert "not imported again" in again.notes("09.import")
    assert sim.count("POST", IMPORT) == 1 and sim.count("POST", CLONE) == 2, "a rerun created something twice"
    assert sim.count("POST", "/v2/api/parse-ovf") == 1, "the image is not uploaded again"
    assert sim.count("POST", "/v2/api/start-vm") == 3, "running VMs are not started again"
    assert sorted(v.id for v in again.test_vms()) == ids
    _kept(again)
    assert again.state.take(CleanupSummary).verified


def test_verify_under_keep_still_checks_the_customers_state(world, plan, harness):
    sim = world(plan)
    h = harness(sim, plan, workloads={"keep": True}).attach().stage09()
    view = next(iter(h.tower.views.values()))
    del h.tower.views[view.id]                      # a customer's dashboard view disappears meanwhile
    for fn in (h.remove_vms, h.cancel_uploads):
        with pytest.raises(pytest.skip.Exception):
            fn()
    with fails_clearly(rf"the customer's objects differ from before the tests: views {view.name} \({view.id}\): "
                       rf"missing") as info:
        h.verify()
    assert "customer-state-before.json" in str(info.value).split(NEXT)[1]
    summary = h.state.take(CleanupSummary)
    assert summary.kept and not summary.verified and ["views", view.name, view.id, "missing"] in \
        summary.customer_changes
    assert len(h.test_vms()) == 3, "kept"


# =========================================================================== volumes left by delete-vm
@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_volumes_left_by_delete_vm_are_deleted_one_by_one(world, plan, harness):
    """Profile ``vm-delete-volumes-kept``: delete-vm leaves the volumes; 11.vms deletes them with delete-vm-volume."""
    sim = world(plan, "vm-delete-volumes-kept")
    h = harness(sim, plan).attach().stage09()
    h.disks()
    h.profile("4k-randread-qd1")
    volumes = sorted(v.id for v in h.test_volumes())
    assert len(volumes) == 6, "each test VM: the OVF's disk and the fio data disk"
    h.stage11()
    assert not h.test_vms() and not h.test_volumes()
    assert sim.count("POST", "/v2/api/delete-vm-volume") == 6
    summary = h.state.take(CleanupSummary)
    assert sorted(r[2] for r in summary.removed if r[0] != "VM") == volumes and summary.verified


# =========================================================================== whole runs
@pytest.mark.slow
def test_cleanup_after_a_failed_fio_run_removes_everything_and_a_resume_builds_the_vms_again(plan_file, tmp_path):
    plan = load(plan_file)[0]
    first_vm = str(plan.test_addresses()[0])
    with simulator(plan_file) as sim:
        apply_preset(sim, "cloudtower-configured")
        sim.faults.add({"method": "SSH", "path": "fio --name=4k-randwrite *", "address": first_vm, "times": 1,
                        "status": 500, "msg": "fio: pid=0, err=28/file:filesetup.c:240, error=No space left on device"})
        tower = sim.state.cloudtower.tower(str(plan.cloudtower.ip))
        run_dir = tmp_path / "r"
        first = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir))
        got = outcomes(run_dir)
        assert first.returncode != 0 and got["10.4k-randwrite"] == "failed", first.stdout[-3000:]
        step = state_of(run_dir)["steps"]["10.4k-randwrite"]
        assert "No space left on device" in step["cause"] and "--resume" in step["next"]
        assert {got[s] for s in ("11.vms", "11.uploads", "11.verify")} == {"passed"}
        assert not [v for v in tower.ct_vms.values() if v.name.startswith(TEST_VM_PREFIX)]
        assert not [v for v in tower.ct_volumes.values() if v.name.startswith(TEST_VM_PREFIX)]
        state = state_of(run_dir)
        assert {s: state["steps"][s].get("undone_by") for s in UNDONE} == dict.fromkeys(UNDONE, "11.vms")
        cleanup = state["outputs"]["cleanup"]
        assert cleanup["verified"] and [r[1] for r in cleanup["removed"] if r[0] == "VM"] == \
            [f"{TEST_VM_PREFIX}0{i}" for i in (1, 2, 3)]

        second = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--resume", str(run_dir))
        assert second.returncode == 0, second.stdout[-4000:]
        state = state_of(run_dir)
        run_no = len(state["runs"])
        for s in UNDONE + ["10.4k-randwrite"]:
            entry = state["steps"][s]
            assert entry["outcome"] == "passed" and entry["run"] == run_no and not entry["replayed"], (s, entry)
        assert sim.count("POST", IMPORT) == 2 and sim.count("POST", CLONE) == 4, "built again, once"
        assert state["outputs"]["cleanup"]["verified"]
        assert not [v for v in tower.ct_vms.values() if v.name.startswith(TEST_VM_PREFIX)]
        assert not [v for v in tower.ct_volumes.values() if v.name.startswith(TEST_VM_PREFIX)]
