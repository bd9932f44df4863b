"""The acceptance run end to end: real pytest runs of tests_deploy/ against the simulator on loopback.

Runs that must share one simulated world across two pytest processes (resume) attach to a simulator
started here with ``--simulator CONTROL_URL``, so the test can also assert on its state.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from clients.fio import load_profiles
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .suite_runs import disagreements, report_of, run_suite, simulator, state_of

DEPLOY = "/api/v2/deployment/cluster"
# every acceptance step in run order (the pytest-dependency names of tests_deploy/, module by module)
STEP_IDS = [n for m in sorted((Path(__file__).resolve().parents[1] / "tests_deploy").glob("test_*.py"))
            for n in re.findall(r'dependency\(name="([^"]+)"', m.read_text(encoding="utf-8"))]
# stage 10's profile steps are parametrized (one step per profile of tests_deploy/data/fio_profiles.json)
STEP_IDS[STEP_IDS.index("10.disks") + 1:STEP_IDS.index("10.disks") + 1] = [f"10.{p.name}" for p in load_profiles()]
OPT_IN = ["10.reliability"]     # not applicable unless asked for (--reliability)


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    return write_example(tmp_path_factory.mktemp("plan") / "plan.xlsx", hosts=4, business=3)


@pytest.fixture
def sim(plan_file):
    with simulator(plan_file) as s:
        yield s


@pytest.fixture(scope="module")
def full_run(plan_file, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "full"
    proc = run_suite("--plan", str(plan_file), "--simulate", "--run-dir", str(run_dir))
    return proc, run_dir


@pytest.mark.slow   # the whole simulated run of stages 01-11 (full_run): CI runs -m slow and the main job
def test_simulated_run_passes_and_leaves_a_delivery_folder(full_run):
    proc, run_dir = full_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{len(STEP_IDS) - len(OPT_IN)} passed, {len(OPT_IN)} skipped" in proc.stdout
    assert str(run_dir / "report.html") in proc.stdout
    for name in ("report.html", "junit.xml", "run.log", "state.json", "evidence/02.deploy/deploy-payload.json"):
        assert (run_dir / name).is_file(), name
    steps = state_of(run_dir)["steps"]
    assert list(steps)[:7] == ["01.plan", "01.hosts", "01.addresses", "01.ntp_dns", "01.versions", "02.scan",
                               "02.deploy"]
    assert list(steps) == STEP_IDS
    assert not (run_dir / ".sim-packages").exists() and not list(run_dir.rglob("*.iso"))
    assert {sid: s["outcome"] for sid, s in steps.items() if s["outcome"] != "passed"} == \
        {sid: "not_applicable" for sid in OPT_IN}


@pytest.mark.slow   # the whole simulated run of stages 01-11 (full_run): CI runs -m slow and the main job
def test_the_bundle_carries_the_as_built_facts_of_every_stage(full_run):
    """as-built.json in the handover bundle: what stages 05 and 08 really produced, not the plan."""
    import json
    import zipfile

    _, run_dir = full_run
    [bundle] = run_dir.glob("handover-*.zip")
    with zipfile.ZipFile(bundle) as z:
        data = json.loads(z.read("as-built.json"))
        names = z.namelist()
    attached = data["cloudtower_cluster"]
    assert attached["connect_state"] == "CONNECTED" and attached["local_id"] and attached["how"] == "connected"
    insp = data["inspection"]
    assert insp["job_id"] and insp["export"]["zip"] in names and insp["findings"]["recognised"] is True
    assert sum(insp["findings"]["by_severity"].values()) > 0 and insp["findings"]["not_ok"]


@pytest.mark.skipif(os.name == "nt", reason="Windows: the delivery folder keeps the default ACLs of its parent")
@pytest.mark.slow   # the whole simulated run of stages 01-11 (full_run): CI runs -m slow and the main job
def test_delivery_folder_and_secret_files_are_private(full_run, plan_file):
    """The workbook copy holds every password in clear: the folder is 0700, files with secrets (the workbook copy,
    the state files) 0600."""
    _, run_dir = full_run
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(run_dir) == 0o700
    for name in (plan_file.name, "state.json", "simulator-state.json"):
        assert mode(run_dir / name) == 0o600, name


@pytest.mark.slow   # the whole simulated run of stages 01-11 (full_run): CI runs -m slow and the main job
def test_report_is_the_handover_document(full_run):
    _, run_dir = full_run
    data, text = report_of(run_dir)
    assert data["title"] == "示例客户 超融合示例项目 SMTX 集群交付验收报告"
    env = data["environment"]
    assert env["模式 / Mode"] == "模拟 / simulated" and len(env["规划表 SHA-256 / Plan SHA-256"]) == 64
    assert env["结束时间 / Ended"] != "-" and "TLS" in env
    # no CI variables, no plugin list from pytest-metadata
    assert not {"Plugins", "Packages", "CI", "JENKINS_URL", "GITHUB_ACTIONS"} & set(env)
    assert data["initialSort"] == "original"
    assert "集群建成情况 / Cluster as built" in text and "磁盘角色 / Disk roles" in text
    assert "nvme0n1:cache" in text and "sdb:data" in text  # hybrid-tiered: NVMe cache, HDD data
    assert "说明 / Description" in text and "部署集群并确认" in text
    assert 'data-verdict="passed"' in text and "验收结论 / Verdict: 通过 / passed" in text
    assert "验收签字 / Sign-off" in text and "交付工程师 / Delivery engineer" in text
    assert "data:text" not in text and "evidence/02.deploy/deploy-payload.json" in text
    assert disagreements(run_dir) == []
    tests = list(data["tests"])
    assert tests == sorted(tests, key=lambda t: ("test_01" not in t, tests.index(t)))
    order = [next(i for i, t in enumerate(tests) if name in t)
             for name in ("test_plan_validates", "test_scan_hosts", "test_deploy_cluster")]
    assert order == sorted(order)


@pytest.mark.slow   # the whole simulated run of stages 01-11 (full_run): CI runs -m slow and the main job
def test_no_secret_reaches_any_output(full_run, plan_file):
    from clients.deployment import GUIDE_DEPLOY_TOKEN

    _, run_dir = full_run
    plan, _ = load(plan_file)
    secrets = plan.secrets() | {GUIDE_DEPLOY_TOKEN, "P@ssw0rd!123", "c+G6KvJYsKyQyY4U"}
    assert (run_dir / "simulator-state.json").exists()
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"report.html", "junit.xml", "run.log", "state.json"}
    leaks = [(p.name, s) for p in files for s in secrets if s in p.read_text(encoding="utf-8", errors="replace")]
    assert leaks == []


@pytest.mark.slow   # two whole runs (the fast suite keeps the in-process stage tests; CI runs -m slow)
def test_resume_after_injected_failure_deploys_exactly_once(plan_file, sim, tmp_path):
    run_dir = tmp_path / "run"
    # The deployment is accepted, then every status poll fails: step 02.deploy fails mid-way.
    sim.faults.add({"method": "GET", "path": "/api/v2/deployment/host/deploy_status", "nth": 2, "times": 3,
                    "action": {"drop": True}})
    first = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir))
    assert first.returncode == 1, first.stdout[-3000:]
    steps = state_of(run_dir)["steps"]
    assert steps["02.deploy"]["outcome"] == "failed"
    # the cause (the client's call and what came back) and its next action, not "file:line: ExcType"
    step = steps["02.deploy"]
    assert step["cause"].startswith("调用失败 / call failed: GET") and "deploy_status" in step["cause"]
    assert step["next"] and step["message"] == f"{step['cause']}\n下一步 / next: {step['next']}"
    assert not re.match(r"\S+\.py:\d+: \w", step["message"])
    _, text = report_of(run_dir)
    assert "未通过的步骤 / Steps that did not pass" in text and step["cause"] in text and step["next"] in text
    assert 'data-verdict="failed"' in text and "验收结论 / Verdict: 未通过 / failed" in text
    assert (run_dir / "evidence" / "02.deploy" / "traceback-run1.txt").is_file()
    assert disagreements(run_dir) == []
    assert sim.count("POST", DEPLOY, status=200) == 1

    sim.faults.clear()
    second = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--resume", str(run_dir))
    assert second.returncode == 0, second.stdout[-4000:]
    assert sim.count("POST", DEPLOY) == 1, "the resumed run must not deploy again"
    state = state_of(run_dir)
    assert len(state["runs"]) == 2 and state["runs"][1]["resumed"] is True
    assert [k for k, v in state["steps"].items() if v.get("replayed")] == ["01.plan", "01.hosts", "01.addresses",
                                                                           "01.ntp_dns", "01.versions", "02.scan"]
    assert state["steps"]["02.deploy"]["outcome"] == "passed"
    assert disagreements(run_dir) == []
    data, text = report_of(run_dir)
    assert len(data["tests"]) == len(STEP_IDS), "the resumed report covers every step of the run, earlier passes included"
    assert all(rows[0]["result"] == "Passed" for nodeid, rows in data["tests"].items() if "test_reliability" not in nodeid)
    assert "沿用上次运行" in text
    # one report across attempts: carried-over steps say the attempt they passed in; the attempts are listed
    assert text.count("沿用上次结果（第 1 次运行通过）/ carried over (passed in attempt 1)") >= 6
    assert "通过（第 2 次运行）/ passed (attempt 2)" in text
    assert "运行记录 / Attempts" in text and "续跑 / resumed" in text and 'data-verdict="passed"' in text


@pytest.mark.slow   # the whole simulated run of stages 01-11 (full_run): CI runs -m slow and the main job
def test_resume_refuses_a_changed_plan(plan_file, tmp_path, full_run):
    _, run_dir = full_run
    changed = write_example(tmp_path / "changed.xlsx", hosts=4, business=3,
                            overrides={(L.SHEET_DOC, "C16"): "另一个项目"})
    proc = run_suite("--plan", str(changed), "--simulate", "--resume", str(run_dir))
    assert proc.returncode == 4
    assert "规划表自上次运行后已变更" in proc.stderr + proc.stdout


@pytest.mark.parametrize("flag", [["--lf"], ["--sw"], ["-k", "deploy"]])
def test_selection_flags_that_hide_dependent_steps_are_refused(plan_file, tmp_path, flag):
    proc = run_suite("--plan", str(plan_file), "--simulate", "--run-dir", str(tmp_path / "r"), *flag)
    assert proc.returncode == 4
    assert "--resume" in proc.stderr + proc.stdout


def test_plan_with_errors_blocks_every_step_that_changes_the_cluster(tmp_path):
    bad = write_example(tmp_path / "bad.xlsx", hosts=4, overrides={(L.SHEET_HOSTS, "N4"): "10.0.99.12"})
    with simulator(bad) as s:
        proc = run_suite("--plan", str(bad), "--simulator", s.control_url, "--run-dir", str(tmp_path / "r"))
        assert s.count("POST") == 0
    assert proc.returncode == 1
    assert "PLAN-NOT-IN-STORAGE-SUBNET" in proc.stdout
    steps = state_of(tmp_path / "r")["steps"]
    assert steps["01.plan"]["outcome"] == "failed"
    assert steps["02.scan"]["outcome"] == "blocked" and steps["02.scan"]["blocked_by"] == "01.plan"
    assert "被 01.plan 阻塞 / blocked by 01.plan" in report_of(tmp_path / "r")[1]
    assert disagreements(tmp_path / "r") == []


def test_preflight_changes_nothing(plan_file, sim, tmp_path):
    proc = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(tmp_path / "r"),
                     "-m", "preflight")
    assert proc.returncode == 0, proc.stdout[-3000:]
    steps = state_of(tmp_path / "r")["steps"]
    # stage 01, and the later stages' own checks that change nothing (07b.storage_ip: the backup VM's address; 09.image
    # and 09.plan: the test VM image and the test VMs' hosts and addresses)
    assert list(steps) == [s for s in STEP_IDS if s.startswith("01.")] + ["07b.storage_ip", "09.image", "09.plan"]
    assert re.search(rf"{len(steps)} passed, \d+ deselected", proc.stdout)
    assert sim.count() > 0 and sim.count("POST") == sim.count("PUT") == sim.count("DELETE") == 0


def test_a_run_where_nothing_ran_is_not_a_success(plan_file, sim, tmp_path):
    proc = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(tmp_path / "r"),
                     "-m", "stage02")
    assert proc.returncode == 1
    assert "没有执行任何验收步骤" in proc.stdout
    assert sim.count("POST") == 0


@pytest.mark.slow
def test_work_the_plan_does_not_call_for_is_not_applicable_never_blocked(tmp_path):
    """16 hosts, no business networks, no BMC addresses: those steps and their dependants are *not applicable*
    (state, terminal and report say so with the reason); nothing is blocked and the run passes."""
    plan_file = write_example(tmp_path / "plan16.xlsx", hosts=16, business=0,
                              overrides={(L.SHEET_HOSTS, f"E{r}"): None for r in range(3, 19)})
    run_dir = tmp_path / "r"
    proc = run_suite("--plan", str(plan_file), "--simulate", "--run-dir", str(run_dir), "-rs")
    assert proc.returncode == 0, proc.stdout[-4000:]
    steps = state_of(run_dir)["steps"]
    na = {sid: s for sid, s in steps.items() if s["outcome"] == "not_applicable"}
    assert {"03.vds", "03.vlans", "03.ipmi"} <= set(na), {k: v["outcome"] for k, v in steps.items()}
    assert not [sid for sid, s in steps.items() if s["outcome"] in ("blocked", "failed", "error")]
    assert "the plan has no business networks" in na["03.vds"]["cause"]
    assert "03.vds" in na["03.vlans"]["cause"] and "not applicable" in na["03.vlans"]["cause"]
    assert "blocked" not in proc.stdout and "阻塞" not in proc.stdout
    assert "不适用 / not applicable, 依赖的步骤 03.vds 不适用" in proc.stdout
    _, text = report_of(run_dir)
    assert "不适用 / Not applicable" in text and "Blocked by" not in text
    assert disagreements(run_dir) == []
    assert state_of(run_dir)["outputs"]["cloudtower_cluster"]["host_num"] == 16
