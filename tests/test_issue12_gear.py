"""Issue 12 ("green in the simulator must mean green on real gear"), items 3, 5, 6, 8 and 9, against the simulator.

Each test fails on the suite as it was before (noted per test) and passes now; where the vendor sources differ the
simulator plays each behaviour as a profile (mocks/profiles.py) and the test runs under every one of them. The
acceptance steps are called directly (tests_deploy modules loaded by path) with the real clients, run state and
evidence; the slow test at the end runs the main job under every profile."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from clients.addressing import AddressMap
from clients.base import ApiError, TlsMode
from clients.deployment import DeploymentClient
from clients.fisheye import FisheyeClient, SvtUpload
from clients.payloads import business_vds_body, deploy_payload, l2_host_ips, same_bond_mode
from clients.poll import Pacing, WaitTimeout
from clients.ssh import HostPasswords, can_login
from clients.upload import upload_file
from fixtures.run import Evidence, RunState
from fixtures.steps import ClusterAddress, Step
from mocks import Simulator
from mocks.deployment.models import DEFAULT_DEPLOY_TOKEN
from mocks.profiles import META_PROFILES, PROFILES, from_env, groups, parse
from mocks.ssh import ssh_service
from plan import layout as L
from plan.example import write_example
from plan.parse import load

from .suite_runs import load_steps, outcomes, run_suite
from .test_sim_fisheye import deploy, host_ips
from .test_upload import MemoryJournal

ROOT = Path(__file__).resolve().parents[1]
SVT_UPLOAD = "/api/v2/svt_image/upload_template"


def _steps(name: str):
    return load_steps(name, "_issue12_")


S01, S03, S04 = _steps("test_01_prepare"), _steps("test_03_config_cluster"), _steps("test_04_cloudtower")


# --------------------------------------------------------------------------- harness
@pytest.fixture
def make(plan, monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    owned: list = []

    def build(*profiles: str, deployed: bool = True, the_plan=None, time_scale: float = 0.01) -> Simulator:
        p = the_plan or plan
        sim = Simulator.from_plan(p, time_scale=time_scale, load_env_faults=False, profiles=list(profiles)).start()
        owned.append(sim)
        if deployed:
            sim.scans = deploy(sim, p)
        return sim

    yield build
    for o in reversed(owned):
        o.close()


def amap_of(sim) -> AddressMap:
    return AddressMap(simulate=True, mapping=sim.address_map, alive=sim.is_alive)


def fisheye_of(sim, plan, *, setup: bool = True) -> FisheyeClient:
    fe = FisheyeClient(host_ips(plan)[0], username=plan.cluster_admin_user, password=plan.cluster_admin_password,
                       amap=amap_of(sim), tls=TlsMode(True, sim.ca_bundle))
    if setup:
        fe.setup_root(plan.cluster_admin_password)
        fe.login()
    return fe


def pacing_of(sim) -> Pacing:
    return Pacing(scale=sim.clock.time_scale, echo=lambda line: None)


@pytest.fixture
def run(plan, tmp_path):
    state = RunState.create(tmp_path, plan_path=tmp_path / "plan.xlsx", plan_sha256="0" * 64, cluster="c",
                            mode="simulate")
    return SimpleNamespace(plan=plan, state=state, evidence=Evidence(tmp_path), run_dir=tmp_path)


def step_of(run, name: str) -> Step:
    return Step(name, run)


def notes(run, name: str) -> str:
    return "\n".join(run.evidence.notes.get(name, []))


# --------------------------------------------------------------------------- profiles
def test_profiles_are_chosen_by_environment_and_checked():
    assert [p.name for p in from_env({"SMTX_SIM_PROFILE": "sudo-nopasswd, vip-job"})] == ["sudo-nopasswd", "vip-job"]
    assert [p.name for p in from_env({"SMTX_SIM_UPLOAD_PROFILE": "opaque"})] == ["upload-opaque"]   # older spelling
    assert {p.name for p in parse("real-gear")} == set(META_PROFILES["real-gear"])
    with pytest.raises(ValueError, match="both choose 'vip'"):
        parse("vip-job,vip-no-job")
    with pytest.raises(ValueError, match="unknown simulator profile 'nope'"):
        from_env({"SMTX_SIM_PROFILE": "nope"})
    assert all(sum(p.default for p in members) == 1 for members in groups().values())


def test_a_simulator_reports_its_profiles(make, monkeypatch):
    monkeypatch.setenv("SMTX_SIM_PROFILE", "vip-job,sudo-nopasswd")
    monkeypatch.setenv("SMTX_SIM_UPLOAD_PROFILE", "listed")
    sim = make(deployed=False)                                  # profiles=[]: explicit, the environment is ignored
    assert "vip-no-job" in sim.profiles and "sudo-password" in sim.profiles
    env_sim = Simulator.from_plan(sim.plan, load_env_faults=False)          # profiles=None: the environment
    try:
        assert {"vip-job", "sudo-nopasswd", "upload-listed"} <= set(env_sim.profiles)
        assert env_sim.fisheye.upload_profile == "listed" and env_sim.fisheye.cluster_settings.vip_mode == "job"
    finally:
        env_sim.close()


# --------------------------------------------------------------------------- item 3: host passwords over SSH
@pytest.mark.parametrize("profile", ["sudo-password", "sudo-nopasswd"])
def test_host_passwords_under_each_sudo_profile(make, plan, tmp_path, profile):
    """Before: chpasswd always got the sudo password as its first line; under NOPASSWD it failed."""
    sim = make(profile)
    host = plan.hosts[0]
    svc = ssh_service(sim, str(host.mgmt_ip))
    hp = HostPasswords(amap=amap_of(sim), known_hosts=tmp_path / "known_hosts")
    assert hp.set_host_passwords(host) == "changed"
    assert hp.set_host_passwords(host) == "already"
    amap = amap_of(sim)
    assert can_login(str(host.mgmt_ip), host.ssh_user, host.ssh_password, amap=amap, known_hosts=tmp_path / "kh")
    assert can_login(str(host.mgmt_ip), host.admin_user, host.admin_password, amap=amap, known_hosts=tmp_path / "kh")
    commands = [c.command for c in svc.commands]
    secrets = {host.ssh_password, host.admin_password, "P@ssw0rd!123"}
    assert not [c for c in commands for s in secrets if s in c], "a password on a command line"
    assert any(c == "sudo -n true" for c in commands)
    chpasswd = [c for c in commands if "chpasswd" in c]
    want = "sudo -n chpasswd" if profile == "sudo-nopasswd" else "sudo -S -p '' chpasswd"
    assert chpasswd and all(want in c for c in chpasswd), chpasswd


# --------------------------------------------------------------------------- item 5: VIP
def test_default_vip_answers_no_job_and_comes_up_after_a_delay(make, plan):
    """Before: the simulator answered a job, and the step checked 443 of the VIP right after the PUT."""
    sim = make()
    fe, vip = fisheye_of(sim, plan), str(plan.vip)
    assert fe.set_vip(vip) == {}                                  # the guide (lines 546-558) shows no answer
    assert not amap_of(sim).tcp_open(vip, 443, timeout=1)         # the old step's immediate check would fail here
    fe.wait_vip(vip, answers=lambda a: amap_of(sim).tcp_open(a, 443, timeout=1), pacing=pacing_of(sim))
    assert amap_of(sim).tcp_open(vip, 443, timeout=1)


@pytest.mark.parametrize("profile", ["vip-no-job", "vip-empty-body", "vip-job"])
def test_vip_step_passes_under_each_vip_profile(make, plan, run, profile):
    sim = make(profile)
    fe, amap, pacing = fisheye_of(sim, plan), amap_of(sim), pacing_of(sim)
    S03.test_set_vip(plan, fe, ClusterAddress(run, fe, amap, pacing), run.state, step_of(run, "03.vip"), amap, pacing)
    assert fe.address == str(plan.vip)
    assert ("no job came back" in notes(run, "03.vip")) == (profile != "vip-job")


def test_a_vip_that_never_answers_fails_within_the_limit(make, plan, run):
    sim = make()
    sim.faults.add({"method": "PUT", "path": "/api/v2/settings/vip", "action": {"operation": "fail", "msg": "x"}})
    fe, amap = fisheye_of(sim, plan), amap_of(sim)
    pacing = Pacing(scale=0.0005, echo=lambda line: None)
    with pytest.raises(WaitTimeout, match="the VIP .* to answer"):
        S03.test_set_vip(plan, fe, ClusterAddress(run, fe, amap, pacing), run.state, step_of(run, "03.vip"), amap,
                         pacing)


# --------------------------------------------------------------------------- item 6: chunk re-send
class _LateSvt(SvtUpload):
    """The SVT upload API with a short chunk timeout, and a delete that fails the test."""

    def send(self, volume, num, chunk):
        return self.fisheye.call("POST", SVT_UPLOAD, params={"zbs_volume_id": volume["zbs_volume_id"],
                                                             "chunk_num": num, "image_uuid": volume["image_uuid"]},
                                 files={"file": (chunk.name, chunk, "application/octet-stream")}, timeout=0.5)

    def delete(self, volume):
        raise AssertionError(f"the upload volume {volume['image_uuid']} was deleted (restarting 8 GB)")


@pytest.mark.parametrize("profile", ["upload-status", "upload-opaque"])
def test_a_late_last_chunk_answer_does_not_restart_an_8gb_upload(make, plan, tmp_path, profile):
    """Before: the late chunk was re-sent; the simulator (like the real server) refuses a chunk once the upload is
    complete, so after the retries the 8 GB volume was deleted and uploaded again."""
    sim = make(profile)
    fe = fisheye_of(sim, plan)
    iso = tmp_path / "SMTX_VMTOOLS-8g.iso"
    with open(iso, "wb") as fh:
        fh.truncate(8 * 1024 ** 3 + 12345)                         # sparse: 8 GB without the disk space
    size, stat = iso.stat().st_size, iso.stat()
    volume = fe.svt_create_volume(iso.name, size)
    up = sim.fisheye.uploads[volume["image_uuid"]]
    last = up.chunks - 1
    up.received = [1] * last + [0]                                 # every chunk but the last is on the server
    journal = MemoryJournal()
    journal.record = {"file": iso.name, "size": size, "mtime_ns": stat.st_mtime_ns, "next_chunk": last,
                      **{k: volume[k] for k in ("image_uuid", "zbs_volume_id", "chunk_size", "image_path")}}
    sim.faults.add({"method": "POST", "path": SVT_UPLOAD, "times": 1, "action": {"delay": 2.0}})   # a late answer
    result = upload_file(iso, _LateSvt(fe), journal=journal)
    assert up.status == "ready" and result.recreated == 0 and result.volume["image_uuid"] == up.image_uuid
    assert sim.count("POST", SVT_UPLOAD) == 1 and up.resent_after_complete == 0
    assert sim.count("DELETE") == 0 and sim.count("POST", "/api/v2/svt_image/create_volume") == 1
    assert any("not sent again" in n for n in result.notes), result.notes


def test_the_simulator_refuses_a_chunk_after_completion(make, plan, tmp_path):
    sim = make()
    fe = fisheye_of(sim, plan)
    sim.fisheye.chunk_size = 4096
    vol = fe.svt_create_volume("x.iso", 100)
    from clients.upload import FileSlice
    f = tmp_path / "x.iso"
    f.write_bytes(b"a" * 100)
    assert fe.svt_upload_chunk(vol, 0, FileSlice(f, 0, 100))["to_upload"] == []
    with pytest.raises(ApiError, match="already complete"):
        fe.svt_upload_chunk(vol, 0, FileSlice(f, 0, 100))


# --------------------------------------------------------------------------- item 8: deploy payload details
def _scans(sim, plan) -> tuple[dict, DeploymentClient]:
    tls = TlsMode(True, sim.ca_bundle)
    clients = {ip: DeploymentClient(ip, token=DEFAULT_DEPLOY_TOKEN, amap=amap_of(sim), tls=tls) for ip in host_ips(plan)}
    return {ip: c.scan_host() for ip, c in clients.items()}, clients[host_ips(plan)[0]]


def test_the_payload_takes_the_l2_scan_host_ip_verbatim(make, plan):
    """Before: host_ip was always built per host (the management NIC's own address and name)."""
    sim = make(deployed=False)
    scans, api = _scans(sim, plan)
    l2 = l2_host_ips(api.scan_cluster())
    assert len(l2) == len(plan.hosts)
    payload = deploy_payload(plan, scans, l2=l2)
    assert [h["host_ip"] for h in payload["hosts"]] == [l2[s["host_uuid"]] for s in scans.values()]
    own = {f"{i['ipv6']}%{i['name']}" for s in scans.values() for i in s["ifaces"] if i.get("ipv6")}
    assert not own & {h["host_ip"] for h in payload["hosts"]}       # the scan's zone is not the address's own NIC
    answer = api.deploy(payload)
    assert answer["msg"].startswith("start deploying cluster")      # item 9: data.msg as on real gear


def test_without_an_l2_answer_host_ip_is_built_per_host_and_other_zones_are_refused(make, plan):
    sim = make("l2-scan-empty", deployed=False)
    scans, api = _scans(sim, plan)
    assert api.scan_cluster() == []
    payload = deploy_payload(plan, scans, l2={})
    first = payload["hosts"][0]["host_ip"]
    bad = dict(payload, hosts=[dict(payload["hosts"][0], host_ip=first.split("%")[0] + "%ens999")]
               + payload["hosts"][1:])
    storage = next(i for i in next(iter(scans.values()))["ifaces"] if i["name"] == plan.storage.nics[0])
    l2_style = dict(payload, hosts=[dict(payload["hosts"][0], host_ip=f"{storage['ipv6']}%{plan.storage.nics[-1]}")]
                    + payload["hosts"][1:])                       # what an L2 scan would say, but it found nothing
    for wrong in (bad, l2_style, dict(payload, hosts=[dict(payload["hosts"][0], host_ip=first.split("%")[0])]
                                                      + payload["hosts"][1:])):
        with pytest.raises(ApiError) as exc:
            api.deploy(wrong)
        assert exc.value.status == 400 and "host_ip" in exc.value.body
    assert api.deploy(payload)["msg"]


@pytest.fixture(scope="module")
def lacp_plan(tmp_path_factory):
    path = write_example(tmp_path_factory.mktemp("lacp") / "plan.xlsx", hosts=4, business=2,
                         overrides={(L.SHEET_NET, "K8"): "balance-tcp"})
    p, _ = load(path)
    assert p.business_bond_mode == "balance-tcp"
    return p


@pytest.mark.parametrize("profile", ["vds-lacp-balance-tcp", "vds-lacp-lacp"])
def test_an_lacp_business_vds_under_each_vds_profile(make, lacp_plan, profile):
    """Before: balance-tcp was sent as is and compared as is; an API that takes `lacp` refused the VDS."""
    sim = make(profile, the_plan=lacp_plan)
    fe = fisheye_of(sim, lacp_plan)
    uuids = {ip: s["host_uuid"] for ip, s in sim.scans.items()}
    body = business_vds_body(lacp_plan, lambda ip: uuids[str(ip)])
    vds, created = fe.ensure_vds(body, wait_job=lambda job_id, what: _wait_done(sim, fe, job_id))
    assert created
    detail = fe.get_vds(vds["uuid"])
    assert detail["bond_mode"] == ("lacp" if profile == "vds-lacp-lacp" else "balance-tcp")
    assert same_bond_mode(detail["bond_mode"], lacp_plan.business_bond_mode)


def _wait_done(sim, fe, job_id) -> dict:
    sim.advance(60)
    job = fe.job(job_id)
    assert job["state"] == "done", job
    return job


# --------------------------------------------------------------------------- item 9: smaller items
@pytest.mark.parametrize("word", ["failed", "error", "aborted"])
def test_every_failed_job_state_ends_the_wait_at_once(make, plan, run, word):
    """Before: only `failed` ended the wait; `error` / `aborted` were polled until the 10-minute limit."""
    sim = make()
    sim.fisheye.jobboard.failed_state = word
    sim.faults.add({"method": "PUT", "path": "/api/v2/settings/dns", "action": {"operation": "fail", "msg": "boom"}})
    fe = fisheye_of(sim, plan)
    where = ClusterAddress(run, fe, amap_of(sim), pacing_of(sim))
    started = time.monotonic()
    with pytest.raises(AssertionError) as exc:
        where.wait_job(fe.set_dns(list(plan.dns))["job_id"], "dns")
    assert not isinstance(exc.value, WaitTimeout) and f"state={word}" in str(exc.value) and "boom" in str(exc.value)
    assert time.monotonic() - started < 3


class _Packages:
    def __init__(self, path: Path):
        self.path = path

    def find(self, pattern: str) -> Path:
        return self.path


def test_svt_step_asserts_the_image_is_listed(make, plan, run, tmp_path):
    """Before: 03.svt passed without looking at the image list after the upload."""
    sim = make()
    sim.fisheye.chunk_size = 4096
    fe = fisheye_of(sim, plan)
    iso = tmp_path / "SMTX_VMTOOLS-1.iso"
    iso.write_bytes(b"v" * 10_000)
    # the 3rd listing: the step's "already there?", the uploader's partial-volume look, then the check after it
    sim.faults.add({"method": "GET", "path": "/api/v2/images", "nth": 3,
                    "action": {"status": 200, "body": {"data": {"images": []}, "ec": "EOK", "error": {}}}})
    with pytest.raises(AssertionError, match="is not listed after the upload"):
        S03.test_upload_vmtools_iso(fe, _Packages(iso), run.state, step_of(run, "03.svt"), pacing_of(sim))
    sim.faults.clear()
    S03.test_upload_vmtools_iso(fe, _Packages(iso), run.state, step_of(run, "03.svt"), pacing_of(sim))  # reused


def test_root_password_step_proves_the_password_logs_in(make, plan, run):
    """Before: a 200 from setupRoot was taken at its word."""
    sim = make()
    sim.faults.add({"method": "POST", "path": "/api/v3/users:setupRoot", "action": {"status": 200, "body": {}}})
    fe = fisheye_of(sim, plan, setup=False)
    with pytest.raises((AssertionError, ApiError)):
        S03.test_set_fisheye_admin_password(plan, fe, step_of(run, "03.root_password"))
    sim.faults.clear()
    S03.test_set_fisheye_admin_password(plan, fe, step_of(run, "03.root_password"))
    assert fe.token


def test_iso_find_step_asserts_a_usable_iso(make, plan, run, tmp_path):
    sim = make()
    fe = fisheye_of(sim, plan)
    empty = tmp_path / "cloudtower-0.iso"
    empty.write_bytes(b"")
    with pytest.raises(AssertionError, match="is empty"):
        S04.test_find_cloudtower_iso(fe, _Packages(empty), run.state, step_of(run, "04.iso_find"))


class _Intent:
    earlier = None

    def get(self, key, default=None):
        return default

    def begin(self, **kw):
        pass

    def attach(self, **kw):
        pass


class _IntentState:
    def __init__(self, state):
        self.state = state

    def intent(self, key, *, op):
        from contextlib import nullcontext
        return nullcontext(_Intent())

    def __getattr__(self, name):
        return getattr(self.state, name)


def test_install_step_checks_that_443_is_cloudtower(make, plan, run):
    """Before: anything accepting on the CloudTower address's 443 counted as "already installed"."""
    sim = make()
    ip = str(plan.cloudtower.ip)
    sim.set_up(ip, 443, True)                       # something answers on 443, but no CloudTower was installed
    from clients.cloudtower import CloudTowerClient
    ct = CloudTowerClient(ip, amap=amap_of(sim), tls=TlsMode(True, sim.ca_bundle))
    pacing = Pacing(scale=0.0005, echo=lambda line: None)
    try:
        with pytest.raises(AssertionError, match="not CloudTower"):
            S04.test_install_cloudtower(plan, None, ct, amap_of(sim), _IntentState(run.state),
                                        step_of(run, "04.install"), pacing)
    finally:
        ct.close()


class _SlowAmap:
    """Every address silent: ping takes its whole timeout (scaled down), ports are closed."""

    def __init__(self):
        self.timeouts: list[float] = []
        self.pings = 0

    def ping(self, address, timeout=1.0):
        self.timeouts.append(timeout)
        self.pings += 1
        time.sleep(0.1)
        return False

    def tcp_open(self, address, port, timeout=2.0):
        self.timeouts.append(timeout)
        return False


class _NotDeployed:
    def deploy_verify(self):
        return {"is_deployed": False}


def test_preflight_address_checks_are_bounded_and_parallel(plan, run):
    """Before: one address after another (the plan's test range alone can hold 64 addresses)."""
    amap = _SlowAmap()
    started = time.monotonic()
    S01.test_planned_addresses_are_free(plan, amap, run.state, step_of(run, "01.addresses"),
                                        {str(plan.hosts[0].mgmt_ip): _NotDeployed()})
    took = time.monotonic() - started
    assert amap.pings >= 10 and took < 0.1 * amap.pings / 3, (amap.pings, took)   # one after another: pings x 0.1 s
    assert max(amap.timeouts) <= 1.0


# --------------------------------------------------------------------------- the main job under every profile
PROFILE_RUNS = ["sudo-nopasswd,vip-job,upload-listed,vds-lacp-lacp,l2-scan-empty,elf-upload-create-only",
                "vip-empty-body,upload-opaque,connect-auth-late,rest-bodies-lenient,inspector-job-status-absent,"
                "vm-nic-ip-update",
                "upload-no-resume,gql-variables-200,ct-names-unique,topology-nodes-in-bricks,gql-login-plaintext-accepted,"
                "vm-delete-volumes-kept",
                "real-gear,vm-metric-names-verified-only"]


def test_profile_runs_cover_every_profile():
    named = {p.name for spec in PROFILE_RUNS for p in parse(spec)} | {p.name for p in PROFILES.values() if p.default}
    assert named == set(PROFILES)


@pytest.mark.slow
@pytest.mark.parametrize("spec", PROFILE_RUNS)
def test_the_main_job_passes_under_each_profile(tmp_path, monkeypatch, spec):
    monkeypatch.setenv("SMTX_SIM_PROFILE", spec)
    run_dir = tmp_path / "run"
    proc = run_suite("--plan", str(ROOT / "examples" / "plan-example.xlsx"), "--simulate", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert {k: v for k, v in outcomes(run_dir).items() if v != "passed"} == {"10.reliability": "not_applicable"}
