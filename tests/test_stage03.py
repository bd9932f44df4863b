"""Stage 03 against the simulator: faults, idempotent reruns, both network architectures, SSH passwords.

Each run is a real pytest process attached (``--simulator``) to a simulator started here, so the
assertions read the simulated cluster's own state.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from mocks.server import Simulator
from mocks.ssh import ssh_service
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .suite_runs import outcomes, run_suite, simulator, state_of

BUSINESS = 3
VDS_CREATE, VLAN_CREATE = "/api/v2/network/vds", "/api/v2/network/vds/*/vlans"
UPLOAD = "/api/v2/svt_image/upload_template"


def _plan(tmp_path_factory, name: str, **kw) -> Path:
    return write_example(tmp_path_factory.mktemp(name) / "plan.xlsx", hosts=4, business=BUSINESS, **kw)


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    return _plan(tmp_path_factory, "separate")


def _run(sim: Simulator, plan_file: Path, run_dir: Path, *extra: str):
    """Stages 01-03 only: later stages create VDSes of their own (07b's backup VDS) that these counts are not about."""
    return run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir),
                     "-m", "stage01 or stage02 or stage03", *extra)


@pytest.mark.slow
def test_resume_after_a_mid_stage_failure_creates_nothing_twice(plan_file, tmp_path):
    run_dir = tmp_path / "run"
    with simulator(plan_file) as sim:
        sim.faults.add({"method": "POST", "path": VLAN_CREATE, "nth": 2, "action": {"status": 500}})
        first = _run(sim, plan_file, run_dir)
        assert first.returncode == 1
        got = outcomes(run_dir)
        assert got["03.vlans"] == "failed"
        assert {got[s] for s in ("03.svt", "03.cpu", "03.ipmi", "03.host_passwords")} == {"passed"}
        assert "调用失败 / call failed: POST" in state_of(run_dir)["steps"]["03.vlans"]["message"] or \
            "HTTP 500" in first.stdout
        assert sim.count("POST", VLAN_CREATE) == 2  # the failed one was not retried blindly

        sim.faults.clear()
        second = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--resume", str(run_dir),
                           "-m", "stage01 or stage02 or stage03")
        assert second.returncode == 0, second.stdout[-4000:]
        assert sim.count("POST", VLAN_CREATE, status=200) == BUSINESS
        assert sim.count("POST", VDS_CREATE, status=200) == 1
        assert sim.count("POST", "/api/v2/svt_image/create_volume") == 1
    replayed = [k for k, v in state_of(run_dir)["steps"].items() if v.get("replayed")]
    assert replayed[-1] == "03.vds" and "03.vlans" not in replayed


@pytest.mark.slow
def test_faults_a_chunk_once_a_401_a_failed_job_and_a_broken_bmc(plan_file, tmp_path):
    plan, _ = load(plan_file)
    run_dir = tmp_path / "run"
    with simulator(plan_file) as sim:
        sim.faults.add({"method": "POST", "path": UPLOAD, "nth": 2, "action": {"status": 500}})
        sim.faults.add({"method": "GET", "path": "/api/v2/tools/license", "nth": 1, "action": {"status": 401}})
        sim.faults.add({"method": "PUT", "path": "/api/v2/settings/dns",
                        "action": {"operation": "fail", "msg": "dns-agent unreachable on node 2"}})
        sim.fisheye.break_bmc(str(plan.hosts[1].bmc_ip))
        proc = _run(sim, plan_file, run_dir)
        got = outcomes(run_dir)
        # a failed job fails its step with the job's message
        assert got["03.dns_ntp"] == "failed" and "dns-agent unreachable on node 2" in proc.stdout
        # IPMI names the failing node and its BMC, and blocks nothing else
        assert got["03.ipmi"] == "failed"
        assert f"{plan.hosts[1].hostname} (BMC {plan.hosts[1].bmc_ip})" in proc.stdout
        # the 401 mid-stage cost exactly one re-login: 03.root_password's proof login, 03.login, and one more
        assert got["03.license"] == "passed"
        assert sim.count("POST", "/api/v3/sessions", status=200) == 3
        # the chunk that failed once was retried; every chunk of the image arrived exactly once
        assert got["03.svt"] == "passed" and state_of(run_dir)["outputs"]["svt"]["retries"] == 1
        up = sim.fisheye.svt_images[0]
        assert up.received == [1] * up.chunks
        others = {k: v for k, v in got.items() if k not in ("03.dns_ntp", "03.ipmi")}
        assert set(others.values()) == {"passed"}


@pytest.mark.slow
def test_a_chunk_failing_three_times_recreates_the_volume(plan_file, tmp_path):
    with simulator(plan_file) as sim:
        sim.faults.add({"method": "POST", "path": UPLOAD, "nth": 2, "times": 3, "action": {"status": 503}})
        proc = _run(sim, plan_file, tmp_path / "run")
        assert proc.returncode == 0, proc.stdout[-4000:]
        svt = state_of(tmp_path / "run")["outputs"]["svt"]
        assert svt["recreated"] == 1
        assert sim.count("POST", "/api/v2/svt_image/create_volume") == 2
        assert sim.count("DELETE", "/api/v2/images/*") == 1
        assert len(sim.fisheye.svt_images) == 1 and sim.fisheye.svt_images[0].image_uuid == svt["image_uuid"]


@pytest.mark.slow
def test_mgmt_and_business_shared_puts_vlans_on_the_management_vds(tmp_path_factory, tmp_path):
    shared = _plan(tmp_path_factory, "shared", network_arch="存储独立")
    plan, findings = load(shared)
    assert plan.business_on_mgmt_vds and not [f for f in findings if f.is_error]
    with simulator(shared) as sim:
        proc = _run(sim, shared, tmp_path / "run")
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert sim.count("POST", VDS_CREATE) == 0
        assert sim.count("POST", VLAN_CREATE, status=200) == BUSINESS
    out = state_of(tmp_path / "run")["outputs"]
    assert out["business_vds"]["name"] == plan.mgmt.vds
    assert [v["vlan_id"] for v in out["vlans"]] == [n.vlan_id for n in plan.business]


@pytest.mark.slow
def test_write_back_updates_the_users_workbook_and_still_resumes(tmp_path_factory, tmp_path):
    from plan.xlsx import Workbook

    user_plan = _plan(tmp_path_factory, "writeback")
    run_dir = tmp_path / "run"
    with simulator(user_plan) as sim:
        proc = _run(sim, user_plan, run_dir, "--write-back")
        assert proc.returncode == 0, proc.stdout[-4000:]
        serial = sim.fisheye.license()["serial"]
        for book in (run_dir / user_plan.name, user_plan):
            with Workbook(book) as wb:
                assert wb.cell(L.SHEET_HOSTS, "E19").value == serial
        assert list(user_plan.parent.glob("plan.backup-*.xlsx")), "the original is kept beside it"
        again = run_suite("--plan", str(user_plan), "--simulator", sim.control_url, "--resume", str(run_dir))
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-1000:]


@pytest.mark.slow
def test_a_changed_ssh_host_key_on_a_later_run_fails_the_step(plan_file, tmp_path):
    plan, _ = load(plan_file)
    with simulator(plan_file) as sim:
        first = _run(sim, plan_file, tmp_path / "r1")
        assert first.returncode == 0, first.stdout[-3000:]
        assert str(plan.hosts[0].mgmt_ip) in (tmp_path / "r1" / "known_hosts").read_text()
        ssh_service(sim, str(plan.hosts[2].mgmt_ip)).rotate_host_key()  # host reinstalled, or an impostor
        second = _run(sim, plan_file, tmp_path / "r2")
    assert second.returncode == 1
    assert outcomes(tmp_path / "r2")["03.host_passwords"] == "failed"
    assert str(plan.hosts[2].mgmt_ip) in second.stdout and "ssh-keygen -R" in second.stdout
