"""Simulated CloudTower (guide §04–§05): GraphQL ``POST /api`` and REST ``/v2/api/*`` over real HTTPS on
loopback, the http->https redirect, warm-up, snapshot / restore."""
from __future__ import annotations

import datetime as dt
import json
import re
import socket
import uuid

import httpx
import pytest

from mocks import Simulator
from mocks.cloudtower import GUIDE_ENCODED_LOGIN_PASSWORD, GUIDE_ENCODED_ROOT_PASSWORD
from mocks.cloudtower.service import start, stop
from mocks.testing import load_plan, plan_path, ssl_context

from .test_sim_fisheye import ROOT_PW, deploy

TOWER_PW = "HC!r0cks"

# the guide's queries, verbatim (§04)
Q_CREATE_ROOT = ("mutation createRootUser($root_password: String!, $now: DateTime!) {\n  createUser(data: {name: "
                 "\"root\", source: LOCAL, role: ROOT, username: \"root\", display_username: \"root\", password: "
                 "$root_password, password_recover_qa: {enabled: false, items: []}, password_updated_at: $now}, "
                 "effect: {encoded: true}) {\n    id\n    __typename\n  }\n}\n")
Q_CREATE_ORG = ("mutation createOrganization($data: OrganizationCreateInput!) {\n  createOrganization(data: $data) "
                "{\n    id\n    __typename\n  }\n}\n")
Q_CHECK = ("query checkTowerIsSetup {\n  organizations(first: 1) {\n    id\n    name\n    __typename\n  }\n  "
           "userCreated {\n    created\n    __typename\n  }\n}\n")
Q_NTP = ("mutation updateCloudTowerNtpUrl($data: NtpCommonUpdateInput!) {\n  updateCloudTowerNtpUrl(data: $data) "
         "{\n    ntp_service_url\n    __typename\n  }\n}\n")
Q_LICENSE = ("query deployedLicense {\n  deploys(first: 1) {\n    id\n    license {\n      id\n      license_serial\n"
             "      maintenance_end_date\n      maintenance_start_date\n      max_chunk_num\n      max_cluster_num\n"
             "      max_vm_num\n      used_vm_num\n      sign_date\n      expire_date\n      software_edition\n"
             "      type\n      vendor\n      __typename\n    }\n    __typename\n  }\n}\n")
Q_LOGIN = ("mutation login($data: LoginInput!) {\n  login(data: $data, effect: {encoded: true}) {\n    token\n    uid\n"
           "    need_mfa\n    mfa_meta {\n      recipient\n      mid\n      type\n      valid\n      __typename\n"
           "    }\n    __typename\n  }\n}\n")
LICENSE_KEYS = ["id", "license_serial", "maintenance_end_date", "maintenance_start_date", "max_chunk_num",
                "max_cluster_num", "max_vm_num", "used_vm_num", "sign_date", "expire_date", "software_edition",
                "type", "vendor", "__typename"]
CUID = re.compile(r"^c[0-9a-z]{24}$")


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    p = plan_path(tmp_path_factory.mktemp("ctplan"), hosts=3)
    if p is None:
        pytest.skip("no plan: neither plan.example nor the vendor template is available")
    return load_plan(p)


@pytest.fixture
def make_sim(monkeypatch):
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    owned: list = []

    def make(plan, **kw):
        kw.setdefault("time_scale", 0.01)
        s = Simulator.from_plan(plan, **kw).start()
        owned.append(s)
        return s

    make.owned = owned
    yield make
    for o in reversed(owned):
        (o.http.close if isinstance(o, Tower) else o.close)()


class Tower:
    """A tiny CloudTower client: GraphQL + REST over https (and http for the redirect)."""

    def __init__(self, sim: Simulator, ip: str):
        self.sim, self.ip = sim, ip
        self.http = httpx.Client(verify=ssl_context(sim), timeout=10)
        self.token: str | None = None

    def url(self, path: str, port: int = 443) -> str:
        return self.sim.url(self.ip, port) + path

    def gql(self, op: str, query: str, variables: dict | None = None, *, token=None, **kw) -> httpx.Response:
        t = self.token if token is None else token
        headers = {"Authorization": t} if t else {}
        return self.http.post(self.url("/api"), json={"operationName": op, "variables": variables or {},
                                                      "query": query}, headers=headers, **kw)

    def rest(self, name: str, body=None, *, token=None, raw_auth: str | None = None) -> httpx.Response:
        t = self.token if token is None else token
        headers = {"Authorization": raw_auth if raw_auth is not None else t} if (t or raw_auth) else {}
        return self.http.post(self.url(f"/v2/api/{name}"), json={} if body is None else body, headers=headers)

    def ok(self, r: httpx.Response):
        assert r.status_code == 200, r.text
        return r.json()

    def data(self, r: httpx.Response) -> dict:
        body = self.ok(r)
        assert set(body) == {"data"}, body
        return body["data"]

    # ---- the guide's §04 steps
    def create_root(self, pw: str = GUIDE_ENCODED_ROOT_PASSWORD) -> httpx.Response:
        return self.gql("createRootUser", Q_CREATE_ROOT, {"root_password": pw, "now": "2025-09-30T18:42:47.920Z"})

    def create_org(self, name: str, **kw) -> httpx.Response:
        return self.gql("createOrganization", Q_CREATE_ORG, {"data": {"name": name}}, **kw)

    def check(self) -> dict:
        return self.data(self.gql("checkTowerIsSetup", Q_CHECK))

    def login(self, pw: str = TOWER_PW) -> httpx.Response:
        r = self.rest("login", {"username": "root", "password": pw, "source": "LOCAL"}, token="")
        if r.status_code == 200:
            self.token = r.json()["data"]["token"]
        return r

    def setup(self, org: str = "八九实验室") -> str:
        assert self.create_root().status_code == 200
        org_id = self.data(self.create_org(org))["createOrganization"]["id"]
        assert self.login().status_code == 200
        return org_id


@pytest.fixture
def ct(plan, make_sim) -> Tower:
    sim = make_sim(plan)
    start(sim, str(plan.cloudtower.ip))
    t = Tower(sim, str(plan.cloudtower.ip))
    make_sim.owned.append(t)
    return t


def gql_error(r: httpx.Response, status: int, code: str, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body.get("data") is None and len(body["errors"]) == 1, body
    err = body["errors"][0]
    assert err["extensions"]["code"] == code, err
    message = err["message"].replace("'", '"')     # graphql-core 3.3 (graphql-js 17) quotes names with '
    for n in needles:
        assert n in message, err["message"]
    return err


def rest_error(r: httpx.Response, status: int, *needles: str, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert {"message", "status", "path"} <= set(body) <= {"message", "status", "path", "code", "props"}, body
    assert body["status"] == status and body["path"].startswith("/v2/api/"), body
    if code is not None:
        assert body.get("code") == code, body
    for n in needles:
        assert n in body["message"], body["message"]
    return body


def accepts(sim, address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(sim.local(address, port)) == 0


# --------------------------------------------------------------------------- endpoints
def test_down_before_start_up_after(plan, make_sim):
    sim = make_sim(plan)
    ip = str(plan.cloudtower.ip)
    assert (ip, 443, "tcp") in sim.address_map and (ip, 80, "tcp") in sim.address_map
    assert not accepts(sim, ip, 443) and not accepts(sim, ip, 80)
    assert not sim.cloudtower.towers          # the family holds no tower until one starts
    tower = start(sim, ip)
    assert accepts(sim, ip, 443) and accepts(sim, ip, 80) and sim.is_alive(ip)
    assert sim.state.cloudtower.tower(ip) is tower and start(sim, ip) is tower      # one tower per IP
    t = Tower(sim, ip)
    make_sim.owned.append(t)
    r = t.http.get(t.url("/"))
    assert r.status_code == 200 and "CloudTower" in r.text
    stop(sim, ip)
    assert not accepts(sim, ip, 443)
    start(sim, ip)
    assert accepts(sim, ip, 443)


def test_http_redirects_and_a_followed_login_fails(ct):
    r = httpx.post(ct.url("/v2/api/login", 80), json={"username": "root", "password": TOWER_PW, "source": "LOCAL"})
    assert r.status_code == 301, r.text
    assert r.headers["location"] == f"https://{ct.ip}/v2/api/login"
    r = httpx.get(ct.url("/v2/api/get-clusters?x=1", 80))
    assert r.status_code == 301 and r.headers["location"] == f"https://{ct.ip}/v2/api/get-clusters?x=1"
    # what a client following the 301 does: the same URL as a GET (body dropped)
    r = ct.http.get(ct.url("/v2/api/login"))
    rest_error(r, 404, "Cannot GET /v2/api/login")
    assert ct.sim.count("POST", "/v2/api/login", status=301, port=80) == 1
    assert ct.sim.count("GET", "/v2/api/login", status=404, port=443) == 1


# --------------------------------------------------------------------------- GraphQL §04
def test_graphql_setup_flow(ct):
    assert ct.check() == {"organizations": [], "userCreated": {"created": False, "__typename": "UserCreatedData"}}
    d = ct.data(ct.create_root())
    assert set(d["createUser"]) == {"id", "__typename"} and d["createUser"]["__typename"] == "User"
    assert CUID.match(d["createUser"]["id"])
    gql_error(ct.create_root(), 200, "ALREADY_EXISTS", "root user already exists")
    assert ct.check()["userCreated"]["created"] is True
    d = ct.data(ct.create_org("八九实验室"))["createOrganization"]
    assert set(d) == {"id", "__typename"} and d["__typename"] == "Organization"
    chk = ct.check()
    assert chk["organizations"] == [{"id": d["id"], "name": "八九实验室", "__typename": "Organization"}]
    # a second organization: only with a token once the tower is set up; duplicate names refused
    gql_error(ct.create_org("八九实验室"), 200, "UNAUTHENTICATED")
    assert ct.login().status_code == 200
    gql_error(ct.create_org("八九实验室"), 200, "ALREADY_EXISTS", "already exists")
    assert ct.data(ct.create_org("other"))["createOrganization"]["id"] != d["id"]
    assert len(ct.check()["organizations"]) == 1                                   # organizations(first: 1)


def test_graphql_rejects_bad_requests(ct):
    gql_error(ct.gql("createRootUser", Q_CREATE_ROOT, {"root_password": GUIDE_ENCODED_ROOT_PASSWORD}), 400,
              "BAD_USER_INPUT", '"$now"', '"DateTime!"', "provided")
    gql_error(ct.gql("createRootUser", Q_CREATE_ROOT, {"root_password": 5, "now": "2025-09-30T18:42:47.920Z"}),
              400, "BAD_USER_INPUT", "String cannot represent")
    gql_error(ct.gql("createRootUser", Q_CREATE_ROOT, {"root_password": GUIDE_ENCODED_ROOT_PASSWORD, "now": "soon"}),
              400, "BAD_USER_INPUT", "DateTime")
    gql_error(ct.create_root("SEMhcjBja3M="), 200, "BAD_USER_INPUT", "cannot decode")     # not the guide's string
    gql_error(ct.gql("createOrganization", Q_CREATE_ORG, {"data": {}}), 400, "BAD_USER_INPUT",
              '"$data"', "required", '"name"')
    gql_error(ct.gql("createOrganization", Q_CREATE_ORG, {"data": {"name": "x", "nom": "y"}}), 400,
              "BAD_USER_INPUT", '"nom"', '"OrganizationCreateInput"')
    gql_error(ct.gql("createOrganization", Q_CREATE_ORG, {"data": None}), 400, "BAD_USER_INPUT")
    gql_error(ct.gql("dropEverything", "mutation dropEverything { drop }"), 400, "GRAPHQL_VALIDATION_FAILED",
              "does not implement", "createRootUser")
    gql_error(ct.gql("checkTowerIsSetup", "query checkTowerIsSetup { organizations { id nam } }"), 400,
              "GRAPHQL_VALIDATION_FAILED", 'Cannot query field "nam" on type "Organization"')
    gql_error(ct.gql("checkTowerIsSetup", "query checkTowerIsSetup { organizations { id }"), 400,
              "GRAPHQL_PARSE_FAILED", "Syntax Error")
    gql_error(ct.gql("createRootUser", Q_CHECK), 400, "OPERATION_RESOLUTION_FAILURE", "Unknown operation")
    r = ct.http.post(ct.url("/api"), content=b"{not json", headers={"content-type": "application/json"})
    gql_error(r, 400, "BAD_REQUEST")
    assert ct.check()["userCreated"]["created"] is False               # nothing above created anything


def test_graphql_aliases_fragments_typename(ct):
    ct.setup("C89")
    q = ("query checkTowerIsSetup { orgs: organizations(where: {name: \"C89\"}) { ...O } "
         "u: userCreated { created @include(if: $yes) } __typename }\nfragment O on Organization { name __typename }")
    gql_error(ct.gql("checkTowerIsSetup", q), 400, "GRAPHQL_VALIDATION_FAILED", '"$yes" is not defined')
    q = q.replace("query checkTowerIsSetup {", "query checkTowerIsSetup($yes: Boolean = true) {")
    assert ct.data(ct.gql("checkTowerIsSetup", q)) == {
        "orgs": [{"name": "C89", "__typename": "Organization"}], "u": {"created": True}, "__typename": "Query"}
    ct.data(ct.create_org("a-org"))
    q = "query checkTowerIsSetup($o: OrganizationOrderByInput) { organizations(orderBy: $o, skip: 0) { name } }"
    names = lambda r: [o["name"] for o in ct.data(r)["organizations"]]       # noqa: E731
    assert names(ct.gql("checkTowerIsSetup", q, {"o": "name_DESC"})) == ["a-org", "C89"]
    literal = q.replace("($o: OrganizationOrderByInput)", "").replace("$o,", "name_ASC,")   # no unused $o
    assert names(ct.gql("checkTowerIsSetup", literal)) == ["C89", "a-org"]
    gql_error(ct.gql("checkTowerIsSetup", q, {"o": "sideways"}), 400, "BAD_USER_INPUT")
    gql_error(ct.gql("checkTowerIsSetup", q, {"o": "nope_ASC"}), 400, "BAD_USER_INPUT", '"nope_ASC"',
              '"OrganizationOrderByInput"')                  # an enum of the fields, as on CloudTower


def test_ntp_comma_in_semicolon_out(ct):
    ct.setup()
    v = {"data": {"ntp_service_url": "10.0.0.2,ntp.c89.fun,10.0.0.1"}}
    gql_error(ct.gql("updateCloudTowerNtpUrl", Q_NTP, v, token="-"), 200, "UNAUTHENTICATED")
    gql_error(ct.gql("updateCloudTowerNtpUrl", Q_NTP, v, token=f"Bearer {ct.token}"), 200, "UNAUTHENTICATED",
              "Bearer")
    d = ct.data(ct.gql("updateCloudTowerNtpUrl", Q_NTP, v))
    assert d == {"updateCloudTowerNtpUrl": {"ntp_service_url": "10.0.0.2;ntp.c89.fun;10.0.0.1",
                                            "__typename": "UpdateNtpCommonResult"}}
    tower = ct.sim.state.cloudtower.tower(ct.ip)
    assert tower.ntp_servers == ["10.0.0.2", "ntp.c89.fun", "10.0.0.1"]
    gql_error(ct.gql("updateCloudTowerNtpUrl", Q_NTP, {"data": {"ntp_service_url": "10.0.0.2，10.0.0.1"}}), 200,
              "BAD_USER_INPUT", "not an IP address or host name")
    assert tower.ntp_servers == ["10.0.0.2", "ntp.c89.fun", "10.0.0.1"]


def test_deployed_license(ct, plan, make_sim):
    ct.setup()
    gql_error(ct.gql("deployedLicense", Q_LICENSE, token="-"), 200, "UNAUTHENTICATED")
    d = ct.data(ct.gql("deployedLicense", Q_LICENSE))
    (dep,) = d["deploys"]
    assert list(dep) == ["id", "license", "__typename"] and dep["__typename"] == "Deploy"
    lic = dep["license"]
    assert list(lic) == LICENSE_KEYS
    assert uuid.UUID(lic["license_serial"]) and lic["type"] == "TRIAL" and lic["software_edition"] == "ENTERPRISE"
    assert lic["vendor"] == "SMTX" and lic["maintenance_end_date"] is None and lic["max_vm_num"] == 0
    sign = dt.datetime.fromisoformat(lic["sign_date"].replace("Z", "+00:00"))
    expire = dt.datetime.fromisoformat(lic["expire_date"].replace("Z", "+00:00"))
    assert expire - sign == dt.timedelta(days=90) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                                                                lic["sign_date"])
    other = make_sim(plan)                                   # deterministic: same IP, same serial
    assert start(other, ct.ip).serial == lic["license_serial"]


def test_graphql_login_sets_cookie(ct):
    ct.setup()
    v = {"data": {"username": "root", "password": GUIDE_ENCODED_LOGIN_PASSWORD, "source": "LOCAL",
                  "auth_config_id": None}}
    r = ct.gql("login", Q_LOGIN, v, token="-")
    d = ct.data(r)["login"]
    assert d["token"].startswith("eyJ") and d["uid"] is None and d["mfa_meta"] is None and d["__typename"] == "Login"
    assert "connect.sid=s%3A" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    sid = r.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    r = ct.http.post(ct.url("/api"), json={"operationName": "deployedLicense", "variables": {}, "query": Q_LICENSE},
                     headers={"Cookie": f"connect.sid={sid}"})
    assert ct.data(r)["deploys"][0]["license"]["vendor"] == "SMTX"
    v["data"]["password"] = GUIDE_ENCODED_ROOT_PASSWORD[:-4] + "AAA="
    gql_error(ct.gql("login", Q_LOGIN, v, token="-"), 200, "UNAUTHENTICATED")


# --------------------------------------------------------------------------- REST
def test_rest_login_and_raw_authorization(ct):
    rest_error(ct.login(), 400, "not been set up")
    ct.create_root()
    rest_error(ct.login("wrong-password"), 400, "invalid username or password")
    rest_error(ct.rest("login", {"username": "root", "password": TOWER_PW, "source": "LDAP"}, token=""), 400)
    r = ct.login()
    assert r.json() == {"data": {"token": ct.token}, "task_id": None}
    tower = ct.sim.state.cloudtower.tower(ct.ip)
    assert ct.token in tower.issued_tokens
    rest_error(ct.rest("get-organizations", token=""), 401, "missing Authorization")
    rest_error(ct.rest("get-organizations", raw_auth=f"Bearer {ct.token}"), 401, "Bearer")
    rest_error(ct.rest("get-organizations", raw_auth="nope"), 401)
    assert ct.ok(ct.rest("get-organizations")) == []
    rest_error(ct.rest("get-everything"), 404, "Cannot POST /v2/api/get-everything")
    r = ct.http.post(ct.url("/v2/api/get-organizations"), headers={"Authorization": ct.token})   # no body at all
    assert ct.ok(r) == []
    assert tower.revoke_tokens() == 1
    rest_error(ct.rest("get-organizations"), 401, "invalid or revoked")


def test_get_organizations_filters(ct):
    ct.setup("C89")
    for name in ("b-org", "a-org"):
        ct.data(ct.create_org(name))
    orgs = ct.ok(ct.rest("get-organizations"))
    assert [o["name"] for o in orgs] == ["C89", "b-org", "a-org"]
    assert all(set(o) == {"id", "name", "datacenters"} and CUID.match(o["id"]) for o in orgs)
    by = lambda body: [o["name"] for o in ct.ok(ct.rest("get-organizations", body))]   # noqa: E731
    assert by({"where": {"name": "C89"}}) == ["C89"]
    assert by({"where": {"id": orgs[1]["id"]}}) == ["b-org"]
    assert by({"where": {"name_in": ["a-org", "C89"]}}) == ["C89", "a-org"]
    assert by({"where": {"name_starts_with": "a"}}) == ["a-org"]
    assert by({"where": {"OR": [{"name": "a-org"}, {"name": "b-org"}]},
               "orderBy": "name_ASC"}) == ["a-org", "b-org"]
    assert by({"orderBy": "name_DESC", "skip": 1, "first": 1}) == ["a-org"]        # "C89" < "a-org" < "b-org"
    assert by({"orderBy": "name_ASC", "last": 1}) == ["b-org"]
    rest_error(ct.rest("get-organizations", {"where": {"nam": "C89"}}), 400, '"nam" is not a filter')
    rest_error(ct.rest("get-organizations", {"first": -1}), 400, "first")
    rest_error(ct.rest("get-organizations", []), 400)


def test_create_datacenter_lists_in_lists_out(ct):
    org_id = ct.setup("C89")
    rest_error(ct.rest("create-datacenter", {"organization_id": org_id, "name": "DC1"}), 400, "JSON array")
    rest_error(ct.rest("create-datacenter", [{"organization_id": "nope", "name": "DC1"}]), 404, "organization")
    rest_error(ct.rest("create-datacenter", [{"organization_id": org_id}]), 400, "name is required")
    out = ct.ok(ct.rest("create-datacenter", [{"organization_id": org_id, "name": "八九实验室"}]))
    assert len(out) == 1 and set(out[0]) == {"data", "task_id"} and out[0]["task_id"] is None   # the guide's answer
    dc = out[0]["data"]
    assert list(dc) == ["id", "name", "cluster_num", "host_num", "vm_num", "total_data_capacity", "used_data_space",
                        "failure_data_space", "total_cpu_hz", "used_cpu_hz", "total_memory_bytes",
                        "used_memory_bytes", "organization", "clusters", "labels"]
    assert dc["organization"] == {"id": org_id, "name": "C89"} and dc["clusters"] == [] and dc["cluster_num"] == 0
    rest_error(ct.rest("create-datacenter", [{"organization_id": org_id, "name": "八九实验室"}]), 400, "already exists")
    assert ct.ok(ct.rest("get-datacenters", {"where": {"organization": {"id": org_id}}})) == [dc]
    assert ct.ok(ct.rest("get-organizations"))[0]["datacenters"] == [{"id": dc["id"], "name": "八九实验室"}]
    # knob: a creation task (PENDING -> EXECUTING -> SUCCESSED on simulated time)
    tower = ct.sim.state.cloudtower.tower(ct.ip)
    tower.datacenter_task, tower.task_pending = True, 30.0
    (item,) = ct.ok(ct.rest("create-datacenter", [{"organization_id": org_id, "name": "DC2"}]))
    tid = item["task_id"]
    assert CUID.match(tid)
    (task,) = ct.ok(ct.rest("get-tasks", {"where": {"id": tid}}))
    assert task["status"] == "PENDING" and task["resource_type"] == "Datacenter"
    assert {"id", "args", "description", "internal", "local_created_at", "progress", "snapshot", "status",
            "steps"} <= set(task)
    ct.sim.advance(31)
    assert ct.ok(ct.rest("get-tasks", {"where": {"id": tid}}))[0]["status"] == "EXECUTING"
    ct.sim.advance(10)
    (task,) = ct.ok(ct.rest("get-tasks", {"where": {"id": tid}}))
    assert task["status"] == "SUCCESSED" and task["progress"] == 1.0 and task["finished_at"]


# --------------------------------------------------------------------------- §05: connect the cluster
@pytest.fixture
def deployed(plan, make_sim):
    """A deployed cluster with fisheye root set and the VIP applied, plus a set-up CloudTower."""
    sim = make_sim(plan)
    deploy(sim, plan)
    sim.fisheye.setup_root(ROOT_PW, ROOT_PW)
    sim.fisheye.set_vip(str(plan.vip), None)
    sim.advance(30)
    assert accepts(sim, str(plan.vip), 443)
    start(sim, str(plan.cloudtower.ip), setup={"organization": "C89", "root_password": TOWER_PW})
    t = Tower(sim, str(plan.cloudtower.ip))
    make_sim.owned.append(t)
    assert t.login().status_code == 200
    org_id = t.ok(t.rest("get-organizations"))[0]["id"]
    t.dc = t.ok(t.rest("create-datacenter", [{"organization_id": org_id, "name": "DC"}]))[0]["data"]
    return t


def test_connect_cluster_initializing_then_connected(deployed, plan):
    ct, sim, vip = deployed, deployed.sim, str(plan.vip)
    def body(**kw):
        return [{"datacenter_id": ct.dc["id"], "ip": vip, "username": "root", "password": ROOT_PW} | kw]
    rest_error(ct.rest("connect-cluster", body()[0]), 400, "JSON array")
    rest_error(ct.rest("connect-cluster", body(password="wrong-pass")), 400, code="LOAD_CLUSTER_UNAUTHORIZED")
    rest_error(ct.rest("connect-cluster", body(ip=str(plan.cloudtower.ip))), 400, code="LOAD_CLUSTER_NOT_FOUND")
    sim.set_up(vip, 443, False)
    rest_error(ct.rest("connect-cluster", body()), 400, code="LOAD_CLUSTER_NETWORK_ERROR")
    sim.set_up(vip, 443, True)
    (item,) = ct.ok(ct.rest("connect-cluster", body()))
    c = item["data"]
    assert set(item) == {"data", "task_id"} and CUID.match(item["task_id"])
    assert c["connect_state"] == "INITIALIZING" and c["ip"] == vip and c["name"] == plan.cluster_name
    assert c["type"] == "SMTX_OS" and c["hypervisor"] == "ELF" and c["architecture"] == "X86_64"
    assert c["dns"] == [] and c["ntp_servers"] == [] and c["recommended_cpu_models"] == []
    rest_error(ct.rest("connect-cluster", body()), 400, "already connected")
    (cl,) = ct.ok(ct.rest("get-clusters", {"where": {"id": c["id"]}}))
    assert cl["connect_state"] == "INITIALIZING" and cl["hosts"] == []
    (task,) = ct.ok(ct.rest("get-tasks", {"where": {"id": item["task_id"]}}))
    assert task["status"] in ("PENDING", "EXECUTING") and "password" not in task["args"]
    seen, waited = [], 0
    while waited <= 600:                                  # field note: a few minutes; 10 minutes at most
        st = ct.ok(ct.rest("get-clusters", {"where": {"ip": vip}}))[0]["connect_state"]
        if not seen or seen[-1] != st:
            seen.append(st)
        if st == "CONNECTED":
            break
        sim.advance(30)
        waited += 30
    assert seen == ["INITIALIZING", "CONNECTED"] and 60 <= waited <= 600, (seen, waited)
    assert ct.ok(ct.rest("get-tasks", {"where": {"id": item["task_id"]}}))[0]["status"] == "SUCCESSED"
    (cl,) = ct.ok(ct.rest("get-clusters", {"where": {"datacenters_some": {"id": ct.dc["id"]}}}))
    assert sorted(h["management_ip"] for h in cl["hosts"]) == sorted(str(h.mgmt_ip) for h in plan.hosts)
    assert cl["host_num"] == len(plan.hosts) and cl["management_vip"] == vip
    assert cl["recommended_cpu_models"] and cl["total_cpu_models"][0] == "host_passthrough"
    assert cl["settings"]["id"] and cl["license_serial"] == cl["local_id"] == sim.fisheye.license()["serial"]
    assert cl["datacenters"] == [{"id": ct.dc["id"], "name": "DC"}]
    hosts = ct.ok(ct.rest("get-hosts", {"where": {"cluster": {"id": cl["id"]}}}))
    assert sorted(h["management_ip"] for h in hosts) == sorted(str(h.mgmt_ip) for h in plan.hosts)
    vdses = ct.ok(ct.rest("get-vdses", {"where": {"cluster": {"id": cl["id"]}, "internal": False}}))
    assert {v["type"] for v in vdses} >= {"MANAGEMENT"} and all(v["cluster"]["id"] == cl["id"] for v in vdses)
    mgmt = next(v for v in vdses if v["type"] == "MANAGEMENT")
    vlans = ct.ok(ct.rest("get-vlans", {"where": {"vds": {"id": mgmt["id"]}}}))
    assert vlans and all(isinstance(v["vlan_id"], int) and v["vds"]["id"] == mgmt["id"] for v in vlans)
    assert ct.ok(ct.rest("get-datacenters"))[0]["cluster_num"] == 1


def test_connect_cluster_operation_fault_fails_the_task(deployed, plan):
    ct, sim = deployed, deployed.sim
    sim.faults.add({"method": "POST", "path": "/v2/api/connect-cluster", "operation": "fail", "msg": "boom"})
    (item,) = ct.ok(ct.rest("connect-cluster", [{"datacenter_id": ct.dc["id"], "ip": str(plan.vip),
                                                  "username": "root", "password": ROOT_PW}]))
    sim.advance(600)
    (task,) = ct.ok(ct.rest("get-tasks", {"where": {"id": item["task_id"]}}))
    assert task["status"] == "FAILED" and task["error_message"] == "boom"
    assert ct.ok(ct.rest("get-clusters"))[0]["connect_state"] == "CONNECTED_ERROR"
    sim.faults.clear()
    (item,) = ct.ok(ct.rest("connect-cluster", [{"datacenter_id": ct.dc["id"], "ip": str(plan.vip),
                                                  "username": "root", "password": ROOT_PW}]))    # retry allowed
    sim.advance(600)
    assert [c["connect_state"] for c in ct.ok(ct.rest("get-clusters"))] == ["CONNECTED"]


def test_status_faults_answer_in_the_family_style(ct):
    ct.create_root()
    ct.login()
    ct.sim.faults.add({"path": "/v2/api/get-clusters", "status": 500, "times": 1})
    ct.sim.faults.add({"path": "/api", "status": 502, "times": 1})
    rest_error(ct.rest("get-clusters"), 500, "injected fault")
    assert ct.ok(ct.rest("get-clusters")) == []
    r = ct.gql("checkTowerIsSetup", Q_CHECK)
    assert r.status_code == 502 and r.json()["errors"][0]["message"]


# --------------------------------------------------------------------------- presets, warm-up, restore
def test_setup_preset_answers_as_set_up(plan, make_sim):
    sim = make_sim(plan)
    ip = str(plan.cloudtower.ip)
    start(sim, ip, setup={"organization": "八九实验室", "root_password": TOWER_PW})
    t = Tower(sim, ip)
    make_sim.owned.append(t)
    chk = t.check()
    assert chk["userCreated"]["created"] is True and [o["name"] for o in chk["organizations"]] == ["八九实验室"]
    assert t.login().status_code == 200
    gql_error(t.create_root(), 200, "ALREADY_EXISTS")
    with pytest.raises(ValueError):
        start(sim, ip, setup={"organisation": "typo"})


def test_warmup_answers_503_then_the_api(plan, make_sim):
    sim = make_sim(plan)
    ip = str(plan.cloudtower.ip)
    start(sim, ip, warmup=120)
    t = Tower(sim, ip)
    make_sim.owned.append(t)
    assert accepts(sim, ip, 443)
    for r in (t.http.get(t.url("/")), t.http.post(t.url("/api"), json={}), t.login(), t.http.get(t.url("/nope"))):
        assert r.status_code == 503 and "text/html" in r.headers["content-type"], r.text
    assert httpx.post(t.url("/v2/api/login", 80), json={}).status_code == 301      # nginx itself is up
    sim.advance(121)
    assert t.check()["userCreated"]["created"] is False
    t.create_root()
    assert t.login().status_code == 200


def test_snapshot_restore_keeps_the_tower(plan, make_sim):
    sim = make_sim(plan)
    ip = str(plan.cloudtower.ip)
    start(sim, ip)
    t = Tower(sim, ip)
    make_sim.owned.append(t)
    org_id = t.setup("八九实验室")
    t.data(t.gql("updateCloudTowerNtpUrl", Q_NTP, {"data": {"ntp_service_url": "10.0.0.2,ntp.c89.fun"}}))
    dc = t.ok(t.rest("create-datacenter", [{"organization_id": org_id, "name": "DC"}]))[0]["data"]
    serial = sim.state.cloudtower.tower(ip).serial
    snap = sim.snapshot()
    text = json.dumps(snap, ensure_ascii=False)
    assert t.token not in text and TOWER_PW not in text
    assert not any(tok in text for tok in sim.state.cloudtower.tower(ip).issued_tokens)
    snap = json.loads(text)

    again = make_sim(plan, snapshot=snap)
    assert accepts(again, ip, 443) and accepts(again, ip, 80)
    tower = again.state.cloudtower.tower(ip)
    assert tower.issued_tokens == set() and tower.serial == serial
    t2 = Tower(again, ip)
    make_sim.owned.append(t2)
    chk = t2.check()
    assert chk["userCreated"]["created"] is True and chk["organizations"][0]["id"] == org_id
    t2.token = t.token                                                # the session survived (digest only)
    assert t2.ok(t2.rest("get-datacenters")) == [dc]
    assert tower.ntp_service_url == "10.0.0.2;ntp.c89.fun"
    assert t2.login().status_code == 200 and t2.login("wrong-password").status_code == 400
    gql_error(t2.create_root(), 200, "ALREADY_EXISTS")

    # a world saved before any CloudTower started restores without one
    fresh = make_sim(plan)
    plain = make_sim(plan, snapshot=fresh.snapshot())
    assert not plain.cloudtower.towers and not accepts(plain, ip, 443)
