"""Stage 10 (performance and reliability) against the simulator: fio exiting non-zero, a profile below its threshold
(the step, the report's performance section), a failing live migration under --reliability, and the simulated figures
of an all-flash cluster beating a hybrid one on every profile.

In process through tests/test_stage09.py's :class:`Workloads` harness, at ``components-ready``, stage 09 run first;
one whole run (``-m slow``) checks the thresholds file and the FAIL in the report itself."""
from __future__ import annotations

import json

import pytest

from fixtures.as_built_perf import performance_section
from fixtures.outputs import PerfResults, ReliabilityResult, TestVms
from mocks.presets import apply_preset
from plan.parse import load

from .ct_harness import NEXT, fails_clearly
from .suite_runs import outcomes, report_of, run_suite, simulator, state_of
from .test_stage09 import ALL_FLASH, S10, workload_fixtures, write_plan

plan_file, plan, world, harness = workload_fixtures("s10")
PROFILES = [p.name for p in S10.PROFILES]


def _measured(h, *profiles: str):
    """Stage 09, the preconditioning, then ``profiles`` (all when none)."""
    h.attach().stage09()
    h.disks()
    for name in profiles or PROFILES:
        h.profile(name)
    return h


def _ip_of(h, n: int) -> str:
    return h.state.take(TestVms).vms[n]["ip"]


# =========================================================================== fio fails
@pytest.mark.slow   # both variants: stage 10 end to end in the harness (~2 s each)
@pytest.mark.parametrize("how", ["exit", "io-error"])
def test_fio_exiting_non_zero_fails_the_profile_with_fios_message(world, plan, harness, how):
    sim = world(plan)
    h = harness(sim, plan).attach().stage09()
    h.disks()
    ip = _ip_of(h, 1)
    if how == "exit":           # fio refuses to start (the SSH rule: exit 1, the message on stderr)
        sim.faults.add({"method": "SSH", "path": "*fio *", "address": ip, "times": 1, "status": 500,
                        "msg": "fio: pid=0, err=28/file:filesetup.c:240, error=No space left on device"})
        says = r"No space left on device"
    else:                       # an I/O error part-way (the FIO rule: exit 1, fio's io_u error)
        sim.faults.add({"method": "FIO", "address": ip, "times": 1, "action": {"operation": "fail"}})
        says = r"fio: io_u error on file /dev/vdb: Input/output error"
    with fails_clearly(rf"fio \(4k-randwrite\) exited 1 in smtx-acceptance-fio-02: .*{says}") as info:
        h.profile("4k-randwrite")
    assert f"log in to the VM ({ip})" in str(info.value).split(NEXT)[1]
    res = h.state.take(PerfResults)
    assert res is None or "4k-randwrite" not in res.profiles, "no figures recorded for a profile whose fio failed"
    h.profile("4k-randread")    # the other VMs and profiles are not affected
    assert h.state.take(PerfResults).profiles["4k-randread"]["passed"]


# =========================================================================== thresholds
def _floors_above(path, figures: dict[str, dict]) -> str:
    """A thresholds file whose hybrid 4k-randread floor is twice what the cluster delivers (the other profiles left
    out: reported, not judged)."""
    iops = figures["4k-randread"]["iops"]
    path.write_text(json.dumps({"_source": "the contract (test)", "architectures": {"hybrid-tiered": {
        "4k-randread": {"iops_min": round(iops * 2), "_source": "contract §3"}}}}), encoding="utf-8")
    return str(path)


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_profile_below_its_threshold_fails_naming_the_figure_and_the_threshold(world, plan, harness, tmp_path):
    sim = world(plan)
    first = _measured(harness(sim, plan, "first"), "4k-randread")
    iops = first.state.take(PerfResults).profiles["4k-randread"]["iops"]
    floors = _floors_above(tmp_path / "contract.json", first.state.take(PerfResults).profiles)
    h = harness(sim, plan, "strict", workloads={"thresholds": floors})
    h.attach().stage09()
    h.disks()
    with fails_clearly(r"4k random read — IOPS [\d,]+ .*≥ [\d,]+") as info:
        h.profile("4k-randread")
    text = str(info.value)
    assert f"{round(iops * 2):,}" in text and f"thresholds file: {floors}" in text and "--perf-thresholds" in text
    h.profile("4k-randwrite")                                    # not in the file: reported, not judged
    assert "reported, not judged" in h.notes("10.4k-randwrite")
    res = h.state.take(PerfResults)
    assert res.thresholds_file == floors and res.thresholds_source == "the contract (test)"
    (j,) = res.profiles["4k-randread"]["judgements"]
    assert (j["figure"], j["passed"], j["threshold"]) == ("iops", False, round(iops * 2))
    assert res.profiles["4k-randwrite"]["judgements"] == [] and res.profiles["4k-randwrite"]["passed"] is None   # reported, not judged
    section = "".join(performance_section(h.state))
    row = section.split("4k-randread（")[1].split("</tr>")[0]
    assert "未通过 / FAIL" in row and floors in section


# =========================================================================== reliability
@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_failing_migration_fails_reliability_saying_so(world, plan, harness):
    sim = world(plan)
    h = harness(sim, plan, workloads={"reliability": True}).attach().stage09()
    h.disks()
    sim.faults.add({"method": "POST", "path": "/v2/api/migrate-vm", "times": 1,
                    "action": {"operation": "fail", "msg": "target host lacks memory"}})
    with fails_clearly(r"the migration failed: target host lacks memory") as info:
        h.reliability()
    assert "check the migration tasks" in str(info.value).split(NEXT)[1]
    rel = h.state.take(ReliabilityResult)
    assert rel.ran and len(rel.migrations) == 3
    assert sorted(m["ok"] for m in rel.migrations) == [False, True, True]
    failed = next(m for m in rel.migrations if not m["ok"])
    vm = next(v for v in h.test_vms() if v.name == failed["vm"])
    assert vm.host_id == failed["from_host"], "a failed migration leaves the VM where it was"


def test_reliability_is_not_applicable_unless_asked_for(world, plan, harness):
    sim = world(plan)
    h = harness(sim, plan)
    with pytest.raises(pytest.skip.Exception, match="--reliability"):
        h.reliability()
    assert sim.count("POST", "/v2/api/migrate-vm") == 0


# =========================================================================== the model
@pytest.fixture(scope="module")
def all_flash_plan(tmp_path_factory):
    return load(write_plan(tmp_path_factory.mktemp("s10af"), overrides=ALL_FLASH))[0]


@pytest.mark.slow   # two clusters, every profile
def test_all_flash_beats_hybrid_on_every_profile(world, plan, all_flash_plan, harness):
    assert (plan.storage_arch, all_flash_plan.storage_arch) == ("hybrid-tiered", "allflash-flat")
    got = {}
    for p in (plan, all_flash_plan):
        h = _measured(harness(world(p), p, p.storage_arch))
        res = h.state.take(PerfResults)
        assert res.architecture == p.storage_arch and set(res.profiles) == set(PROFILES)
        assert all(f["passed"] for f in res.profiles.values()), "each passes its own architecture's floors"
        got[p.storage_arch] = res.profiles
    flash, hybrid = got["allflash-flat"], got["hybrid-tiered"]
    for name in PROFILES:
        f, hy = flash[name], hybrid[name]
        assert f["iops"] > hy["iops"] and f["mbps"] > hy["mbps"], (name, f["iops"], hy["iops"])
        assert f["lat_mean_ms"] < hy["lat_mean_ms"] and f["lat_p99_ms"] < hy["lat_p99_ms"], name


# =========================================================================== a whole run
@pytest.mark.slow
def test_a_run_below_threshold_shows_fail_and_the_thresholds_file_in_the_report(plan_file, tmp_path):
    floors = tmp_path / "contract.json"
    floors.write_text(json.dumps({"_source": "the contract (test)", "architectures": {"hybrid-tiered": {
        "1m-seqwrite": {"mbps_min": 10 ** 6, "_source": "contract §3"}}}}), encoding="utf-8")
    with simulator(plan_file) as sim:
        apply_preset(sim, "cloudtower-configured")
        run_dir = tmp_path / "r"
        proc = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir),
                         "--perf-thresholds", str(floors))
    got = outcomes(run_dir)
    assert proc.returncode != 0 and got["10.1m-seqwrite"] == "failed", proc.stdout[-3000:]
    assert {got[f"10.{n}"] for n in PROFILES if n != "1m-seqwrite"} == {"passed"}
    assert {got[s] for s in ("11.vms", "11.uploads", "11.verify")} == {"passed"}, "cleanup still runs"
    step = state_of(run_dir)["steps"]["10.1m-seqwrite"]
    assert "1,000,000" in step["cause"] and "MB/s" in step["cause"] and step["next"], step
    _, text = report_of(run_dir)
    section = text.split("Performance acceptance")[1]
    assert str(floors.resolve()) in section and "the contract (test)" in section
    assert "未通过 / FAIL" in section.split("1m-seqwrite（")[1].split("</tr>")[0]
