"""Rerunning a finished deployment creates nothing twice (stages 01–05), read from one shared pair of runs.

Two real pytest processes attach (``--simulator``) to one simulator started here: the first run builds the
cluster and CloudTower, the second must find everything done. Every test here only reads that outcome, so the
two runs happen once for the module (and on one xdist worker: the suite distributes by module).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mocks.ssh import ssh_service
from plan.example import write_example
from plan.parse import load

from .suite_runs import leaks, report_of, run_suite, simulator, state_of

# two whole runs: with the other whole-run scenarios under -m slow (CI runs it); the fast suite keeps in-process
# reruns per stage (e.g. tests/test_stage05.py)
pytestmark = pytest.mark.slow

DEPLOY = "/api/v2/deployment/cluster"
BUSINESS = 3
VDS_CREATE, VLAN_CREATE = "/api/v2/network/vds", "/api/v2/network/vds/*/vlans"
VM_CREATE, ISO_VOLUME = "/api/v2/vms", "/api/v2/images/upload/volume"
INSTALLER = "*installer/binary/installer deploy*"


@dataclass
class Rerun:
    plan_file: Path
    sim: object          # mocks.server.Simulator, still serving: the tests read its state
    first: Path          # the two runs' delivery folders
    second: Path
    procs: list


@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    base = tmp_path_factory.mktemp("rerun")
    plan_file = write_example(base / "plan.xlsx", hosts=4, business=BUSINESS)
    with simulator(plan_file) as sim:
        procs = [run_suite("--plan", str(plan_file), "--simulator", sim.control_url, "--run-dir", str(base / f"r{n}"))
                 for n in (1, 2)]
        yield Rerun(plan_file, sim, base / "r1", base / "r2", procs)


def _tower(sim, plan_file):
    plan, _ = load(plan_file)
    return sim.state.cloudtower.towers[str(plan.cloudtower.ip)]


def test_rerun_of_a_deployed_cluster_does_not_deploy_again(rerun):
    for proc in rerun.procs:
        assert proc.returncode == 0, proc.stdout[-3000:]
    assert rerun.sim.count("POST", DEPLOY) == 1
    assert "already deployed" in report_of(rerun.second)[1]


def test_second_full_run_creates_nothing_twice(rerun):
    plan, _ = load(rerun.plan_file)
    sim = rerun.sim
    for proc in rerun.procs:
        assert proc.returncode == 0, proc.stdout[-4000:]
    assert sim.count("POST", "/api/v2/deployment/cluster") == 1
    assert sim.count("POST", VDS_CREATE, status=200) == 2   # the business VDS (03.vds), the backup VDS (07b.network)
    assert sim.count("POST", VLAN_CREATE, status=200) == BUSINESS
    assert sim.count("POST", "/api/v2/svt_image/create_volume") == 1
    assert sim.count("PUT", "/api/v2/elf/cluster_cpu_compatibility") == 1
    assert sim.count("POST", "/api/v3/users:setupRoot", status=200) == 1
    assert len(sim.fisheye.svt_images) == 1
    # SSH: the plan's passwords really are set, once; the default no longer works
    for h in plan.hosts:
        svc = ssh_service(sim, str(h.mgmt_ip))
        assert svc.password_ok(h.ssh_user, h.ssh_password) and svc.password_ok(h.admin_user, h.admin_password)
        assert not svc.password_ok("smartx", "P@ssw0rd!123")
        assert svc.password_changes("smartx") == 1 and svc.password_changes("root") == 1
    issued = set(sim.fisheye.secrets)  # every session token the simulator issued, and the passwords it saw
    assert sim.count("POST", "/api/v3/sessions", status=200) >= 2 and issued
    assert leaks([rerun.first, rerun.second], issued | plan.secrets()) == []
    second = state_of(rerun.second)["outputs"]
    assert set(second["host_passwords"].values()) == {"already"}
    assert second["svt"]["reused"] is True
    _, text = report_of(rerun.second)
    assert "已存在，复用 / already present" in text and "already so on 4" in text


def test_rerun_reuses_the_iso_the_vm_and_the_set_up_cloudtower(rerun):
    sim = rerun.sim
    for proc in rerun.procs:
        assert proc.returncode == 0, proc.stdout[-4000:]
    assert sim.count("POST", ISO_VOLUME, status=200) == 1
    assert sim.count("POST", VM_CREATE, status=200) == 1
    assert sim.count("SSH", INSTALLER) == 1
    assert sim.count("POST", "/api") > 0
    tower = _tower(sim, rerun.plan_file)
    assert [o.name for o in tower.organizations.values()] == [load(rerun.plan_file)[0].customer]
    assert tower.issued_tokens, "CloudTower issued REST tokens"
    assert leaks([rerun.first, rerun.second], set(tower.issued_tokens) | {"HC!r0cks"}) == []
    second = state_of(rerun.second)
    assert second["outputs"]["cloudtower_iso"]["reused"] is True
    notes = (rerun.second / "run.log").read_text(encoding="utf-8")
    assert "already installed" in notes or "已安装" in notes
    assert "root already created" in notes and "organization" in notes


def test_rerun_finds_the_cluster_attached_and_connects_nothing_twice(rerun):
    plan, _ = load(rerun.plan_file)
    sim = rerun.sim
    for proc in rerun.procs:
        assert proc.returncode == 0, proc.stdout[-4000:]
    tower = _tower(sim, rerun.plan_file)
    assert [d.name for d in tower.datacenters.values()] == [plan.datacenter]
    assert [(c.ip, tower.connect_state(c)) for c in tower.clusters.values()] == [(str(plan.vip), "CONNECTED")]
    assert sim.count("POST", "/v2/api/create-datacenter") == 1
    assert sim.count("POST", "/v2/api/connect-cluster") == 1
    first, second = (state_of(r)["outputs"] for r in (rerun.first, rerun.second))
    assert first["cloudtower_cluster"]["how"] == "connected" and first["cloudtower_datacenter"]["created"] is True
    assert second["cloudtower_cluster"]["how"] == "already" and second["cloudtower_datacenter"]["created"] is False
    assert second["cloudtower_cluster"]["id"] == first["cloudtower_cluster"]["id"]
    _, text = report_of(rerun.second)
    assert f"https://{plan.cloudtower.ip}" in text and plan.datacenter in text and "already attached" in text
