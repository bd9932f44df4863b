"""Simulated fisheye API (guide §03) over real HTTPS on loopback, after a simulated deployment."""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import uuid

import httpx
import pytest

from clients.redact import MASK
from mocks import Simulator
from mocks.testing import REPO, load_plan, plan_path, ssl_context

EXAMPLES = REPO.parent / "shared" / "reference" / "examples"
DEPLOY_TOKEN = "e79b85fc18b7402fbcc0391fe8d7d24c"
ROOT_PW = "HC!r0cks"
KIB = 1024


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    p = plan_path(tmp_path_factory.mktemp("fisheyeplan"), hosts=4)
    if p is None:
        pytest.skip("no plan: neither plan.example nor the vendor template is available")
    return load_plan(p)


class Api:
    """A tiny fisheye client for the tests: one keep-alive httpx client, https on port 443."""

    def __init__(self, sim: Simulator, address: str):
        self.sim, self.address = sim, address
        self.http = httpx.Client(verify=ssl_context(sim), timeout=10)
        self.token: str | None = None

    def url(self, path: str, address: str | None = None, port: int = 443) -> str:
        return self.sim.url(address or self.address, port) + path

    def headers(self, token: str | None = None) -> dict:
        t = token if token is not None else self.token
        return {"x-smartx-token": t} if t else {}

    def req(self, method: str, path: str, *, address: str | None = None, port: int = 443, token=None,
            headers: dict | None = None, **kw) -> httpx.Response:
        return self.http.request(method, self.url(path, address, port), headers=self.headers(token) | (headers or {}),
                                 **kw)

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, **kw):
        return self.req("POST", path, **kw)

    def put(self, path, **kw):
        return self.req("PUT", path, **kw)

    def data(self, r: httpx.Response):
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "ec", "error"} and body["ec"] == "EOK" and body["error"] == {}, body
        return body["data"]

    def setup_root(self, pw: str = ROOT_PW) -> httpx.Response:
        return self.post("/api/v3/users:setupRoot", json={"password": pw, "repeat": pw, "encrypted": False})

    def login(self, pw: str = ROOT_PW) -> httpx.Response:
        r = self.post("/api/v3/sessions", json={"username": "root", "password": pw, "encrypted": False})
        if r.status_code == 200:
            self.token = r.json()["token"]
        return r

    def wait_job(self, job_id: str, *, step: float = 15.0, limit: float = 600) -> dict:
        """Advance simulated time until the job ends; returns the job and the states seen."""
        seen, t = [], 0.0
        while t <= limit:
            job = self.data(self.get(f"/api/v2/jobs/{job_id}"))["job"]
            if not seen or seen[-1] != job["state"]:
                seen.append(job["state"])
            if job["state"] in ("done", "failed"):
                job["_seen"] = seen
                return job
            self.sim.advance(step)
            t += step
        raise AssertionError(f"job {job_id} never ended: {seen}")


def host_ips(plan) -> list[str]:
    return [str(h.mgmt_ip) for h in plan.hosts]


def deploy(sim: Simulator, plan) -> dict[str, dict]:
    """Deploy the plan's cluster through the simulated deployment API; returns the scans."""
    from clients.payloads import deploy_payload

    with httpx.Client(timeout=10) as c:
        h = {"x-smartx-token": DEPLOY_TOKEN}
        scans = {ip: c.get(sim.url(ip, 80) + "/api/v2/deployment/host", headers=h).json()["data"]
                 for ip in host_ips(plan)}
        r = c.post(sim.url(host_ips(plan)[0], 80) + "/api/v2/deployment/cluster", headers=h,
                   json=deploy_payload(plan, scans))
        assert r.status_code == 200, r.text
        sim.advance(1000)
        assert c.get(sim.url(host_ips(plan)[0], 80) + "/api/v2/deployment/deploy_verify",
                     headers=h).json()["data"]["is_deployed"] is True
    return scans


@pytest.fixture
def make_sim(monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    sims, apis = [], []

    def make(plan, **kw):
        kw.setdefault("time_scale", 0.01)
        s = Simulator.from_plan(plan, **kw).start()
        sims.append(s)
        return s

    make.apis = apis
    yield make
    for a in apis:
        a.http.close()
    for s in sims:
        s.close()


@pytest.fixture
def sim(plan, make_sim):
    s = make_sim(plan)
    deploy(s, plan)
    # jobs: 60 simulated seconds pending, 60 running (0.6 s real each at time_scale 0.01), so a test
    # sees every state however slow the machine is; wait_job advances 15 s a poll
    s.fisheye.job_pending = s.fisheye.job_running = 60.0
    return s


@pytest.fixture
def api(sim, plan, make_sim) -> Api:
    a = Api(sim, host_ips(plan)[0])
    make_sim.apis.append(a)
    return a


@pytest.fixture
def authed(api) -> Api:
    assert api.setup_root().status_code == 200
    assert api.login().status_code == 200
    return api


def assert_envelope_error(r: httpx.Response, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"data", "ec", "error"} and body["ec"] != "EOK" and body["data"] is None, body
    for n in needles:
        assert n in body["error"]["msg"], body["error"]["msg"]
    return body


def assert_plain_error(r: httpx.Response, status: int, code: int) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and isinstance(body["message"], str) and body["message"], body
    assert "ec" not in body and "data" not in body
    return body


def refused(sim: Simulator, address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(sim.local(address, port)) != 0


# --------------------------------------------------------------------------- before deployment
def test_fisheye_absent_before_deployment(plan, make_sim):
    s = make_sim(plan)
    a = Api(s, host_ips(plan)[0])
    make_sim.apis.append(a)
    assert_envelope_error(a.setup_root(), 404)
    assert_envelope_error(a.get("/api/v2/tools/license", token="x" * 32), 404)
    assert_envelope_error(a.get("/api/v2/network/vds", port=80), 404)
    deploy(s, plan)
    assert a.setup_root().status_code == 200
    assert a.login().status_code == 200
    for ip in host_ips(plan):                      # every deployed host serves fisheye (http and https)
        assert a.data(a.get("/api/v2/tools/license", address=ip, port=80))["vendor"] == "SMTX"


# --------------------------------------------------------------------------- v3: root and sessions
def test_setup_root_once_and_login(api):
    assert_plain_error(api.post("/api/v3/users:setupRoot",
                                json={"password": ROOT_PW, "repeat": "other!234", "encrypted": False}), 400, 3)
    assert_plain_error(api.login(), 400, 9)                         # root not set up yet
    r = api.setup_root()
    assert r.status_code == 200
    example = EXAMPLES / "setup-root-response.json"
    if example.is_file():
        assert r.json() == json.loads(example.read_text(encoding="utf-8"))
    assert r.json()["password"] == ""
    assert_plain_error(api.setup_root(), 409, 6)                     # already set: ALREADY_EXISTS
    assert_plain_error(api.setup_root("another-Passw0rd"), 409, 6)
    assert_plain_error(api.login("wrong-password"), 401, 16)
    assert_plain_error(api.post("/api/v3/sessions", json={"username": "admin", "password": ROOT_PW,
                                                           "encrypted": False}), 401, 16)
    r = api.login()
    assert r.status_code == 200
    s = r.json()
    assert set(s) == {"user_id", "token", "create_time", "expire_time", "update_time"} and s["user_id"] == "root"
    assert re.fullmatch(r"[0-9a-f]{32}", s["token"])
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    for k in ("create_time", "expire_time", "update_time"):
        assert re.fullmatch(stamp, s[k]), s[k]
    import datetime as dt
    parse = lambda v: dt.datetime.strptime(v[:26], "%Y-%m-%dT%H:%M:%S.%f")  # noqa: E731
    assert round((parse(s["expire_time"]) - parse(s["create_time"])).total_seconds()) == 7 * 24 * 3600
    # the request log never holds the password (password and repeat are masked)
    rec = api.sim.requests.filter("POST", "/api/v3/users:setupRoot", status=200)[0]
    assert rec.body["password"] == rec.body["repeat"] == MASK
    assert ROOT_PW not in json.dumps(api.sim.requests.to_list())


def test_token_required_expires_and_revokes(authed):
    api, sim = authed, authed.sim
    assert_envelope_error(api.get("/api/v2/tools/license", token=""), 401)
    assert_envelope_error(api.get("/api/v2/tools/license", token=uuid.uuid4().hex), 401)
    assert_envelope_error(api.get("/api/v2/tools/license", token=DEPLOY_TOKEN), 401)   # not a session token
    assert api.get("/api/v2/tools/license").status_code == 200
    sim.advance(7 * 24 * 3600 - 60)
    assert api.get("/api/v2/settings/dns").status_code == 200
    sim.advance(120)
    assert_envelope_error(api.get("/api/v2/settings/dns"), 401, "expired")
    api.login()
    assert api.get("/api/v2/settings/dns").status_code == 200
    other = api.token
    api.login()
    assert sim.fisheye.revoke_tokens() == 2
    assert_envelope_error(api.get("/api/v2/settings/dns"), 401)
    assert_envelope_error(api.get("/api/v2/settings/dns", token=other), 401)
    sim.fisheye.session_ttl = 30
    api.login()
    sim.advance(31)
    assert_envelope_error(api.get("/api/v2/jobs/x"), 401)


# --------------------------------------------------------------------------- VIP
def test_vip_comes_up_and_serves_fisheye(authed, plan):
    api, sim, vip = authed, authed.sim, str(plan.vip)
    sim.fisheye.cluster_settings.vip_mode = "job"   # profile vip-job (the default, no job: tests/test_issue12_gear.py)
    assert refused(sim, vip, 443) and refused(sim, vip, 80) and not sim.is_alive(vip)
    assert api.data(api.get("/api/v2/settings/vip")) == {"iscsi_vip": None, "management_vip": None}
    bad = [("10.9.9.9", "management network"), ("not-an-ip", "IPv4"), (host_ips(plan)[1], "used by host"),
           (str(plan.hosts[2].storage_ip), "management network"), (str(plan.mgmt.gateway), "gateway")]
    for value, needle in bad:
        assert_envelope_error(api.put("/api/v2/settings/vip", json={"iscsi_vip": None, "management_vip": value}),
                              400, needle)
    job_id = api.data(api.put("/api/v2/settings/vip", json={"iscsi_vip": None, "management_vip": vip}))["job_id"]
    assert refused(sim, vip, 443)                         # not before the job is done
    job = api.wait_job(job_id)
    assert job["state"] == "done" and job["_seen"] == ["pending", "running", "done"]
    assert job["description"] == "SETTINGS_UPDATE_VIP" and job["message"] is None and job["error"] is None
    assert not refused(sim, vip, 443) and not refused(sim, vip, 80) and sim.is_alive(vip)
    assert refused(sim, vip, 22)                          # SSH is another family's business
    assert api.data(api.get("/api/v2/settings/vip", address=vip)) == {"iscsi_vip": None, "management_vip": vip}
    assert api.data(api.get("/api/v2/tools/license", address=vip, port=80))["vendor"] == "SMTX"


# --------------------------------------------------------------------------- license / DNS / NTP / jobs
def test_license_matches_the_guide(authed, plan):
    lic = authed.data(authed.get("/api/v2/tools/license"))
    assert list(lic) == ["serial", "software_edition", "max_chunk_num", "max_physical_data_capacity",
                         "max_physical_data_capacity_per_node", "license_capabilities", "license_type", "vendor",
                         "maintenance_start_date", "maintenance_period", "sign_date", "platform", "mode", "period",
                         "pricing_type"]
    assert lic["serial"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"smtx-sim://cluster/{plan.cluster_name}"))
    assert lic["license_capabilities"] == {"has_metrox": True, "has_remote_backup": True}
    assert (lic["software_edition"], lic["license_type"], lic["mode"], lic["platform"], lic["period"]) == \
        ("ENTERPRISE", "TRIAL", "HCI", 15, 2592000)
    assert isinstance(lic["sign_date"], int) and lic["sign_date"] > 1_700_000_000


def test_dns_and_ntp_apply_when_their_jobs_finish(authed, plan):
    api = authed
    assert api.data(api.get("/api/v2/settings/dns")) == {"dns_servers": list(plan.dns)}   # from the deploy payload
    assert api.data(api.get("/api/v2/settings/ntp")) == {"ntp_mode": "internal", "ntp_servers": []}
    assert_envelope_error(api.put("/api/v2/settings/dns", json={"dns_servers": ["10.0.0.114", "dns.example.com"]}),
                          400, "dns.example.com")
    assert_envelope_error(api.put("/api/v2/settings/dns", json={"dns_servers": []}), 400)
    assert_envelope_error(api.put("/api/v2/settings/ntp", json={"ntp_mode": "sometimes", "ntp_servers": []}), 400)
    assert_envelope_error(api.put("/api/v2/settings/ntp", json={"ntp_mode": "external", "ntp_servers": ["a b"]}), 400)
    assert_envelope_error(api.put("/api/v2/settings/dns", content=b"{nope"), 400)
    dns_job = api.data(api.put("/api/v2/settings/dns", json={"dns_servers": ["10.0.0.1", "10.0.0.114"]}))["job_id"]
    ntp_job = api.data(api.put("/api/v2/settings/ntp", json={"ntp_mode": "external",
                                                            "ntp_servers": ["10.0.0.2", "ntp.c89.fun"]}))["job_id"]
    assert api.data(api.get("/api/v2/settings/dns")) == {"dns_servers": list(plan.dns)}   # not applied yet
    job = api.data(api.get(f"/api/v2/jobs/{dns_job}"))["job"]
    assert {"job_id", "state", "life_cycle", "description", "type", "user", "resources", "ctime", "task_list",
            "event"} <= set(job) and job["state"] == "pending" and job["type"] == "action"
    assert api.wait_job(dns_job)["state"] == "done" and api.wait_job(ntp_job)["state"] == "done"
    assert api.data(api.get("/api/v2/settings/dns")) == {"dns_servers": ["10.0.0.1", "10.0.0.114"]}
    assert api.data(api.get("/api/v2/settings/ntp")) == {"ntp_mode": "external",
                                                         "ntp_servers": ["10.0.0.2", "ntp.c89.fun"]}
    assert_envelope_error(api.get(f"/api/v2/jobs/{uuid.uuid4()}"), 404)


def test_job_faults_fail_and_stuck(authed):
    api, sim = authed, authed.sim
    sim.faults.add({"method": "PUT", "path": "/api/v2/settings/dns", "times": 1,
                    "action": {"operation": "fail", "msg": "dnsmasq restart failed"}})
    sim.faults.add({"method": "PUT", "path": "/api/v2/settings/ntp", "times": 1, "action": {"operation": "stuck"}})
    job_id = api.data(api.put("/api/v2/settings/dns", json={"dns_servers": ["10.0.0.9"]}))["job_id"]
    job = api.wait_job(job_id)
    assert job["state"] == "failed" and job["_seen"] == ["pending", "running", "failed"]
    assert job["message"] == "dnsmasq restart failed"
    assert job["error"] == {"code": "EJOBFAILED", "msg": "dnsmasq restart failed"}
    assert api.data(api.get("/api/v2/settings/dns"))["dns_servers"] != ["10.0.0.9"]
    stuck = api.data(api.put("/api/v2/settings/ntp", json={"ntp_mode": "external", "ntp_servers": ["10.0.0.2"]}))
    sim.advance(24 * 3600)
    api.login()
    assert api.data(api.get(f"/api/v2/jobs/{stuck['job_id']}"))["job"]["state"] == "running"
    # the retry (rules fired once) succeeds
    assert api.wait_job(api.data(api.put("/api/v2/settings/dns", json={"dns_servers": ["10.0.0.9"]}))["job_id"]
                        )["state"] == "done"


def test_http_faults_on_v2_and_v3(authed):
    api, sim = authed, authed.sim
    sim.faults.add({"path": "/api/v2/tools/license", "times": 1, "action": {"status": 503}})
    sim.faults.add({"path": "/api/v3/sessions", "times": 1, "action": {"status": 500, "msg": "boom"}})
    sim.faults.add({"path": "/api/v2/settings/ntp", "method": "GET", "times": 1, "action": {"drop": True}})
    assert_envelope_error(api.get("/api/v2/tools/license"), 503)
    assert api.get("/api/v2/tools/license").status_code == 200
    body = assert_plain_error(api.login(), 500, 13)
    assert body["message"] == "boom"
    assert api.login().status_code == 200
    with pytest.raises(httpx.TransportError):
        api.get("/api/v2/settings/ntp")
    assert api.get("/api/v2/settings/ntp").status_code == 200


# --------------------------------------------------------------------------- IPMI
def test_ipmi_accounts(authed, plan, sim):
    api = authed
    scans = {ip: sim.deployment.hosts[ip] for ip in host_ips(plan)}
    accounts = [{"node_name": h.hostname, "host": str(h.bmc_ip), "user": h.bmc_user,
                 "node_uuid": scans[str(h.mgmt_ip)].host_uuid, "password": h.bmc_password} for h in plan.hosts]
    res = api.data(api.post("/api/v2/ipmi/upsert_accounts", json={"accounts": accounts}))
    assert res["failure"] == [] and len(res["success"]) == len(accounts)
    for item, a in zip(res["success"], accounts):
        assert item == {"node_uuid": a["node_uuid"], "node_name": a["node_name"], "host": a["host"], "port": 623,
                        "user": a["user"], "is_valid": True, "interface": "lanplus"}
    broken = str(plan.hosts[1].bmc_ip)
    sim.fisheye.break_bmc(broken)
    bad = [dict(accounts[0], password="wrong"), accounts[1], dict(accounts[2], node_uuid=str(uuid.uuid4())),
           dict(accounts[3], host="10.0.19.99")]
    res = api.data(api.post("/api/v2/ipmi/upsert_accounts", json={"accounts": bad}))
    assert res["success"] == [] and [f["node_name"] for f in res["failure"]] == [a["node_name"] for a in bad]
    for f in res["failure"]:
        assert f["is_valid"] is False and f["interface"] is None and f["port"] == 623
        assert set(f) == {"node_uuid", "node_name", "host", "port", "user", "is_valid", "interface"}
    sim.fisheye.break_bmc(broken, False)
    sim.set_alive(str(plan.hosts[0].bmc_ip), False)                   # an unreachable BMC fails too
    res = api.data(api.post("/api/v2/ipmi/upsert_accounts", json={"accounts": accounts[:2]}))
    assert [x["host"] for x in res["success"]] == [broken]
    assert [x["host"] for x in res["failure"]] == [str(plan.hosts[0].bmc_ip)]
    assert "Bmc#Demo2026" not in json.dumps(sim.snapshot())
    assert_envelope_error(api.post("/api/v2/ipmi/upsert_accounts", json={"accounts": [{"host": "x"}]}), 400)


# --------------------------------------------------------------------------- VDS / VLAN
def business_vds_body(plan, sim, nics=None, name=None) -> dict:
    return {"name": name or plan.business_vds, "bond_mode": plan.business_bond_mode,
            "hosts_associated": [{"host_uuid": sim.deployment.hosts[str(h.mgmt_ip)].host_uuid,
                                  "nics_associated": list(nics or plan.business_nics),
                                  "data_ip": str(h.storage_ip)} for h in plan.hosts]}


def test_vds_list_has_the_deployment_vdses(authed, plan):
    api, sim = authed, authed.sim
    vdses = api.data(api.get("/api/v2/network/vds"))
    assert [v["name"] for v in vdses] == [plan.mgmt.vds, plan.storage.vds]
    mgmt = vdses[0]
    assert set(mgmt) == {"uuid", "bond_mode", "bond_name", "bond_type", "description", "name", "ovsbr_name",
                         "qos_enable", "rb_interval", "type", "work_mode", "hosts_associated", "vlans_count"}
    # vlans_count counts the system network too: mgt-network and default (guide lines 3176-3187, issue 12 item 2)
    assert mgmt["type"] == 1 and mgmt["bond_mode"] == plan.mgmt.bond_mode and mgmt["vlans_count"] == 2
    assert {tuple(h["nics_associated"]) for h in mgmt["hosts_associated"]} == {tuple(plan.mgmt.nics)}
    assert len(mgmt["hosts_associated"]) == len(plan.hosts)
    assert re.fullmatch(r"bond-m-[0-9a-f]{8}", mgmt["bond_name"]) and mgmt["bond_name"][7:] == mgmt["uuid"][:8]
    # the VDS bridge is the one every host's scan shows
    for ip in host_ips(plan):
        names = {n.name for n in sim.deployment.hosts[ip].nics}
        assert {vdses[0]["ovsbr_name"], vdses[1]["ovsbr_name"]} <= names
    assert api.data(api.get(f"/api/v2/network/vds/{mgmt['uuid']}")) == mgmt
    vlans = api.data(api.get(f"/api/v2/network/vds/{mgmt['uuid']}/vlans"))
    assert [(v["name"], v["vlan_id"], v["type"]) for v in vlans] == [("mgt-network", plan.mgmt.vlan_id or 0, 1),
                                                                     ("default", plan.mgmt.vlan_id or 0, 3)]
    assert_envelope_error(api.get(f"/api/v2/network/vds/{uuid.uuid4()}"), 404)


def test_create_business_vds_and_vlans(authed, plan):
    api, sim = authed, authed.sim
    host0 = sim.deployment.hosts[host_ips(plan)[0]]
    # rejected: NIC not on the host, NIC of the management VDS, bad bond, duplicate name
    body = business_vds_body(plan, sim, nics=[plan.business_nics[0], "ens999"])
    assert_envelope_error(api.post("/api/v2/network/vds", json=body), 400, "ens999", host0.hostname, host0.mgmt_ip)
    body = business_vds_body(plan, sim, nics=[plan.business_nics[0], plan.mgmt.nics[0]])
    assert_envelope_error(api.post("/api/v2/network/vds", json=body), 400, plan.mgmt.nics[0], plan.mgmt.vds)
    assert_envelope_error(api.post("/api/v2/network/vds", json=dict(business_vds_body(plan, sim),
                                                                      bond_mode="round-robin")), 400, "round-robin")
    assert_envelope_error(api.post("/api/v2/network/vds", json=business_vds_body(plan, sim, name=plan.mgmt.vds)),
                          400, plan.mgmt.vds)
    job_id = api.data(api.post("/api/v2/network/vds", json=business_vds_body(plan, sim)))["job_id"]
    job = api.data(api.get(f"/api/v2/jobs/{job_id}"))["job"]
    assert job["state"] == "pending" and job["description"] == "NETWORK_CREATE_VDS"
    (vds_uuid, res), = job["resources"].items()
    assert list(res) == ["type", "uuid", "name", "ovsbr_name", "description", "status", "hosts_associated",
                         "bond_name", "bond_type", "bond_mode", "work_mode", "qos_enable", "rb_interval"]
    assert res["type"] == "NETWORK_VDS" and res["uuid"] == vds_uuid and res["name"] == plan.business_vds
    assert re.fullmatch(r"ovsbr-[a-z0-9]{9}", res["ovsbr_name"]) and res["bond_name"] == f"bond-m-{vds_uuid[:8]}"
    assert res["hosts_associated"][host0.host_uuid] == {"host_uuid": host0.host_uuid,
                                                        "nics_associated": list(plan.business_nics),
                                                        "data_ip": str(plan.hosts[0].storage_ip)}
    assert job["event"]["event_name"] == "CREATE_VDS" and job["event"]["resources"] == {vds_uuid: "NETWORK_VDS"}
    assert job["event"]["data"] == {"name": plan.business_vds, "uuid": vds_uuid}
    assert f"{host0.hostname}: {', '.join(plan.business_nics)}" in job["event"]["detail"]["en_US"]
    # the NICs are taken while the job runs; the VDS shows up when it is done
    assert_envelope_error(api.post("/api/v2/network/vds", json=business_vds_body(plan, sim, name="other")), 400,
                          plan.business_nics[0])
    assert_envelope_error(api.get(f"/api/v2/network/vds/{vds_uuid}"), 404)
    assert api.wait_job(job_id)["state"] == "done"
    vds = api.data(api.get(f"/api/v2/network/vds/{vds_uuid}"))
    assert (vds["name"], vds["bond_mode"], vds["type"], vds["vlans_count"]) == \
        (plan.business_vds, plan.business_bond_mode, 1, 0)
    assert [v["name"] for v in api.data(api.get("/api/v2/network/vds"))] == \
        [plan.mgmt.vds, plan.storage.vds, plan.business_vds]
    assert res["ovsbr_name"] in {n.name for n in host0.nics}

    # VLANs
    url = f"/api/v2/network/vds/{vds_uuid}/vlans"
    created = []
    for net in plan.business[:3]:
        v = api.data(api.post(url, json={"name": net.name, "vlan_id": net.vlan_id, "vds_uuid": vds_uuid}))
        assert list(v) == ["uuid", "name", "vds_uuid", "vlan_id", "type", "enable_dhcp", "vms_count",
                           "vm_snapshots_count", "vm_templates_count", "dhcp_config"]
        assert (v["name"], v["vlan_id"], v["vds_uuid"], v["type"], v["enable_dhcp"], v["dhcp_config"]) == \
            (net.name, net.vlan_id, vds_uuid, 3, False, None)
        created.append(v)
    for bad_id in (4095, -1, "12", True, None):
        assert_envelope_error(api.post(url, json={"name": "x", "vlan_id": bad_id, "vds_uuid": vds_uuid}), 400)
    assert_envelope_error(api.post(url, json={"name": plan.business[0].name, "vlan_id": 7, "vds_uuid": vds_uuid}),
                          400, plan.business[0].name)
    assert_envelope_error(api.post(url, json={"name": "y", "vlan_id": 7, "vds_uuid": str(uuid.uuid4())}), 400)
    assert_envelope_error(api.post(f"/api/v2/network/vds/{uuid.uuid4()}/vlans",
                                   json={"name": "z", "vlan_id": 7}), 404)
    assert api.data(api.post(url, json={"name": "edge-0", "vlan_id": 0, "vds_uuid": vds_uuid}))["vlan_id"] == 0
    assert api.data(api.post(url, json={"name": "edge-4094", "vlan_id": 4094, "vds_uuid": vds_uuid}))
    assert api.data(api.get(url))[:3] == created
    assert api.data(api.get(f"/api/v2/network/vds/{vds_uuid}"))["vlans_count"] == 5

    # 存储独立: business networks on the management VDS; vlans_count counts mgt-network and default too
    mgmt = next(v for v in api.data(api.get("/api/v2/network/vds")) if v["name"] == plan.mgmt.vds)
    murl = f"/api/v2/network/vds/{mgmt['uuid']}/vlans"
    assert_envelope_error(api.post(murl, json={"name": "mgt-network", "vlan_id": 5}), 400, "mgt-network")
    api.data(api.post(murl, json={"name": plan.business[0].name, "vlan_id": 1120, "vds_uuid": mgmt["uuid"]}))
    assert api.data(api.get(f"/api/v2/network/vds/{mgmt['uuid']}"))["vlans_count"] == 3
    assert [v["type"] for v in api.data(api.get(murl))] == [1, 3, 3]


def test_vds_job_failure_frees_the_nics(authed, plan):
    api, sim = authed, authed.sim
    sim.faults.add({"method": "POST", "path": "/api/v2/network/vds", "times": 1,
                    "action": {"operation": "fail", "msg": "ovs-vsctl add-br failed"}})
    job = api.wait_job(api.data(api.post("/api/v2/network/vds", json=business_vds_body(plan, sim)))["job_id"])
    assert job["state"] == "failed" and job["message"] == "ovs-vsctl add-br failed"
    assert job["error"]["msg"] == "ovs-vsctl add-br failed"
    assert [v["name"] for v in api.data(api.get("/api/v2/network/vds"))] == [plan.mgmt.vds, plan.storage.vds]
    job = api.wait_job(api.data(api.post("/api/v2/network/vds", json=business_vds_body(plan, sim)))["job_id"])
    assert job["state"] == "done"


# --------------------------------------------------------------------------- SVT upload
def upload_chunk(api: Api, vol: dict, i: int, data: bytes, **kw) -> httpx.Response:
    return api.post("/api/v2/svt_image/upload_template",
                    params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": i, "image_uuid": vol["image_uuid"]},
                    files={"file": ("SMTX_VMTOOLS.iso", data, "application/octet-stream")}, **kw)


def test_svt_upload(authed):
    api, sim = authed, authed.sim
    sim.fisheye.chunk_size = 64 * KIB
    data = os.urandom(3 * 64 * KIB + 1000)
    chunks = [data[i:i + 64 * KIB] for i in range(0, len(data), 64 * KIB)]
    assert_envelope_error(api.post("/api/v2/svt_image/create_volume", params={"name": "a.iso", "size": "x"}), 400)
    assert_envelope_error(api.post("/api/v2/svt_image/create_volume", params={"name": "a.iso", "size": 0}), 400)
    vol = api.data(api.post("/api/v2/svt_image/create_volume", params={"name": "SMTX_VMTOOLS.iso",
                                                                       "size": len(data)}))
    assert list(vol) == ["chunk_size", "image_path", "image_uuid", "to_upload", "zbs_volume_id"]
    assert vol["chunk_size"] == 64 * KIB and vol["to_upload"] == [0, 1, 2, 3]
    assert vol["image_path"] == f"/usr/share/smartx/images/vmtools/{vol['image_uuid']}"
    assert api.data(upload_chunk(api, vol, 0, chunks[0]))["to_upload"] == [1, 2, 3]
    # wrong sizes, out of range, wrong ids, not multipart: 400 and nothing counted
    assert_envelope_error(upload_chunk(api, vol, 1, chunks[1][:100]), 400, "expected 65536")
    assert_envelope_error(upload_chunk(api, vol, 3, chunks[0]), 400, "expected 1000")
    assert_envelope_error(upload_chunk(api, vol, 4, chunks[0]), 400, "out of range")
    assert_envelope_error(upload_chunk(api, vol, -1, chunks[0]), 400, "out of range")
    assert_envelope_error(upload_chunk(api, dict(vol, zbs_volume_id=str(uuid.uuid4())), 1, chunks[1]), 400)
    assert_envelope_error(upload_chunk(api, dict(vol, image_uuid=str(uuid.uuid4())), 1, chunks[1]), 400)
    assert_envelope_error(api.post("/api/v2/svt_image/upload_template", content=chunks[1],
                                   params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": 1,
                                           "image_uuid": vol["image_uuid"]}), 400, "multipart")
    # a dropped chunk is not counted; its retry is
    sim.faults.add({"path": "/api/v2/svt_image/upload_template", "nth": 1, "action": {"drop": True}})
    with pytest.raises(httpx.TransportError):
        upload_chunk(api, vol, 1, chunks[1])
    assert api.data(upload_chunk(api, vol, 1, chunks[1]))["to_upload"] == [2, 3]
    assert api.data(upload_chunk(api, vol, 2, chunks[2]))["to_upload"] == [3]
    # the field note: the last chunk times out on the client but the server completes it
    sim.faults.add({"path": "/api/v2/svt_image/upload_template", "times": 1, "action": {"delay": 1.0}})
    with pytest.raises(httpx.ReadTimeout):
        upload_chunk(api, vol, 3, chunks[3], timeout=0.3)
    up = sim.fisheye.uploads[vol["image_uuid"]]
    assert up.received == [1, 1, 1, 1] and up.to_upload == [] and up.status == "ready"
    assert up.digests == [hashlib.sha256(c).hexdigest() for c in chunks] and up.bytes_received == len(data)
    assert up.rejected == 5                 # 2 wrong sizes, 2 out of range, 1 not multipart
    img = api.data(api.get(f"/api/v2/images/{vol['image_uuid']}"))
    assert img["status"] == "ready" and img["to_upload"] == [] and img["size"] == len(data)
    assert up in sim.fisheye.svt_images
    # delete + recreate
    assert api.data(api.req("DELETE", f"/api/v2/images/{vol['image_uuid']}")) == {}
    assert_envelope_error(api.req("DELETE", f"/api/v2/images/{vol['image_uuid']}"), 404)
    assert_envelope_error(upload_chunk(api, vol, 0, chunks[0]), 400)
    again = api.data(api.post("/api/v2/svt_image/create_volume", params={"name": "SMTX_VMTOOLS.iso",
                                                                         "size": len(data)}))
    assert again["image_uuid"] != vol["image_uuid"] and again["to_upload"] == [0, 1, 2, 3]
    assert sim.fisheye.upload_by_name("SMTX_VMTOOLS.iso").image_uuid == again["image_uuid"]


def test_svt_upload_default_chunk_size_and_chunked_transfer(authed):
    api, sim = authed, authed.sim
    size = 8 * 1024 * 1024 + 5
    vol = api.data(api.post("/api/v2/svt_image/create_volume", params={"name": "big.iso", "size": size}))
    assert vol["chunk_size"] == 8 * 1024 * 1024 and vol["to_upload"] == [0, 1]
    block = os.urandom(64 * KIB)
    boundary = "simboundary7MA4YWxkTrZu0gW"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.iso\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()

    def body():                                    # a generator: httpx sends it chunked
        yield head
        for _ in range(128):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    r = api.post("/api/v2/svt_image/upload_template", content=body(),
                 headers={"content-type": f"multipart/form-data; boundary={boundary}"},
                 params={"zbs_volume_id": vol["zbs_volume_id"], "chunk_num": 0, "image_uuid": vol["image_uuid"]})
    assert api.data(r)["to_upload"] == [1]
    assert api.data(upload_chunk(api, vol, 1, b"12345"))["to_upload"] == []
    up = sim.fisheye.uploads[vol["image_uuid"]]
    assert up.digests[0] == hashlib.sha256(block * 128).hexdigest() and up.received == [1, 1]
    assert sim.count("POST", "/api/v2/svt_image/upload_template", status=200) == 2


# --------------------------------------------------------------------------- CPU compatibility
def test_cpu_compatibility_round_trip(authed):
    api = authed
    assert api.data(api.get("/api/v2/elf/cluster_recommended_cpu_models")) == {"cpu_models": ["EPYC"]}
    assert api.data(api.get("/api/v2/elf/cluster_cpu_compatibility")) == {"cpu_model": None}
    assert_envelope_error(api.put("/api/v2/elf/cluster_cpu_compatibility", json={"cpu_model": "Haswell"}), 400,
                          "Haswell")
    assert api.data(api.put("/api/v2/elf/cluster_cpu_compatibility", json={"cpu_model": "EPYC"})) == {}
    assert api.data(api.get("/api/v2/elf/cluster_cpu_compatibility")) == {"cpu_model": "EPYC"}


# --------------------------------------------------------------------------- control endpoint
def test_control_endpoint_for_fisheye(authed, plan):
    from mocks.remote import RemoteSimulator

    api, sim = authed, authed.sim
    remote = RemoteSimulator(sim.control_url)
    try:
        out = remote.fisheye_control(revoke_tokens=True, break_bmc=str(plan.hosts[0].bmc_ip), chunk_size=4096)
        assert out["revoked"] == 1 and out["broken_bmcs"] == [str(plan.hosts[0].bmc_ip)] and out["chunk_size"] == 4096
        assert_envelope_error(api.get("/api/v2/settings/dns"), 401)
        api.login()
        vol = api.data(api.post("/api/v2/svt_image/create_volume", params={"name": "c.iso", "size": 5000}))
        assert vol["to_upload"] == [0, 1]
        api.data(upload_chunk(api, vol, 1, b"z" * 904))
        (up,) = remote.uploads()
        assert up["received"] == [0, 1] and up["to_upload"] == [0] and up["name"] == "c.iso"
        assert remote.fisheye_control(repair_bmc=str(plan.hosts[0].bmc_ip))["broken_bmcs"] == []
    finally:
        remote.close()
