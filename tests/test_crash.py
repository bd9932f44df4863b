"""The crash-point matrix: a run killed anywhere resumes to green, with nothing created twice and nothing orphaned.

Each scenario is a chain of kill points on one simulated world: the main job is started and SIGKILLed at the
first point (tests/crashpoints.py, loaded with ``-p``), then ``--resume`` is started and killed at the next point,
and so on; a last ``--resume`` must end green. Then the simulator's own state is checked: one deployment, one
CloudTower VM, one installer run, every upload volume finished (none left ``uploading``), no job still pending,
no VDS / VLAN / organization twice.

* ``standalone``: the runs attach (``--simulator URL``) to a simulator started here; its world goes on while the
  run is dead (operations finish meanwhile), and its request log counts the mutating calls.
* ``inprocess``: ``--simulate``; the world lives and dies with the run, and is continued from the copy saved with
  state.json (same generation): operations in flight at the kill are still in flight on resume.

Every point is in ``-m crash`` (nightly-style; about five minutes on two cores with ``-n 2``); a sampled few are
also ``slow``, which CI runs. Step boundaries come from tests_deploy/ itself, so a new stage's steps join the
matrix by themselves; a stage with a new long operation adds its mid-operation points to ``MID_POINTS``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from plan.example import write_example
from plan.parse import load

from .crashpoints import ENV, SIGNAL_ENV
from .suite_runs import ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

BUSINESS = 3
KILLED = -9


def step_ids() -> list[str]:
    """Every acceptance step, in run order (the pytest-dependency names of tests_deploy/)."""
    ids = []
    for module in sorted((ROOT / "tests_deploy").glob("test_*.py")):
        for m in re.finditer(r'dependency\(name=(f?)"([^"]+)"', module.read_text(encoding="utf-8")):
            ids += [m.group(2)] if not m.group(1) else _profile_steps(m.group(2))
    return ids


def _profile_steps(template: str) -> list[str]:
    """Stage 10's parametrized steps (``name=f"10.{p.name}"``): one per fio profile of the data file."""
    assert template == "10.{p.name}", f"a parametrized step name the matrix does not know: {template}"
    from clients.fio import load_profiles

    return [f"10.{p.name}" for p in load_profiles()]


def boundaries(stage: str) -> list[str]:
    return [f"after:{s}" for s in step_ids() if s.startswith(stage)]


@dataclass(frozen=True)
class Scenario:
    name: str
    points: tuple[str, ...]
    inprocess: bool = False
    profiles: str = ""           # simulator profiles (mocks/profiles.py) of the world, e.g. "vm-nic-ip-update"

    def __str__(self) -> str:
        return self.name


# mid-operation points: (name, point); every long operation of a stage adds its own
MID_POINTS = (
    ("mid-deploy-poll", "deploy-poll:2"),
    ("mid-svt-upload", "upload-chunk:SMTX_VMTOOLS-*:1"),
    ("mid-iso-upload", "upload-chunk:cloudtower-*:3"),
    ("vm-job-submitted", "attached:04.vm"),
    ("mid-vm-create-job", "job-poll:1"),
    ("installer-started", "attached:04.install"),
    ("mid-install", "install-log:3"),
    ("connect-submitted", "attached:05.connect"),
    ("mid-connect", "connect-poll:2"),
    ("obs-upload-started", "attached:07a.package"),
    ("mid-obs-upload", "obs-chunk:2"),
    ("obs-instance-submitted", "attached:07a.instance"),
    ("mid-obs-install", "obs-poll:3"),
    ("mid-backup-upload", "backup-chunk:2"),
    ("backup-uploaded", "attached:07b.package"),
    ("backup-install-submitted", "attached:07b.service"),
    ("mid-backup-install", "backup-poll:3"),
    ("inspection-job-submitted", "attached:08.job"),
    ("mid-inspection-job", "inspection-poll:2"),
    ("inspection-export-submitted", "attached:08.export"),
    ("mid-inspection-export", "export-poll:2"),
    # stage 09: the test VM's disk (chunk 1 answered, the journal not yet written; all chunks sent, the upload not
    # yet recorded), the import, the clones and the starts (answered, the task id not yet in the intent; attached)
    ("mid-disk-upload", "elf-chunk:1"),
    ("disk-upload-sent", "upload-chunk:smtx-fio-worker-*.vmdk:1"),
    ("import-answered", "ct-answer:import-vm:1"),
    ("import-submitted", "attached:09.import"),
    ("clone-answered", "ct-answer:clone-vm:2"),
    ("clone-submitted", "attached:09.clones/smtx-acceptance-fio-03"),
    ("start-answered", "ct-answer:start-vm:2"),
    ("start-submitted", "attached:09.start/smtx-acceptance-fio-04"),
    # stage 10: fio in the test VMs (the third VM's command starting, the first two running)
    ("mid-precondition", "guest-cmd:fio --name=precondition *:3"),
    ("mid-fio-profile", "guest-cmd:fio --name=4k-randwrite *:3"),
    # stage 11: the second test VM's delete answered
    ("vm-delete-answered", "ct-answer:delete-vm:2"),
)
# mid-operation points that exist only under a simulator profile: (name, point, profiles)
PROFILED_POINTS = (
    ("nic-update-answered", "ct-answer:update-vm-nic:2", "vm-nic-ip-update"),
)

SCENARIOS = [
    *(Scenario(f"boundaries-{stage}", tuple(boundaries(stage))) for stage in ("01", "02", "03", "04", "05", "06", "07a",
                                                                                 "07b", "08", "09", "10", "11")),
    Scenario("boundaries-inprocess", tuple(f"after:{s}" for s in step_ids()[3::4]) + ("after:04.serial",),
             inprocess=True),
    *(Scenario(f"{name}-{where}", (point,), inprocess=where == "inprocess")
      for name, point in MID_POINTS for where in ("standalone", "inprocess")),
    *(Scenario(f"{name}-{where}", (point,), inprocess=where == "inprocess", profiles=profiles)
      for name, point, profiles in PROFILED_POINTS for where in ("standalone", "inprocess")),
]
# CI's sample (-m slow): a chain through every kind of long operation in each mode (tests/test_run_safety.py adds
# step boundaries, a clean stop on SIGTERM/SIGHUP and operations still in flight on a standalone simulator)
SAMPLE = [
    Scenario("sample-operations-inprocess", ("deploy-poll:2", "upload-chunk:cloudtower-*:3", "job-poll:1",
                                             "install-log:3", "connect-poll:2"), inprocess=True),
    Scenario("sample-operations-standalone", ("upload-chunk:SMTX_VMTOOLS-*:1", "attached:04.vm",
                                              "attached:04.install", "attached:05.connect")),
]


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    return write_example(tmp_path_factory.mktemp("crashplan") / "plan.xlsx", hosts=4, business=BUSINESS)


def suite(*args: str, crash: str | None = None, signal_name: str | None = None, profiles: str = "",
          timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m pytest ARGS`` from the suite folder with the crash-point plugin (rooted there: no re-run);
    ``profiles``: the in-process simulator's profiles (SMTX_SIM_PROFILE; none from the environment otherwise)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST_", "PYTEST_ADDOPTS", "SMTX_CRASH", "SMTX_SIM_PROFILE",
                                "SMTX_SIM_UPLOAD_PROFILE"))}
    if profiles:
        env["SMTX_SIM_PROFILE"] = profiles
    if crash:
        env[ENV] = crash
    if signal_name:
        env[SIGNAL_ENV] = signal_name
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-p", "tests.crashpoints", "--rootdir", str(ROOT),
                           "--config-file", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, encoding="utf-8", env=env)


def drive(plan_file: Path, run_dir: Path, points, target: list[str], before=None,
          profiles: str = "") -> list[subprocess.CompletedProcess]:
    """Kill the run at each point in turn (first a new run, then resumes), then resume to the end.
    ``before``: {point: fn()} called before the run that is to die at that point."""
    procs = []
    for n, point in enumerate(points):
        if before and point in before:
            before[point]()
        start = ["--run-dir", str(run_dir)] if n == 0 else ["--resume", str(run_dir)]
        proc = suite("--plan", str(plan_file), *target, *start, crash=point, profiles=profiles)
        procs.append(proc)
        assert proc.returncode == KILLED, (f"the run was not killed at {point} (exit {proc.returncode}): "
                                           f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    final = suite("--plan", str(plan_file), *target, *(["--resume", str(run_dir)] if points else
                                                       ["--run-dir", str(run_dir)]), profiles=profiles)
    procs.append(final)
    assert final.returncode == 0, f"the resume after {points[-1] if points else '-'} is not green:\n" \
                                  f"{final.stdout[-5000:]}{final.stderr[-2000:]}"
    return procs


def world_problems(sim, plan, *, requests: bool) -> list[str]:
    """What was created twice or left orphaned in a simulated world (empty: nothing)."""
    problems = []
    ops = sim.deployment.operations
    if len(ops) != 1:
        problems.append(f"{len(ops)} deploy operations")
    vms = list(sim.vms.vms.values())
    if [v.name for v in vms] != [plan.cloudtower.vm_name]:
        problems.append(f"VMs: {[v.name for v in vms]}")
    ip = str(plan.cloudtower.ip)
    runs = sim.install.runs_at(ip)
    if [r.outcome for r in runs] != ["success"]:
        problems.append(f"installer runs at {ip}: {[r.outcome for r in runs]}")
    uploads = list(sim.fisheye.uploads.values())
    orphans = [u.name for u in uploads if u.status == "uploading"]
    if orphans:
        problems.append(f"upload volumes left uploading: {orphans}")
    ready = [u.name for u in uploads if u.status == "ready"]
    if sorted(ready) != sorted(set(ready)) or len(ready) != 2:
        problems.append(f"images: {ready}")
    now = sim.clock.now()
    pending = [j.job_id for j in sim.fisheye.jobs.values() if j.state(now) not in ("done", "failed")]
    if pending:
        problems.append(f"jobs not ended: {pending}")
    vds = [v.name for v in sim.fisheye.vdses.values()]
    if sorted(vds) != sorted(set(vds)) or len(vds) != 3 + _backup_vds(plan):
        problems.append(f"VDSes: {vds}")
    vlans = [(v.vds_uuid, v.name) for v in sim.fisheye.vlans.values()]
    if len(vlans) != len(set(vlans)):
        problems.append(f"VLANs twice: {vlans}")
    problems += _tower_problems(sim.state.cloudtower.towers.get(ip), plan)
    problems += _test_vm_problems(sim.state.cloudtower.towers.get(ip), plan)
    if requests:
        for method, path in (("POST", "/api/v2/deployment/cluster"), ("POST", "/api/v2/vms"),
                             ("POST", "/api/v2/svt_image/create_volume"), ("POST", "/api/v2/images/upload/volume"),
                             ("POST", "/api/v3/users:setupRoot"), ("POST", "/v2/api/connect-cluster"),
                             ("POST", "/v2/api/create-datacenter")):
            n = sim.count(method, path)
            if n != 1:
                problems.append(f"{method} {path} sent {n} times")
    return problems


def _tower_problems(tower, plan) -> list[str]:
    """CloudTower: one organization, one datacenter, the cluster attached once and CONNECTED."""
    orgs = [o.name for o in tower.organizations.values()] if tower else None
    if orgs != [plan.customer]:
        return [f"organizations: {orgs}"]
    problems = []
    dcs = [d.name for d in tower.datacenters.values()]
    if dcs != [plan.datacenter]:
        problems.append(f"datacenters: {dcs}")
    clusters = [(c.ip, tower.connect_state(c)) for c in tower.clusters.values()]
    if clusters != [(str(plan.vip), "CONNECTED")]:
        problems.append(f"clusters in CloudTower: {clusters}")
    views = [v.name for v in tower.views.values()]          # stage 06: dashboards and racks, each once
    graphs = [(g.view_id, g.metric_name) for g in tower.graphs.values()]
    racks = [(r.cluster_id, r.name) for r in tower.rack_topoes.values()]
    for what, names in (("views", views), ("graphs", graphs), ("racks", racks)):
        if len(names) != len(set(names)):
            problems.append(f"{what} twice: {sorted(map(str, names))}")
    return problems + _obs_problems(tower, plan) + _backup_problems(tower, plan) + _inspection_problems(tower)


def _inspection_problems(tower) -> list[str]:
    """Stage 08: one inspection job (SUCCEEDED) and one export (EXPORT_SUCCEEDED)."""
    if not hasattr(tower, "inspector_jobs"):
        return []
    problems = []
    jobs = [(j.id, tower.inspection_job_status(j)) for j in tower.inspector_jobs.values()]
    if len(jobs) != 1 or jobs[0][1] != "SUCCEEDED":
        problems.append(f"inspection jobs: {jobs}")
    exports = [(e.filename, tower.export_state_of(e)[0]) for e in tower.inspector_exports.values()]
    if len(exports) != 1 or exports[0][1] != "EXPORT_SUCCEEDED":
        problems.append(f"inspection exports: {exports}")
    return problems


def _test_vm_problems(tower, plan) -> list[str]:
    """Stages 09-11: each test VM imported or cloned once (CloudTower's import / clone tasks, kept after the delete:
    one import, a clone for each other planned VM), every disk upload finished or cancelled, and at the end nothing
    named smtx-acceptance-fio-* left (VM, volume, upload task)."""
    if not plan.test_addresses() or not hasattr(tower, "ct_vms"):
        return []
    from clients.workloads import TEST_VM_PREFIX, plan_test_vms

    problems = []
    planned = [s.name for s in plan_test_vms(plan, None).slots]
    created = [(t.description.split(" ")[0], t.args.get("name")) for t in tower.tasks.values()
               if t.key in ("import_vm", "clone_vm")]
    want = [("Import", planned[0])] + [("Clone", n) for n in planned[1:]]
    if sorted(created) != sorted(want):
        problems.append(f"test VMs imported / cloned: {sorted(created)} (planned {want})")
    names = [v.name for v in tower.ct_vms.values()]
    if len(names) != len(set(names)):
        problems.append(f"VMs sharing a name: {sorted(names)}")
    left = [f"VM {v.name}" for v in tower.ct_vms.values() if v.name.startswith(TEST_VM_PREFIX)]
    left += [f"volume {v.name}" for v in tower.ct_volumes.values() if v.name.startswith(TEST_VM_PREFIX)]
    if left:
        problems.append(f"test objects left: {left}")
    disks = [(t.args.get("name"), t.status) for t in tower.upload_tasks.values()
             if t.resource_type.startswith("VM_VOLUME")]
    unfinished = [d for d in disks if d[1] != "SUCCESSED"]
    if unfinished or len(disks) != 1:
        problems.append(f"test VM disk uploads: {disks}")
    return problems


def _backup_vds(plan) -> int:
    """Stage 07b creates the plan's own backup VDS (虚拟网络 row 7: VDS and NICs) when the backup applies."""
    return int(plan.components["backup"].ip is not None and bool(plan.backup.vds and plan.backup.nics))


def _backup_problems(tower, plan) -> list[str]:
    """Stage 07b: one backup package, one backup VLAN, one service (RUNNING, the cluster attached), every upload task
    it started complete and no chunk sent after completion."""
    if plan.components["backup"].ip is None or not hasattr(tower, "backup_services"):
        return []
    problems = []
    packages = [(p.name, p.version, p.architecture) for p in tower.app_packages.values()]
    if len(packages) != 1:
        problems.append(f"backup packages: {packages}")
    vlans = [(r.vds_name, r.name) for r in tower.vlan_creations.values()]
    if len(vlans) != 1:
        problems.append(f"backup VLANs: {vlans}")
    services = [(s.name, tower.backup_status(s), len(s.backup_cluster_ids)) for s in tower.backup_services.values()]
    if services != [(plan.components["backup"].vm_name, "RUNNING", 1)]:
        problems.append(f"backup services: {services}")
    uploads = [(t.id, t.status, t.resent_after_complete) for t in tower.upload_tasks.values()
               if not t.resource_type.startswith("VM_VOLUME")]          # stage 09's disks are in the same store
    if len(uploads) != 1 or uploads[0][1:] != ("SUCCESSED", 0):
        problems.append(f"backup upload tasks: {uploads}")
    return problems


def _obs_problems(tower, plan) -> list[str]:
    """Stage 07a: one OBS package, one instance (SUCCESS) at the planned IP, no upload left half-done."""
    if plan.components["obs"].ip is None or not hasattr(tower, "obs_instances"):
        return []
    problems = []
    packages = [(p.version, p.arch) for p in tower.obs_packages.values()] if hasattr(tower, "obs_packages") else []
    if len(packages) != 1:
        problems.append(f"OBS packages: {packages}")
    instances = [(i.name, i.vm_spec.get("ip"), tower.obs_status(i)) for i in tower.obs_instances.values()]
    if len(instances) != 1 or instances[0][1:] != (str(plan.components["obs"].ip), "SUCCESS"):
        problems.append(f"OBS instances: {instances}")
    committed = [u.id for u in tower.obs_uploads.values() if u.status == "COMMITTED"]
    if len(committed) != 1:
        problems.append(f"OBS uploads committed: {committed}")
    return problems


def _simulator(plan, profiles: str):
    """A standalone simulator (tests/suite_runs.py's ``simulator``) playing ``profiles``."""
    from mocks.server import Simulator

    return Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False, profiles=profiles or [])


def saved_world(plan, run_dir: Path):
    """The in-process world as the last run left it (simulator-state.json), as a simulator (not serving)."""
    from mocks.server import Simulator

    snapshot = json.loads((run_dir / "simulator-state.json").read_text(encoding="utf-8"))
    assert snapshot["generation"] == json.loads((run_dir / "state.json").read_text(encoding="utf-8"))["generation"]
    return Simulator.from_plan(plan, time_scale=0.002, load_env_faults=False, snapshot=snapshot)


def run_scenario(plan_file: Path, run_dir: Path, sc: Scenario) -> None:
    plan, _ = load(plan_file)
    if sc.inprocess:
        drive(plan_file, run_dir, sc.points, ["--simulate"], profiles=sc.profiles)
        sim = saved_world(plan, run_dir)
        try:
            problems = world_problems(sim, plan, requests=False)
        finally:
            sim.close()
    else:
        with _simulator(plan, sc.profiles) as sim:
            drive(plan_file, run_dir, sc.points, ["--simulator", sim.control_url])
            problems = world_problems(sim, plan, requests=True)
    assert not problems, f"{sc.name}: " + "; ".join(problems)
    state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    assert not [k for k, v in state.get("intents", {}).items() if not v.get("ended")], state["intents"]
    assert all(v["outcome"] in ("passed", "not_applicable") for v in state["steps"].values()), \
        {k: v["outcome"] for k, v in state["steps"].items() if v["outcome"] != "passed"}


@pytest.mark.crash
@pytest.mark.parametrize("sc", SCENARIOS, ids=str)
def test_killed_anywhere_resumes_to_green_with_nothing_twice(plan_file, tmp_path, sc):
    run_scenario(plan_file, tmp_path / "run", sc)


@pytest.mark.slow
@pytest.mark.parametrize("sc", SAMPLE, ids=str)
def test_crash_sample(plan_file, tmp_path, sc):
    run_scenario(plan_file, tmp_path / "run", sc)
