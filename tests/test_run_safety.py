"""Crash-safe runs (issue 10): the simulated world saved with state.json under one generation, intent records
for long operations, one run per delivery folder, SSH host keys only from runs of the same mode.

The quick tests here run in the default selection; the ones that kill or stop whole runs are ``slow``
(tests/test_crash.py has the crash-point matrix itself).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from plan.example import write_example
from plan.parse import load

from .suite_runs import ROOT, simulator
from .test_crash import Scenario, drive, run_scenario, saved_world, suite, world_problems

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    return write_example(tmp_path_factory.mktemp("safetyplan") / "plan.xlsx", hosts=4, business=3)


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text(encoding="utf-8"))


def _simulated_run_dir(plan_file: Path, run_dir: Path, generation_of_world: int | None) -> None:
    """A delivery folder as a killed simulated run leaves it: state.json (generation 3) and, unless None, a saved
    world of the given generation."""
    plan, _ = load(plan_file)
    run_dir.mkdir(parents=True)
    state = {"version": 1, "plan": {"file": str(plan_file), "sha256": plan.sha256}, "cluster": plan.cluster_name,
             "mode": "simulated", "runs": [{"started": "2026-01-01T00:00:00Z", "ended": None, "resumed": False}],
             "steps": {"01.plan": {"outcome": "passed"}}, "outputs": {}, "generation": 3}
    (run_dir / "state.json").write_text(json.dumps(state), encoding="utf-8")
    if generation_of_world is not None:
        (run_dir / "simulator-state.json").write_text(json.dumps({"generation": generation_of_world, "fresh": True}),
                                                      encoding="utf-8")


# --- 1. the simulated world goes with state.json --------------------------------------------------------------

@pytest.mark.parametrize("world", [None, 2], ids=["missing", "other-generation"])
def test_resume_refuses_a_world_that_is_missing_or_of_another_generation(plan_file, tmp_path, world):
    run_dir = tmp_path / "killed"
    _simulated_run_dir(plan_file, run_dir, world)
    before = (run_dir / "state.json").read_bytes()
    proc = suite("--plan", str(plan_file), "--simulate", "--resume", str(run_dir), "-m", "preflight", timeout=120)
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and "generation 3" in errors[0] and "fresh world" in errors[0], proc.stderr
    assert (run_dir / "state.json").read_bytes() == before      # refused before anything was written


def test_world_and_state_are_written_as_pairs_and_a_kill_between_them_keeps_the_last_pair(tmp_path):
    from fixtures.run import RunState
    from mocks.remote import SimWorld, WorldMismatch

    state = RunState.create(tmp_path, plan_path=tmp_path / "p.xlsx", plan_sha256="x", cluster="c", mode="simulated")
    state.world = SimWorld(tmp_path, snapshot={"version": 1, "restore": {"marker": 1}})
    state.begin_run(resumed=False)
    state.record_step("01.plan", outcome="passed")
    assert _state(tmp_path)["generation"] == 2
    assert json.loads((tmp_path / "simulator-state.json").read_text())["generation"] == 2
    state.world.save(3)            # killed after the world was written, before state.json was
    world = SimWorld.load(tmp_path, 2)
    assert world.generation == 2 and world.snapshot["restore"] == {"marker": 1}
    world.save(3)                  # resumed, no simulator bound yet: the loaded world under the new generation
    assert json.loads((tmp_path / "simulator-state.json").read_text())["generation"] == 3
    with pytest.raises(WorldMismatch, match="generation 7"):
        SimWorld.load(tmp_path, 7)


def test_intent_records_are_written_before_and_after_the_call_with_the_world(tmp_path):
    from fixtures.run import RunState

    saved: list[int] = []
    state = RunState.create(tmp_path, plan_path=tmp_path / "p.xlsx", plan_sha256="x", cluster="c", mode="simulated")
    state.world = SimpleNamespace(save=saved.append)
    state.begin_run(resumed=False)
    with pytest.raises(KeyboardInterrupt):
        with state.intent("04.vm", op="create_vm") as it:
            assert it.earlier is None
            it.begin(vm_name="ct")
            on_disk = _state(tmp_path)["intents"]["04.vm"]
            assert on_disk["operation"] == "create_vm" and on_disk["started"] and "job_id" not in on_disk
            it.attach(job_id="j-1")
            assert _state(tmp_path)["intents"]["04.vm"]["job_id"] == "j-1"
            raise KeyboardInterrupt   # killed / interrupted while the job runs: the record stays pending
    assert saved == list(range(1, state.generation + 1))      # the world went with every write of state.json
    again = RunState.load(tmp_path, plan_sha256="x")
    assert list(again.pending_intents()) == ["04.vm"]
    with again.intent("04.vm", op="create_vm") as it:
        assert it.earlier["job_id"] == "j-1" and it.get("job_id") == "j-1"   # reattach to it
    assert again.pending_intents() == {} and _state(tmp_path)["intents"]["04.vm"]["ended"]
    with pytest.raises(KeyboardInterrupt):
        with again.intent("02.deploy", op="deploy") as it:
            it.begin()
            raise KeyboardInterrupt
    again.record_step("02.deploy", outcome="passed")   # it finished meanwhile; the step found it done
    assert again.pending_intents() == {}


@pytest.mark.slow
@posix_only
def test_killed_simulated_run_resumes_in_its_own_world(plan_file, tmp_path):
    """SIGKILL after the deployment: the resume continues that world (a fresh one would fail from 03 on)."""
    run_scenario(plan_file, tmp_path / "run", Scenario("after-deploy", ("after:02.deploy",), inprocess=True))


@pytest.mark.slow
@posix_only
@pytest.mark.parametrize("sig", ["TERM", "HUP"])
def test_sigterm_and_sighup_stop_the_run_cleanly_and_it_resumes(plan_file, tmp_path, sig):
    """Stopped mid-deploy: pytest winds down (exit 2), state.json and the world are one generation, the
    deployment still runs in the saved world and the resume waits for it."""
    run_dir = tmp_path / "run"
    proc = suite("--plan", str(plan_file), "--simulate", "--run-dir", str(run_dir), crash="deploy-poll:2",
                 signal_name=sig)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-2000:]
    state = _state(run_dir)
    world = json.loads((run_dir / "simulator-state.json").read_text(encoding="utf-8"))
    assert world["generation"] == state["generation"]
    assert state["runs"][-1]["ended"] and "02.deploy" in {k for k, v in state["intents"].items() if not v.get("ended")}
    assert not (run_dir / ".run.lock.json").exists()                     # the lock was released
    final = suite("--plan", str(plan_file), "--simulate", "--resume", str(run_dir))
    assert final.returncode == 0, final.stdout[-4000:]
    plan, _ = load(plan_file)
    sim = saved_world(plan, run_dir)
    try:
        assert world_problems(sim, plan, requests=False) == []
    finally:
        sim.close()


# --- 2. long operations in flight are reattached, not started again -------------------------------------------

@pytest.mark.slow
@posix_only
def test_resume_reattaches_to_the_vm_job_and_the_installer_still_running(plan_file, tmp_path):
    """Against a standalone simulator whose VM jobs and install take a while: killed while the VM-create job
    runs, then while the installer runs; each resume waits for / follows them: one POST, one installer run."""
    plan, _ = load(plan_file)
    with simulator(plan_file) as sim:
        def slow_operations():   # from 04.vm on: jobs take 4 s, the install 5 s (within the suite's limits)
            sim.clock.time_scale = 0.01
            sim.fisheye.job_running = 400.0
            sim.install.duration_s = 500.0

        drive(plan_file, tmp_path / "run", ("after:04.iso_upload", "job-poll:1", "install-log:2"),
              ["--simulator", sim.control_url], before={"job-poll:1": slow_operations})
        assert world_problems(sim, plan, requests=True) == []
    log = (tmp_path / "run" / "run.log").read_text(encoding="utf-8")      # every run of the folder appends
    assert "not submitted again" in log and "not started again" in log


# --- 4. one run per delivery folder ----------------------------------------------------------------------------

def test_a_second_run_or_resume_on_a_locked_folder_is_refused_naming_the_holder(plan_file, tmp_path):
    from filelock import FileLock

    run_dir = tmp_path / "busy"
    _simulated_run_dir(plan_file, run_dir, 3)
    holder = {"pid": 424242, "host": "other-host", "started": "2026-01-01T08:00:00Z"}
    with FileLock(str(run_dir / ".run.lock"), thread_local=False):
        (run_dir / ".run.lock.json").write_text(json.dumps(holder), encoding="utf-8")
        for args in (["--resume", str(run_dir)], ["--run-dir", str(run_dir)]):
            proc = suite("--plan", str(plan_file), "--simulate", *args, "-m", "preflight", timeout=120)
            assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
            assert len(errors) == 1, proc.stderr
            assert "in use by another run" in errors[0] and "PID 424242 @ other-host" in errors[0] \
                and "2026-01-01T08:00:00Z" in errors[0], errors[0]
    assert _state(run_dir)["generation"] == 3                      # nothing was written by the refused runs


def test_two_runs_started_together_on_one_folder_only_one_runs(plan_file, tmp_path):
    run_dir = tmp_path / "together"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_ADDOPTS"))}
    cmd = [sys.executable, "-m", "pytest", "--plan", str(plan_file), "--simulate", "--run-dir", str(run_dir),
           "-m", "preflight", "--rootdir", str(ROOT), "--config-file", str(ROOT / "pyproject.toml")]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 4], [(c, out[-1500:], err[-1500:]) for c, out, err in results]
    refused = next(err for c, _, err in results if c == 4)
    assert "in use by another run" in refused or "already holds a run" in refused, refused
    assert len(_state(run_dir)["runs"]) == 1


def test_run_lock_is_exclusive_and_released(tmp_path):
    from fixtures.run import RunLock, RunLocked

    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunLocked, match=rf"PID {os.getpid()} @ "):
        RunLock(tmp_path).acquire()
    first.release()
    assert not (tmp_path / ".run.lock.json").exists()
    RunLock(tmp_path).acquire().release()


# --- 5. SSH host keys only from runs of the same mode ----------------------------------------------------------

@pytest.mark.parametrize("mode, seeded", [("real", False), ("simulated", True)])
def test_known_hosts_are_seeded_only_from_a_run_of_the_same_mode(tmp_path, mode, seeded):
    from fixtures.session import _seed_known_hosts

    base = tmp_path / "reports"
    demo = base / "c1-20260101T000000Z"
    demo.mkdir(parents=True)
    (demo / "state.json").write_text(json.dumps({"cluster": "c1", "mode": "simulated"}), encoding="utf-8")
    (demo / "known_hosts").write_text("10.0.20.11 ssh-ed25519 AAAAsimulated\n", encoding="utf-8")
    run_dir = base / "c1-20260102T000000Z"
    run_dir.mkdir()
    ctx = SimpleNamespace(run_dir=run_dir, plan=SimpleNamespace(cluster_name="c1"), mode=mode,
                          simulate=mode == "simulated")
    _seed_known_hosts(base, ctx)
    assert (run_dir / "known_hosts").exists() is seeded

