"""Simulator snapshot / restore: a resumed simulated run continues the same world."""
from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import httpx
import pytest

from mocks import Simulator
from mocks.remote import STATE_FILE, attach_or_start
from mocks.testing import load_plan, plan_path

from .test_sim_fisheye import ROOT_PW, Api, business_vds_body, deploy, host_ips

KIB = 1024


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    p = plan_path(tmp_path_factory.mktemp("restoreplan"), hosts=4)
    if p is None:
        pytest.skip("no plan: neither plan.example nor the vendor template is available")
    return load_plan(p)


@pytest.fixture
def track(monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    owned: list = []
    yield owned
    for o in reversed(owned):
        (o.http.close if isinstance(o, Api) else o.close)()


def accepts(sim, address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(sim.local(address, port)) == 0


def build_world(plan, track) -> tuple[Simulator, Api, dict]:
    """Deploy, set root, VIP, DNS, a business VDS + VLAN, and half an SVT upload."""
    sim = Simulator.from_plan(plan, time_scale=0.01, profiles=["vip-job"]).start()   # the PUT below waits for its job
    track.append(sim)
    deploy(sim, plan)
    api = Api(sim, host_ips(plan)[0])
    track.append(api)
    assert api.setup_root().status_code == 200 and api.login().status_code == 200
    vip = str(plan.vip)
    assert api.wait_job(api.data(api.put("/api/v2/settings/vip",
                                         json={"iscsi_vip": None, "management_vip": vip}))["job_id"])["state"] == "done"
    assert api.wait_job(api.data(api.put("/api/v2/settings/dns",
                                         json={"dns_servers": ["10.0.0.1"]}))["job_id"])["state"] == "done"
    job = api.wait_job(api.data(api.post("/api/v2/network/vds", json=business_vds_body(plan, sim)))["job_id"])
    vds_uuid = next(iter(job["resources"]))
    api.data(api.post(f"/api/v2/network/vds/{vds_uuid}/vlans",
                      json={"name": "VLAN-1120", "vlan_id": 1120, "vds_uuid": vds_uuid}))
    assert api.data(api.put("/api/v2/elf/cluster_cpu_compatibility", json={"cpu_model": "EPYC"})) == {}
    sim.fisheye.chunk_size = 64 * KIB
    vol = api.data(api.post("/api/v2/svt_image/create_volume", params={"name": "svt.iso", "size": 3 * 64 * KIB}))
    r = api.post("/api/v2/svt_image/upload_template", files={"file": ("svt.iso", b"x" * 64 * KIB)},
                 params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": 0, "image_uuid": vol["image_uuid"]})
    assert api.data(r)["to_upload"] == [1, 2]
    sim.fisheye.job_pending = 600.0                       # still pending when the snapshot is taken
    pending = api.data(api.put("/api/v2/settings/ntp", json={"ntp_mode": "external",
                                                            "ntp_servers": ["10.0.0.2"]}))["job_id"]
    return sim, api, {"vds_uuid": vds_uuid, "vol": vol, "pending_job": pending, "vip": vip}


def check_restored(plan, sim: Simulator, api: Api, facts: dict, old_token: str) -> None:
    vip = facts["vip"]
    with httpx.Client(timeout=10) as c:
        for ip in host_ips(plan):
            r = c.get(sim.url(ip, 80) + "/api/v2/deployment/deploy_verify",
                      headers={"x-smartx-token": sim.deploy_token})
            assert r.json()["data"]["is_deployed"] is True
    assert accepts(sim, vip, 443) and accepts(sim, vip, 80) and sim.is_alive(vip)
    on_vip = Api(sim, vip)
    try:
        assert on_vip.setup_root().status_code == 409                          # root stays set up
        assert on_vip.login("wrong-password").status_code == 401
        assert on_vip.login().status_code == 200                               # the same password works
        assert on_vip.data(on_vip.get("/api/v2/settings/vip"))["management_vip"] == vip
        assert on_vip.data(on_vip.get("/api/v2/settings/dns")) == {"dns_servers": ["10.0.0.1"]}
        names = [v["name"] for v in on_vip.data(on_vip.get("/api/v2/network/vds"))]
        assert names == [plan.mgmt.vds, plan.storage.vds, plan.business_vds]
        vds = on_vip.data(on_vip.get(f"/api/v2/network/vds/{facts['vds_uuid']}"))
        assert vds["vlans_count"] == 1
        assert on_vip.data(on_vip.get("/api/v2/elf/cluster_cpu_compatibility")) == {"cpu_model": "EPYC"}
        # sessions survive as digests: the old token still works until it expires
        assert on_vip.get("/api/v2/tools/license", token=old_token).status_code == 200
        # the job that was running continues on the restored clock and applies
        assert on_vip.data(on_vip.get(f"/api/v2/jobs/{facts['pending_job']}"))["job"]["state"] == "pending"
        assert on_vip.wait_job(facts["pending_job"], step=100)["state"] == "done"
        assert on_vip.data(on_vip.get("/api/v2/settings/ntp")) == {"ntp_mode": "external", "ntp_servers": ["10.0.0.2"]}
        # the upload continues where it stopped
        vol = facts["vol"]
        up = sim.fisheye.uploads[vol["image_uuid"]]
        assert up.received == [1, 0, 0] and up.chunk_size == 64 * KIB
        for i in (1, 2):
            r = on_vip.post("/api/v2/svt_image/upload_template", files={"file": ("svt.iso", b"y" * 64 * KIB)},
                            params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": i,
                                    "image_uuid": vol["image_uuid"]})
            assert r.status_code == 200, r.text
        assert up.received == [1, 1, 1] and up.status == "ready"
    finally:
        on_vip.http.close()


def assert_no_secrets(text: str, plan, token: str) -> None:
    for secret in {ROOT_PW, token, *plan.secrets()}:
        assert secret not in text, f"a secret leaked into the snapshot: {secret[:2]}…"


def test_snapshot_restore_continues_the_world(plan, track):
    sim, api, facts = build_world(plan, track)
    before = sim.clock.now()
    snap = sim.snapshot()
    text = json.dumps(snap)                               # JSON-serialisable as it is
    assert_no_secrets(text, plan, api.token)
    assert snap["restore"]["families"]["fisheye"]["root_login"]["scheme"] == "pbkdf2-sha256"
    assert snap["restore"]["sim_now"] >= before
    sim.close()

    again = Simulator.from_plan(plan, time_scale=0.01, snapshot=json.loads(text))
    track.append(again)
    assert again.clock.now() >= snap["restore"]["sim_now"]
    again.start()
    check_restored(plan, again, api, facts, api.token)


def test_restore_method_before_start_and_redacted_file(plan, track, tmp_path):
    from clients.redact import Redactor

    sim, api, facts = build_world(plan, track)
    red = Redactor()
    red.add(ROOT_PW, api.token, *plan.secrets())
    text = red.text(json.dumps(sim.snapshot(), indent=1))     # what attach_or_start writes goes through this
    sim.close()
    fresh = Simulator.from_plan(plan, time_scale=0.01)
    track.append(fresh)
    notes = fresh.restore(json.loads(text))
    assert notes == []
    fresh.start()
    check_restored(plan, fresh, api, facts, api.token)
    with pytest.raises(ValueError):
        Simulator.from_plan(plan, snapshot={"version": 1})


def test_attach_or_start_saves_and_resumes(plan, track, tmp_path):
    run = SimpleNamespace(plan=plan, run_dir=tmp_path, resumed=False, time_scale=0.01,
                          deploy_token="e79b85fc18b7402fbcc0391fe8d7d24c", simulator_url=None)
    sim = attach_or_start(run)
    track.append(sim)
    deploy(sim, plan)
    api = Api(sim, host_ips(plan)[0])
    track.append(api)
    assert api.setup_root().status_code == 200 and api.login().status_code == 200
    sim.close()
    state = tmp_path / STATE_FILE
    assert state.is_file()
    assert_no_secrets(state.read_text(encoding="utf-8"), plan, api.token)

    resumed = attach_or_start(SimpleNamespace(**{**vars(run), "resumed": True}))
    track.append(resumed)
    assert resumed.deployment.hosts[host_ips(plan)[0]].deployed
    again = Api(resumed, host_ips(plan)[0])
    track.append(again)
    assert again.login().status_code == 200

    fresh = attach_or_start(run)                          # not resumed: a new world even though the file exists
    track.append(fresh)
    assert not fresh.deployment.hosts[host_ips(plan)[0]].deployed

    state.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="delete it"):
        attach_or_start(SimpleNamespace(**{**vars(run), "resumed": True}))
