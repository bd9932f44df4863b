"""Stage 07b (the backup service) against the simulator: the steps one by one (in process), at ``cloudtower-configured``
(stages 01-06 done; stage 05's steps run first through the harness and publish the cluster), with the faults the
issue names: INSTALL_FAILED, a last chunk whose answer is lost while the server completed it, a registration slower
than 30 s, a VDS-name collision with another cluster, an expired token / cookie mid-stage, a rerun that reuses the
package, VLAN and service; a blank 集群管理信息!E5; the --backup-storage-ip rules. The assertions read CloudTower's
own state in the simulator."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from clients.addressing import AddressMap
from clients.base import TlsMode
from clients.deployment import DeploymentClient
from clients.fisheye import FisheyeClient
from fixtures.outputs import BackupNetwork, BackupPackage, BackupServiceFact, BackupStorageIp, Versions
from fixtures.session import NOT_APPLICABLE, backup_storage_ip_missing
from fixtures.steps import ClusterAddress, Packages
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .ct_harness import Harness, harnesses, simulators
from .suite_runs import load_steps

S = load_steps("test_07b_backup", "_s07b_")
UPLOAD_OP = "uploadCloudTowerApplicationPackage"


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """``example`` (3 hosts; the example's backup network row 7: vDS-Backup on ens162), ``no-backup-vds`` (row 7
    without VDS and NICs: the VLAN goes on the storage VDS)."""
    folder = tmp_path_factory.mktemp("s07b")
    made: dict[str, object] = {}

    def get(name: str):
        if name not in made:
            over = {"example": {}, "no-backup-vds": {(L.SHEET_NET, "C7"): None, (L.SHEET_NET, "J7"): None,
                                                     (L.SHEET_NET, "K7"): None}}[name]
            made[name] = load(write_example(folder / f"{name}.xlsx", hosts=3, business=1, overrides=over))[0]
        return made[name]

    return get


@pytest.fixture
def world(monkeypatch):
    with simulators(monkeypatch) as build:
        yield lambda plan, *profiles: build(plan, *profiles, preset="cloudtower-configured")


class Stage07b(Harness):
    """The harness with stage 07b's steps and the fixtures they take (packages, fisheye, cluster address, hosts)."""

    def __init__(self, sim, plan, tmp_path: Path, **options):
        super().__init__(sim, plan, tmp_path, **{"backup_timeout_min": 30, "backup_storage_ip": None,
                                                 "simulate": True, "packages": None, **options})
        self.amap = AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)
        tls = TlsMode(True, sim.ca_bundle)
        self.fisheye = FisheyeClient(str(plan.hosts[0].mgmt_ip), username=plan.cluster_admin_user,
                                     password=plan.cluster_admin_password, amap=self.amap, tls=tls)
        self.address = ClusterAddress(self.run, self.fisheye, self.amap, self.pacing)
        self.deploy = {str(h.mgmt_ip): DeploymentClient(str(h.mgmt_ip), amap=self.amap, tls=tls) for h in plan.hosts}
        self.packages = Packages(self.run)

    def close(self):
        self.fisheye.close()
        for c in self.deploy.values():
            c.close()
        super().close()

    def storage_ip(self):
        S.test_storage_ip(self.plan, self.run, self.amap, self.state, self.step("07b.storage_ip"), self.deploy)

    def package(self):
        S.test_package(self.plan, self.run, self.ct, self.packages, self.state, self.step("07b.package"), self.pacing)

    def network(self):
        S.test_storage_network(self.plan, self.run, self.ct, self.fisheye, self.address, self.state,
                               self.step("07b.network"), self.pacing)

    def service(self):
        S.test_backup_service(self.plan, self.run, self.ct, self.state, self.step("07b.service"), self.pacing)

    def attach_backup(self):
        S.test_attach_cluster(self.plan, self.ct, self.state, self.step("07b.attach"))

    def record(self):
        S.test_record(self.plan, self.ct, self.state, self.step("07b.record"))

    def backup(self):
        """Stage 07b in run order."""
        self.storage_ip()
        self.package()
        self.network()
        self.service()
        self.attach_backup()
        self.record()
        return self


@pytest.fixture
def harness(tmp_path):
    with harnesses(tmp_path, Stage07b) as make:
        yield make


def _counts(tower) -> tuple[int, int, int]:
    """(packages, backup VLAN creations, services) in CloudTower."""
    return len(tower.app_packages), len(tower.vlan_creations), len(tower.backup_services)


# =========================================================================== the normal path and a rerun
def test_backup_is_deployed_attached_and_recorded(world, plans, harness):
    plan = plans("example")
    sim = world(plan)
    h = harness(sim, plan).attach()
    h.backup()
    tower = h.tower
    assert _counts(tower) == (1, 1, 1)
    (task,) = tower.upload_tasks.values()
    path = next(h.packages.dir.glob("smtx-backup-dr-x86_64-2.2.0.tar.gz"))
    assert task.status == "SUCCESSED" and task.rejected == 0 and task.resent_after_complete == 0
    assert task.sha256 == hashlib.sha256(path.read_bytes()).hexdigest(), "the package arrived whole, in order"
    pkg = h.state.take(BackupPackage)
    assert pkg.how == "uploaded" and pkg.version == "2.2.0" and pkg.architecture == "X86_64"
    assert pkg.chunks == task.total_chunks and pkg.chunk_size == tower.upload_chunk_size
    sip = h.state.take(BackupStorageIp)
    assert sip.ip == "10.0.21.4" and sip.source == "simulated-default"        # E5's host part in the storage subnet
    net = h.state.take(BackupNetwork)
    assert (net.on, net.vds_name, net.vlan_name, net.vlan_tag, net.vds_created) == \
           ("backup", "vDS-Backup", "backup-network", 0, True)
    (svc,) = tower.backup_services.values()
    assert svc.name == "backup" and svc.app_name == "backup-backup"
    assert svc.networks["storage_network_ip"] == "10.0.21.4" and svc.networks["storage_network_vlan"] == net.vlan_id
    assert svc.networks["management_network_ip"] == str(plan.components["backup"].ip)
    assert tower.backup_status(svc) == "RUNNING" and svc.backup_cluster_ids == [h.state.take(
        S.CloudTowerCluster).id]
    fact = h.state.take(BackupServiceFact)
    assert (fact.status, fact.version, fact.how, fact.attach_how) == ("RUNNING", "2.2.0", "created", "attached")
    assert fact.clusters == [plan.cluster_name] and "M5" in fact.serial_note
    assert h.state.take(Versions).deployed["backup"] == "2.2.0"
    assert any("%" in line and "MB/s" in line for line in h.lines), "upload progress: % / MB/s / ETA"


@pytest.mark.slow   # a deployment and its rerun (~2 s): the fast suite keeps its margin under 90 s
def test_a_rerun_reuses_the_package_the_vlan_and_the_service(world, plans, harness):
    plan = plans("example")
    sim = world(plan)
    harness(sim, plan, "first").attach().backup()
    uploads = len(h_tasks := sim.state.cloudtower.tower(str(plan.cloudtower.ip)).upload_tasks)
    again = harness(sim, plan, "again").attach().backup()       # a new run (no state) against the same world
    tower = again.tower
    assert _counts(tower) == (1, 1, 1), "a rerun created something twice"
    assert len(h_tasks) == uploads == 1, "the package was uploaded again"
    assert len([v for v in sim.fisheye.vdses.values() if v.name == "vDS-Backup"]) == 1
    assert again.state.take(BackupPackage).how == "reused"
    assert again.state.take(BackupNetwork).vlan_created is False
    fact = again.state.take(BackupServiceFact)
    assert (fact.how, fact.attach_how) == ("already", "already")
    assert "not created again" in again.notes("07b.service")


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_the_vlan_goes_on_the_storage_vds_without_a_backup_network(world, plans, harness):
    plan = plans("no-backup-vds")
    sim = world(plan)
    h = harness(sim, plan).attach().backup()
    net = h.state.take(BackupNetwork)
    assert (net.on, net.vds_name, net.vds_created) == ("storage", plan.storage.vds, False)
    assert not [v for v in sim.fisheye.vdses.values() if v.name == "vDS-Backup"]


# =========================================================================== faults
def test_install_failed_fails_at_once_with_the_reason(world, plans, harness):
    plan = plans("example")
    sim = world(plan)
    h = harness(sim, plan).attach()
    sim.faults.add({"method": "POST", "path": "/api", "operation_name": "createBackupService",
                    "action": {"operation": "fail", "msg": "the VM backup-backup-0 did not become ready"}})
    for fn in (h.storage_ip, h.package, h.network):
        fn()
    # the service (INSTALL_FAILED) and its task (FAILED) are two reads: either may be the first to tell
    with pytest.raises(AssertionError, match=r"failed to install: status=(INSTALL_FAILED|INSTALLING; task .* FAILED)") \
            as exc:
        h.service()
    text = str(exc.value)
    assert "did not become ready" in text and "下一步 / next:" in text
    assert len(h.tower.backup_services) == 1
    assert h.state.pending_intents().get("07b.service", {}).get("service_id")
    with pytest.raises(AssertionError, match=r"INSTALL_FAILED"):      # resumed: looked at again, not created over
        h.service()
    assert len(h.tower.backup_services) == 1


def test_a_last_chunk_answer_lost_while_the_server_completed_is_confirmed_not_resent(world, plans, harness):
    plan = plans("example")
    sim = world(plan)
    h = harness(sim, plan).attach()
    h.storage_ip()
    path = h.packages.component(S.BACKUP, "X86_64", "2.2.0").path
    last = -(-path.stat().st_size // h.tower.upload_chunk_size)
    sim.faults.add({"method": "POST", "path": "/api", "operation_name": UPLOAD_OP, "nth": last, "times": 1,
                    "action": {"drop_after": True}})
    h.package()
    (task,) = h.tower.upload_tasks.values()
    assert task.status == "SUCCESSED" and task.resent_after_complete == 0 and task.rejected == 0
    pkg = h.state.take(BackupPackage)
    assert pkg.confirmed_by == "get-upload-tasks" and pkg.how == "uploaded"
    assert "not sent again" in h.notes("07b.package")


class Killed(BaseException):
    """Stands for the run's death mid-upload (escapes the uploader, as a SIGKILL would end it)."""


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_run_killed_mid_upload_continues_the_same_upload_task(world, plans, harness, monkeypatch):
    plan = plans("example")
    sim = world(plan)
    h = harness(sim, plan).attach()
    h.storage_ip()
    send, sent = S.backup.BackupUpload.send, []

    def dies_after_two(self, *args, **kwargs):
        if len(sent) == 2:
            raise Killed()
        sent.append(1)
        return send(self, *args, **kwargs)

    monkeypatch.setattr(S.backup.BackupUpload, "send", dies_after_two)
    with pytest.raises(Killed):
        h.package()
    monkeypatch.setattr(S.backup.BackupUpload, "send", send)
    h.package()                                     # resumed: the journal's upload task, from chunk 3 on
    (task,) = h.tower.upload_tasks.values()
    path = next(h.packages.dir.glob("smtx-backup-dr-x86_64-2.2.0.tar.gz"))
    assert task.status == "SUCCESSED" and task.rejected == 0
    assert task.sha256 is None or task.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert task.bytes_received == path.stat().st_size, "each chunk once"
    assert "resumed upload volume" in h.notes("07b.package")
    assert h.state.take(BackupPackage).id


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_registration_slower_than_30_s_is_waited_for(world, plans, harness):
    plan = plans("example")
    sim = world(plan)
    h = harness(sim, plan).attach()
    h.tower.package_register_s = 95.0
    h.storage_ip()
    h.package()
    pkg = h.state.take(BackupPackage)
    assert pkg.id and pkg.register_seconds and pkg.register_seconds > 30


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_a_storage_vds_of_the_same_name_on_another_cluster_is_never_picked(world, plans, harness):
    plan = plans("no-backup-vds")
    sim = world(plan)
    h = harness(sim, plan).attach()
    fc = h.tower.add_foreign_cluster(vdses=(plan.storage.vds,), first=True)
    h.backup()
    net = h.state.take(BackupNetwork)
    foreign = {v["id"] for v in fc["vdses"]}
    assert net.vds_name == plan.storage.vds and net.vds_id not in foreign
    assert [r.foreign for r in h.tower.vlan_creations.values()] == [False]


@pytest.mark.slow   # the fast suite keeps each stage's main paths; CI runs -m slow
def test_an_expired_token_and_cookie_mid_stage_log_in_again(world, plans, harness):
    plan = plans("example")
    sim = world(plan)
    h = harness(sim, plan).attach()
    h.storage_ip()
    h.package()
    assert h.tower.revoke_cookies() >= 1          # the cookie expires: GraphQL next (the service)
    assert h.tower.revoke_tokens() >= 1           # and the token: REST next (the VLAN)
    h.network()
    h.service()
    assert h.tower.revoke_cookies() >= 1
    h.attach_backup()
    h.record()
    assert h.ct.relogins >= 3
    assert h.state.take(BackupServiceFact).clusters == [plan.cluster_name]


# =========================================================================== optional component, storage IP
def test_a_blank_backup_address_makes_the_steps_not_applicable(world, plans, harness):
    plan = plans("example")
    comps = {**plan.components, "backup": replace(plan.components["backup"], ip=None)}
    blank = replace(plan, components=comps)
    sim = world(plan)
    h = harness(sim, blank).attach()
    for fn in (h.storage_ip, h.package, h.network, h.service, h.attach_backup, h.record):
        with pytest.raises(pytest.skip.Exception, match=NOT_APPLICABLE):
            fn()
    assert _counts(h.tower) == (0, 0, 0)
    assert backup_storage_ip_missing(blank, None) is None


def test_backup_storage_ip_rules(world, plans, harness):
    plan = plans("example")
    assert "--backup-storage-ip" in backup_storage_ip_missing(plan, None)        # real mode: refused at start
    assert backup_storage_ip_missing(plan, "10.0.21.50") is None
    sim = world(plan)
    for bad, says in (("10.0.22.5", "not a host address of the storage subnet"), ("not-an-ip", "not an IPv4"),
                      ("10.0.21.0", "not a host address"), (str(plan.hosts[0].storage_ip), "planned for something"),
                      (str(plan.storage.gateway), "planned for something")):
        h = harness(sim, plan, f"bad-{bad}", backup_storage_ip=bad)
        with pytest.raises(AssertionError, match=says):
            h.storage_ip()
    real = harness(sim, plan, "real", simulate=False)
    with pytest.raises(AssertionError, match="--backup-storage-ip IP"):
        real.storage_ip()
    given = harness(sim, plan, "given", backup_storage_ip="10.0.21.50")
    given.storage_ip()
    assert (given.state.take(BackupStorageIp).ip, given.state.take(BackupStorageIp).source) == ("10.0.21.50", "option")
    used = str(plan.cloudtower.ip)                 # an address something answers on (CloudTower), in its subnet
    in_mgmt = replace(plan, storage=replace(plan.storage, subnet=plan.mgmt.subnet, gateway=plan.mgmt.gateway))
    busy = harness(sim, in_mgmt, "busy", backup_storage_ip=used)
    with pytest.raises(AssertionError, match="planned for something|in use"):
        busy.storage_ip()


def test_a_real_run_without_backup_storage_ip_is_refused_in_one_line_before_any_contact(tmp_path):
    import os
    import subprocess
    import sys

    from openpyxl import load_workbook

    from .suite_runs import ROOT

    wb = load_workbook(write_example(tmp_path / "p.xlsx", hosts=3))
    wb.custom_doc_props.props.clear()                        # a customer's workbook (not the refused example)
    wb.save(tmp_path / "plan.xlsx")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST_", "PYTEST_ADDOPTS"))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--plan", str(tmp_path / "plan.xlsx"), "-m", "preflight",
                           "--run-dir", str(tmp_path / "run"), "--rootdir", str(ROOT), "--config-file",
                           str(ROOT / "pyproject.toml")], cwd=ROOT, env=env, capture_output=True, text=True,
                          encoding="utf-8", timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--backup-storage-ip" in errors[0] and "集群管理信息!E5" in errors[0], proc.stderr
    assert not (tmp_path / "run").exists()
