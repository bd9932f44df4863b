"""Issue 12 items 2, 4 and 7 against the simulator: the CloudTower VM's network, deploy status timing, installer failure
detection. Each test fails on the suite as it was before (noted per test) and passes now. The acceptance steps are
called directly (tests_deploy modules loaded by path) with the real clients, run state and evidence."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from clients.addressing import AddressMap
from clients.base import TlsMode
from clients.deployment import DeploymentClient
from clients.fisheye import FisheyeClient
from clients.payloads import vm_network
from clients.poll import Pacing
from clients.ssh import SshClient
from fixtures.outputs import CloudTowerIso, CloudTowerVm, HostScans, Warnings
from fixtures.run import Evidence, Intent, RunState
from fixtures.steps import ClusterAddress, Step
from mocks import Simulator
from mocks.cloudtower_install import DONE_LINE, INSTALLER, RECOVERABLE_ERROR
from mocks.deployment.models import DEFAULT_DEPLOY_TOKEN
from mocks.ssh import ssh_service
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .suite_runs import load_steps
from .test_sim_fisheye import Api, deploy, host_ips
from .test_sim_vms import CHUNK, CT_PW, CT_USER, ISO_NAME, ready_tower_vm, upload_iso

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_POST = "/api/v2/deployment/cluster"


def _steps(name: str):
    return load_steps(name, "_issue12b_")


S02, S03, S04 = _steps("test_02_init_cluster"), _steps("test_03_config_cluster"), _steps("test_04_cloudtower")


# --------------------------------------------------------------------------- harness
@pytest.fixture
def make(monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    owned: list = []

    def build(plan, *profiles: str, deployed: bool = True, time_scale: float = 0.01) -> Simulator:
        sim = Simulator.from_plan(plan, time_scale=time_scale, load_env_faults=False, profiles=list(profiles)).start()
        owned.append(sim)
        if deployed:
            deploy(sim, plan)
        return sim

    yield build
    for o in reversed(owned):
        o.close()


def amap_of(sim) -> AddressMap:
    return AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)


def tls_of(sim) -> TlsMode:
    return TlsMode(True, sim.ca_bundle)


def fisheye_of(sim, plan) -> FisheyeClient:
    fe = FisheyeClient(host_ips(plan)[0], username=plan.cluster_admin_user, password=plan.cluster_admin_password,
                       amap=amap_of(sim), tls=tls_of(sim))
    fe.setup_root(plan.cluster_admin_password)
    fe.login()
    return fe


def run_of(plan, tmp_path):
    state = RunState.create(tmp_path, plan_path=tmp_path / "plan.xlsx", plan_sha256="0" * 64, cluster="c",
                            mode="simulate")
    return SimpleNamespace(plan=plan, state=state, evidence=Evidence(tmp_path), run_dir=tmp_path)


def notes(run, name: str) -> str:
    return "\n".join(run.evidence.notes.get(name, []))


@pytest.fixture(scope="module")
def shared_plan(tmp_path_factory):
    """存储独立: business networks on the management VDS."""
    return load(write_example(tmp_path_factory.mktemp("shared") / "plan.xlsx", hosts=3, business=2,
                              network_arch="存储独立"))[0]


@pytest.fixture(scope="module")
def extra_plan(tmp_path_factory):
    """The extra management network (虚拟网络 row 5) planned, with CloudTower's IP in it."""
    net = L.SHEET_NET
    return load(write_example(tmp_path_factory.mktemp("extra") / "plan.xlsx", hosts=3, business=1, overrides={
        (net, "F5"): 30, (net, "H5"): "10.0.30.0/24", (net, "I5"): "10.0.30.1",
        (L.SHEET_MGMT, "E3"): "10.0.30.5"}))[0]


# =========================================================================== item 2: the CloudTower VM's network
def test_the_management_vds_holds_mgt_network_and_default_and_refuses_a_vm_nic_on_the_system_network(
        make_world, plan):
    """Before: the management VDS held only mgt-network, and a VM NIC on it was accepted."""
    sim, api = make_world()
    mgmt = api.data(api.get("/api/v2/network/vds"))[0]
    vlans = api.data(api.get(f"/api/v2/network/vds/{mgmt['uuid']}/vlans"))
    assert [(v["name"], v["type"], v["vlan_id"]) for v in vlans] == [("mgt-network", 1, plan.mgmt.vlan_id or 0),
                                                                   ("default", 3, plan.mgmt.vlan_id or 0)]
    assert mgmt["vlans_count"] == 2                      # guide line 3187: vlans_num 2 on the management VDS
    system = vlans[0]
    from .test_sim_vms import vm_body
    body = vm_body(api, upload_iso(api)["image_path"])
    body["nics"][0]["vlan_uuid"] = system["uuid"]
    r = api.post("/api/v2/vms", json=body)
    assert r.status_code == 400 and "system network" in r.text and "mgt-network" in r.text, r.text
    body["nics"][0]["vlan_uuid"] = vlans[1]["uuid"]
    assert api.post("/api/v2/vms", json=body).status_code == 200


def test_the_vm_network_is_chosen_by_name_then_vlan_then_default():
    vlans = [{"name": "mgt-network", "type": 1, "vlan_id": 20}, {"name": "default", "type": 3, "vlan_id": 20},
             {"name": "Mgmt-VM", "type": 3, "vlan_id": 21}, {"name": "VLAN-20b", "type": 3, "vlan_id": 20}]
    assert vm_network(vlans, "Mgmt-VM", 99)["name"] == "Mgmt-VM"
    assert vm_network(vlans, "mgt-network", 20)["name"] == "default"     # a system network never qualifies
    assert vm_network(vlans, "nope", 21)["name"] == "Mgmt-VM"
    assert vm_network(vlans, "nope", 5)["name"] == "default"
    assert vm_network(vlans, "nope", 5, fallback=False) is None
    assert vm_network([vlans[0]], None, 20) is None


def _create_vm_step(sim, plan, tmp_path):
    """04.vm against a deployed simulator with the CloudTower ISO uploaded; returns (run, the VM's network)."""
    sim.clock.time_scale = 0.01
    sim.fisheye.chunk_size = CHUNK
    fe, amap, run = fisheye_of(sim, plan), amap_of(sim), run_of(plan, tmp_path)
    api = Api(sim, host_ips(plan)[0])
    assert api.login(plan.cluster_admin_password).status_code == 200
    try:
        vol = upload_iso(api, name=ISO_NAME)
    finally:
        api.http.close()
    run.state.put(CloudTowerIso(name=ISO_NAME, size=1, path=vol["image_path"], uuid=vol["image_uuid"]))
    pacing = Pacing(scale=0.01, echo=lambda line: None)
    try:
        return run, fe, ClusterAddress(run, fe, amap, pacing)
    except Exception:
        fe.close()
        raise


def _vm_vlan(sim, run) -> str:
    vm = sim.vms.vms[run.state.take(CloudTowerVm).uuid]
    return sim.fisheye.vlans[vm.nics[0]["vlan_uuid"]].name


def test_the_cloudtower_vm_goes_on_the_management_vm_network(make, plan, tmp_path):
    """Before: 04.vm put the NIC on mgt-network (type 1), which the simulator (as real gear) now refuses."""
    sim = make(plan)
    run, fe, where = _create_vm_step(sim, plan, tmp_path)
    try:
        S04.test_create_cloudtower_vm(plan, fe, where, run.state, Step("04.vm", run))
    finally:
        fe.close()
    assert _vm_vlan(sim, run) == "default"


def test_the_extra_management_network_is_built_and_the_cloudtower_vm_sits_on_it(make, extra_plan, tmp_path):
    """Before: 虚拟网络 row 5 was never built; the VM sat on the management VLAN with row 5's gateway and netmask."""
    plan = extra_plan
    assert plan.extra_mgmt.used and plan.cloudtower.ip in plan.extra_mgmt.subnet
    sim = make(plan)
    run, fe, where = _create_vm_step(sim, plan, tmp_path)
    try:
        S03.test_extra_mgmt_network(plan, fe, Step("03.mgmt_network", run))
        S03.test_extra_mgmt_network(plan, fe, Step("03.mgmt_network", run))          # a rerun keeps it
        S04.test_create_cloudtower_vm(plan, fe, where, run.state, Step("04.vm", run))
    finally:
        fe.close()
    mgmt = sim.fisheye.vds_by_name(plan.mgmt.vds)
    mine = [v for v in sim.fisheye.vlans.values() if v.name == plan.extra_mgmt.name]
    assert [(v.vds_uuid, v.vlan_id, v.type) for v in mine] == [(mgmt.uuid, 30, 3)]
    assert "kept" in notes(run, "03.mgmt_network")
    assert _vm_vlan(sim, run) == plan.extra_mgmt.name


def test_without_an_extra_network_the_step_passes_and_builds_nothing(make, plan, tmp_path):
    sim = make(plan)
    fe, run = fisheye_of(sim, plan), run_of(plan, tmp_path)
    before = dict(sim.fisheye.vlans)
    try:
        S03.test_extra_mgmt_network(plan, fe, Step("03.mgmt_network", run))
    finally:
        fe.close()
    assert sim.fisheye.vlans == before and "no extra management network" in notes(run, "03.mgmt_network")


def test_vlans_count_on_a_shared_management_vds_counts_the_system_networks(make, shared_plan, tmp_path):
    """Before: 03.vlans asserted vlans_count == the business networks, which fails where the management VDS also
    counts mgt-network and default (as on real gear)."""
    plan = shared_plan
    sim = make(plan)
    fe, run = fisheye_of(sim, plan), run_of(plan, tmp_path)
    try:
        S03.test_business_vds(plan, fe, None, run.state, Step("03.vds", run))
        S03.test_business_vlans(plan, fe, run.state, Step("03.vlans", run))
        S03.test_business_vlans(plan, fe, run.state, Step("03.vlans", run))              # a rerun: all kept
        mgmt = fe.find_vds(plan.mgmt.vds)
    finally:
        fe.close()
    assert mgmt["vlans_count"] == 2 + len(plan.business)


# =========================================================================== item 4: deploy status timing
def _deploy_setup(sim, plan, tmp_path):
    run = run_of(plan, tmp_path)
    clients = {str(h.mgmt_ip): DeploymentClient(str(h.mgmt_ip), token=DEFAULT_DEPLOY_TOKEN, amap=amap_of(sim),
                                                tls=tls_of(sim), on_call=run.evidence.on_call) for h in plan.hosts}
    first = clients[str(plan.hosts[0].mgmt_ip)]
    run.state.put(HostScans({ip: c.scan_host() for ip, c in clients.items()}))
    return run, clients, first


@pytest.mark.slow          # whole simulated runs: in the -m slow selection (CI runs it)
def test_the_deploy_step_passes_when_status_and_verify_lag(make, plan, tmp_path):
    """Before: right after the POST deploy_status answered "no task" (not running), so the wait ended at once and
    the one deploy_verify said not deployed."""
    sim = make(plan, "deploy-status-lags", deployed=False)
    assert sim.deployment.status_lag_s > 0 and sim.deployment.verify_lag_s > 0
    run, clients, first = _deploy_setup(sim, plan, tmp_path)
    try:
        S02.test_deploy_cluster(plan, clients, run.state, Step("02.deploy", run), Pacing(scale=0.01, echo=print))
    finally:
        for c in clients.values():
            c.close()
    assert sim.count("POST", DEPLOY_POST) == 1
    statuses = [r.status for r in sim.requests if r.path.endswith("/deploy_status")]
    assert 400 in statuses[1:] and 200 in statuses, statuses      # it lagged after the POST, then showed running
    verifies = [r for r in sim.requests if r.path.endswith("/deploy_verify")]
    assert len(verifies) > 2, "deploy_verify was asked again while it lagged"


@pytest.mark.slow          # whole simulated runs: in the -m slow selection (CI runs it)
def test_a_resume_inside_the_status_lag_does_not_deploy_twice(make, plan, tmp_path):
    """Before: a resume found deploy_status not running (the lag) and POSTed again (409 EDEPLOYING)."""
    sim = make(plan, "deploy-status-lags", deployed=False)
    run, clients, first = _deploy_setup(sim, plan, tmp_path)
    from clients.payloads import deploy_payload
    try:
        it = Intent(run.state, "02.deploy", "deploy")                    # what the killed run left behind
        it.begin(host=str(plan.hosts[0].mgmt_ip))
        first.deploy(deploy_payload(plan, run.state.take(HostScans).by_ip))
        it.attach(status="submitted")
        S02.test_deploy_cluster(plan, clients, run.state, Step("02.deploy", run), Pacing(scale=0.01, echo=print))
    finally:
        for c in clients.values():
            c.close()
    assert sim.count("POST", DEPLOY_POST) == 1
    assert "not resubmitting" in notes(run, "02.deploy")


@pytest.mark.slow          # whole simulated runs: in the -m slow selection (CI runs it)
def test_the_main_job_under_the_status_lag_profile(tmp_path, monkeypatch):
    pytest.importorskip("tests.suite_runs")
    from .suite_runs import outcomes, run_suite
    monkeypatch.setenv("SMTX_SIM_PROFILE", "deploy-status-lags,installer-log-recoverable-error")
    run_dir = tmp_path / "run"
    proc = run_suite("--plan", str(ROOT / "examples" / "plan-example.xlsx"), "--simulate", "--run-dir", str(run_dir),
                     "-m", "stage01 or stage02")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert set(outcomes(run_dir).values()) == {"passed"}


# =========================================================================== item 7: installer failure detection
@pytest.fixture
def tower(make_world, plan, tmp_path):
    sim, api = make_world()
    ip = str(plan.cloudtower.ip)
    ready_tower_vm(sim, api, plan, ip)
    c = SshClient(ip, amap=amap_of(sim), username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh", timeout=5)
    c.connect()
    sim.clock.time_scale = 0.001                    # the install (1200 simulated s) takes 1.2 s
    yield sim, c, ip
    c.close()


def _install(sim, plan, c, tmp_path):
    run = run_of(plan, tmp_path)
    S04.test_install_cloudtower(plan, c, None, amap_of(sim), run.state, Step("04.install", run),
                                Pacing(scale=0.001, echo=lambda line: None))
    return run


def test_pgrep_shows_the_installer_while_it_runs(tower, plan):
    sim, c, ip = tower
    svc = ssh_service(sim, ip)
    assert svc.run_command("pgrep -f 'installer/binary/[i]nstaller deploy'", user="root")[0] == 1
    sim.install.preinstalled.add(ip)
    c.write_file_sudo("/etc/resolv.conf", "".join(f"nameserver {d}\n" for d in plan.dns), timeout=5)
    sim.clock.time_scale = 1e6
    assert c.sudo(f"nohup {INSTALLER} deploy &", timeout=5).exit_status == 0
    status, out, _ = svc.run_command("pgrep -f 'installer/binary/[i]nstaller deploy'", user="root")
    assert status == 0 and out.strip().isdigit()
    sim.advance(1201)
    assert svc.run_command("pgrep -f 'installer/binary/[i]nstaller deploy'", user="root")[0] == 1


@pytest.mark.parametrize("how", ["knob", "fault"])
def test_an_installer_that_exits_without_the_success_line_fails_at_once(tower, plan, tmp_path, how):
    """Before: with neither an [ERROR] nor a "... Failed" line, the step waited for the stall limit and blamed the
    log for not growing."""
    sim, c, ip = tower
    if how == "knob":
        sim.install.exit_early = True
    else:
        sim.faults.add({"method": "INSTALLER", "action": {"operation": "fail", "stage": "exit"}})
    with pytest.raises(AssertionError, match="exited without the success line") as exc:
        _install(sim, plan, c, tmp_path)
    assert "stopped growing" not in str(exc.value)
    assert sim.install.state_of(ip) == "exited"


def test_a_recoverable_error_line_is_a_warning_not_a_failure(make_world, plan, tmp_path):
    """Before: any [ERROR] line failed the install step, though the installer went on and succeeded."""
    sim, api = make_world()
    from mocks.profiles import apply_profiles
    apply_profiles(sim, "installer-log-recoverable-error")
    ip = str(plan.cloudtower.ip)
    ready_tower_vm(sim, api, plan, ip)
    sim.clock.time_scale = 0.001
    with SshClient(ip, amap=amap_of(sim), username=CT_USER, password=CT_PW, known_hosts=tmp_path / "kh",
                   timeout=5) as c:
        run = _install(sim, plan, c, tmp_path)
    text = (tmp_path / "evidence" / "04.install" / "nohup.out.txt").read_text(encoding="utf-8")
    assert RECOVERABLE_ERROR in text and DONE_LINE in text
    warnings = (run.state.take(Warnings) or Warnings()).items
    assert any(RECOVERABLE_ERROR in w for w in warnings), warnings
    assert sim.install.state_of(ip) == "installed"


def test_a_hung_installer_still_fails_on_the_stall_limit(tower, plan, tmp_path):
    sim, c, ip = tower
    sim.install.stall = True
    with pytest.raises(AssertionError, match="stopped growing"):
        _install(sim, plan, c, tmp_path)
