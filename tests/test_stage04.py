"""Stage 04 against the simulator: every fault the issue names, and reruns that create nothing twice.

Runs are real pytest processes attached (``--simulator``) to a simulator started here; assertions read
the simulated cluster's and CloudTower's own state.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from plan.example import write_example
from plan.parse import load

from .suite_runs import outcomes, run_suite, simulator, state_of

VM_CREATE, ISO_VOLUME, ISO_CHUNK = "/api/v2/vms", "/api/v2/images/upload/volume", "/api/v2/images/upload"
INSTALLER = "*installer/binary/installer deploy*"
STAGES = ("-m", "stage01 or stage02 or stage03 or stage04")


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    return write_example(tmp_path_factory.mktemp("ct") / "plan.xlsx", hosts=3, business=1)


@pytest.fixture
def sim(plan_file):
    with simulator(plan_file) as s:
        yield s


def _run(sim, plan_file, run_dir, *extra):
    return run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(run_dir),
                     *STAGES, *extra)


def _tower(sim, plan_file):
    plan, _ = load(plan_file)
    return sim.state.cloudtower.towers[str(plan.cloudtower.ip)]


@pytest.mark.slow
def test_resume_after_an_installer_error_creates_nothing_twice(plan_file, sim, tmp_path):
    run_dir = tmp_path / "run"
    sim.install.fail_with = "[ERROR] [docker] failed to load image tower-api: no space left on device"
    first = _run(sim, plan_file, run_dir)
    assert first.returncode == 1
    assert outcomes(run_dir)["04.install"] == "failed"
    assert "no space left on device" in first.stdout, "the step shows the log tail"
    assert "Install Operation Center Failed" in (run_dir / "evidence" / "04.install" / "nohup.out.txt").read_text()

    sim.install.fail_with = None
    second = run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--resume", str(run_dir), *STAGES)
    assert second.returncode == 0, second.stdout[-4000:]
    assert sim.count("POST", VM_CREATE, status=200) == 1 and sim.count("POST", ISO_VOLUME, status=200) == 1
    assert sim.count("SSH", INSTALLER) == 2  # the failed install, then the one that worked
    steps = state_of(run_dir)["steps"]
    assert steps["04.vm_ip"]["replayed"] and not steps["04.install"]["replayed"]


@pytest.mark.slow
def test_an_iso_chunk_failing_once_is_retried_and_a_vm_job_failure_is_reported(plan_file, sim, tmp_path):
    sim.faults.add({"method": "POST", "path": ISO_CHUNK, "nth": 2, "action": {"status": 500}})
    sim.faults.add({"method": "POST", "path": VM_CREATE,
                    "action": {"operation": "fail", "msg": "no host has 19 GiB of free memory"}})
    proc = _run(sim, plan_file, tmp_path / "run")
    got = outcomes(tmp_path / "run")
    assert got["04.iso_upload"] == "passed"
    assert state_of(tmp_path / "run")["outputs"]["cloudtower_iso"]["retries"] == 1
    assert got["04.vm"] == "failed" and "no host has 19 GiB of free memory" in proc.stdout
    assert got["04.serial"] == "blocked"


@pytest.mark.slow
def test_an_iso_chunk_failing_persistently_fails_after_one_recreate(plan_file, sim, tmp_path):
    sim.faults.add({"method": "POST", "path": ISO_CHUNK, "nth": 2, "times": 1000, "action": {"status": 503}})
    proc = _run(sim, plan_file, tmp_path / "run")
    assert outcomes(tmp_path / "run")["04.iso_upload"] == "failed"
    assert "recreated once" in proc.stdout
    assert sim.count("POST", ISO_VOLUME, status=200) == 2 and sim.count("DELETE", "/api/v2/images/*") == 2


@pytest.mark.slow
def test_a_guest_agent_that_never_comes_up_times_out_clearly(plan_file, sim, tmp_path):
    sim.vms.stall_guest_agent = True
    proc = _run(sim, plan_file, tmp_path / "run", "--cloudtower-timeout", "5")
    assert outcomes(tmp_path / "run")["04.os_install"] == "failed"
    assert "等待超时 / timed out" in proc.stdout and "--cloudtower-timeout" in proc.stdout


@pytest.mark.slow
def test_port_443_never_opening_fails_the_https_step(plan_file, sim, tmp_path):
    sim.install.never_open_443 = True
    proc = _run(sim, plan_file, tmp_path / "run")
    got = outcomes(tmp_path / "run")
    assert got["04.install"] == "passed" and got["04.https"] == "failed"
    assert "等待超时 / timed out" in proc.stdout and got["04.setup"] == "blocked"
    assert got["04.dns"] == "passed", "a branch that does not need HTTPS is not blocked"
