"""Simulated CloudTower, stage 07a (Observability): the OVM operator's chunked uploads (auth, cumulative offsets, a
replayed chunk that corrupts the package, the commit's two tasks over simulated time), the guide's GraphQL documents
(inventory, create, NTP, connect clusters, system services), the instance lifecycle and the OBS VM's SSH on 10022,
the fault recipes, the gql-login profiles, snapshot / restore and the ``_obs_ready`` preset function.
In-process simulators over real HTTPS on loopback, started from a ``cluster-attached`` snapshot."""
from __future__ import annotations

import base64
import io
import json
import os
import tarfile

import httpx
import paramiko
import pytest

from mocks import Simulator
from mocks.cloudtower.obs import (APP_PKG_AT, APP_PKG_S, INSTALL_PKG_S, OBS_INSTALL_S, OBS_VM_LEAD_S, GzipCheck,
                                  ksuid, package_of)
from mocks.cloudtower.users import GUIDE_ENCODED_LOGIN_PASSWORD
from mocks.presets import _obs_ready
from mocks.ssh import ssh_service
from mocks.testing import ssl_context

from .ct_world import preset_snapshot, three_host_plan

PKG = "Observability-X86_64-v1.4.2-release.20250926-24.tar.gz"
VERSION = "v1.4.2-release.20250926"
BASIC = "Basic " + base64.b64encode(b"o11y:HC!r0cks").decode()
OVM = "/api/ovm-operator/api"
Q_LOGIN = ("mutation login($data: LoginInput!) {\n  login(data: $data, effect: {encoded: true}) {\n    token\n    uid\n"
           "    need_mfa\n    mfa_meta {\n      recipient\n      mid\n      type\n      valid\n      __typename\n    }\n"
           "    __typename\n  }\n}\n")
# the guide's documents, verbatim with __typename (G L2325, L2492, L2694, L2719, L2774)
Q_INVENTORY = (
    "query observabilityInstanceAndApps {\n  bundleApplicationPackages {\n    id\n    name\n    version\n    arch\n"
    "    application_packages {\n      id\n      architecture\n      version\n      applications {\n        id\n"
    "        name\n        __typename\n      }\n      __typename\n    }\n    host_plugin_packages {\n      id\n"
    "      arch\n      version\n      __typename\n    }\n    __typename\n  }\n  bundleApplicationInstances {\n    id\n"
    "    name\n    status\n    application {\n      id\n      instances {\n        id\n        vm {\n          id\n"
    "          status\n          cpu_usage\n          memory_usage\n          __typename\n        }\n"
    "        __typename\n      }\n      __typename\n    }\n    vm_spec {\n      ip\n      subnet_mask\n"
    "      gateway\n      vlan_id\n      vcpu_count\n      memory_size_bytes\n      storage_size_bytes\n"
    "      __typename\n    }\n    description\n    connected_clusters {\n      id\n      name\n      status\n"
    "      migration_status\n      cluster {\n        id\n        name\n        hosts {\n          id\n          name\n"
    "          __typename\n        }\n        type\n        __typename\n      }\n      host_plugin {\n        id\n"
    "        host_plugin_instances\n        __typename\n      }\n      observability_connected_cluster {\n"
    "        id\n        traffic_enabled\n        status\n        __typename\n      }\n      __typename\n    }\n"
    "    bundle_application_package {\n      id\n      version\n      arch\n      __typename\n    }\n"
    "    health_status\n    connected_system_services {\n      id\n      type\n      tenant_id\n"
    "      system_service {\n        id\n        name\n        __typename\n      }\n      instances {\n"
    "        state\n        __typename\n      }\n      __typename\n    }\n    __typename\n  }\n"
    "  bundleApplicationConnectedClusters {\n    id\n    name\n    status\n    migration_status\n    cluster {\n"
    "      id\n      name\n      local_id\n      connect_state\n      version\n      type\n      __typename\n    }\n"
    "    bundle_application_instance {\n      id\n      name\n      status\n      health_status\n"
    "      bundle_application_package {\n        id\n        version\n        __typename\n      }\n"
    "      vm_spec {\n        ip\n        __typename\n      }\n      connected_clusters {\n        id\n        name\n"
    "        cluster {\n          id\n          local_id\n          name\n          __typename\n        }\n"
    "        host_plugin {\n          id\n          host_plugin_instances\n          __typename\n        }\n"
    "        __typename\n      }\n      __typename\n    }\n    observability_connected_cluster {\n      id\n"
    "      traffic_enabled\n      status\n      __typename\n    }\n    __typename\n  }\n}\n")
Q_CREATE = ("mutation createBundleApplicationInstance($data: BundleApplicationInstanceCreateInput!) {\n"
            "  createBundleApplicationInstance(data: $data) {\n    id\n    __typename\n  }\n}\n")
Q_NTP = ("mutation updateObservabilityNtpUrl($data: NtpCommonUpdateInput!, $where: "
         "BundleApplicationInstanceWhereUniqueInput!) {\n  updateObservabilityNtpUrl(data: $data, where: $where) {\n"
         "    ntp_service_url\n    __typename\n  }\n}\n")
Q_CONNECT = (
    "mutation updateBundleApplicationInstanceConnectClusters($where: BundleApplicationInstanceWhereInput!, $data: "
    "BundleApplicationInstanceConnectClustersInput!) {\n  updateBundleApplicationInstanceConnectClusters(where: "
    "$where, data: $data) {\n    id\n    name\n    description\n    status\n    error_code\n    vm_spec {\n      ip\n"
    "      subnet_mask\n      gateway\n      vlan_id\n      vcpu_count\n      memory_size_bytes\n"
    "      storage_size_bytes\n      __typename\n    }\n    connected_clusters {\n      id\n      name\n"
    "      cluster {\n        id\n        name\n        __typename\n      }\n      __typename\n    }\n    cluster {\n"
    "      id\n      name\n      __typename\n    }\n    __typename\n  }\n}\n")
Q_SERVICES = (
    "mutation updateObservabilityConnectedSystemServices($ovm_name: String!, $connected_system_services: "
    "[UpdateObservabilityConnectedSystemServiceInput!]!) {\n  updateObservabilityConnectedSystemServices(ovm_name: "
    "$ovm_name, connected_system_services: $connected_system_services) {\n    connected_system_services {\n"
    "      id\n      type\n      status\n      system_service {\n        id\n        name\n        version\n"
    "        __typename\n      }\n      instances {\n        state\n        __typename\n      }\n"
    "      __typename\n    }\n    __typename\n  }\n}\n")
RULE = {"name": "cluster_connect_status", "type": "METRIC",
        "metric_validator": {"interval": "30s", "for": "5m", "query_tmpl": "cluster_connect_status == 0"},
        "metric_descriptor": {"unit": "UNIT_UNSPECIFIED"}, "default_thresholds": [{"severity": "INFO", "value": "0"}],
        "thresholds": [{"severity": "INFO", "value": "0"}],
        "messages": [{"locale": "en-US", "str": "CloudTower failed to connect."}],
        "causes": [{"locale": "en-US", "str": "x"}], "impacts": [{"locale": "en-US", "str": "y"}],
        "solutions": [{"locale": "en-US", "str": "z"}]}


def targz(size: int = 200_000) -> bytes:
    """A small real .tar.gz (random content: the gzip stream is as long as the data)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = os.urandom(size)
        info = tarfile.TarInfo("images/observability.img")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# =========================================================================== fixtures
plan = three_host_plan("obsplan")


@pytest.fixture(scope="module")
def attached(plan):
    snapshot, summary = preset_snapshot(plan, "cluster-attached")
    return snapshot, summary["cloudtower_cluster"]


class Obs:
    """A browser-like client of one simulated CloudTower: GraphQL login (cookie), OVM uploads, the guide's calls."""

    def __init__(self, sim, plan, cluster: dict):
        self.sim, self.plan, self.cluster = sim, plan, cluster
        self.ip = str(plan.cloudtower.ip)
        self.obs_ip = str(plan.components["obs"].ip)
        self.tower = sim.state.cloudtower.tower(self.ip)
        self.http = httpx.Client(verify=ssl_context(sim), timeout=10)
        self.base = sim.url(self.ip)
        self.token = None

    def login(self, password: str = GUIDE_ENCODED_LOGIN_PASSWORD) -> httpx.Response:
        r = self.http.post(self.base + "/api", json={"operationName": "login", "query": Q_LOGIN, "variables": {
            "data": {"username": "root", "password": password, "source": "LOCAL", "auth_config_id": None}}})
        if r.status_code == 200 and "errors" not in r.json():
            self.token = r.json()["data"]["login"]["token"]
        return r

    def gql(self, op: str, query: str, variables: dict | None = None) -> httpx.Response:
        """Cookie only, as the guide's §07 calls."""
        return self.http.post(self.base + "/api", json={"operationName": op, "variables": variables or {},
                                                        "query": query})

    def data(self, r: httpx.Response) -> dict:
        assert r.status_code == 200, r.text
        body = r.json()
        assert "errors" not in body, body
        return body["data"]

    def rest(self, name: str, body=None):
        r = self.http.post(self.base + f"/v2/api/{name}", json=body or {}, headers={"Authorization": self.token})
        assert r.status_code == 200, r.text
        return r.json()

    # ---- OVM operator
    def ovm(self, path: str, *, basic: str | None = BASIC, headers: dict | None = None, **kw) -> httpx.Response:
        headers = ({"Authorization": basic} if basic else {}) | (headers or {})
        return self.http.post(self.base + OVM + path, headers=headers, **kw)

    def init(self, name: str = PKG) -> dict:
        r = self.ovm("/v3/chunkedUploads", json={"origin_file_name": name})
        assert r.status_code == 200, r.text
        return r.json()

    def chunk(self, uid: str, data: bytes) -> httpx.Response:
        return self.ovm("/v1/chunkedUploads", files={"file": ("blob", data, "application/octet-stream")},
                        data={"id": uid})

    def upload(self, pkg: bytes, name: str = PKG, size: int = 65536) -> str:
        uid = self.init(name)["id"]
        for i in range(0, len(pkg), size):
            r = self.chunk(uid, pkg[i:i + size])
            assert r.status_code == 200 and r.json()["offset"] == min(i + size, len(pkg)), r.text
        r = self.ovm(f"/v3/chunkedUploads/{uid}:commit")
        assert r.status_code == 200, r.text
        return uid

    def package_tasks(self) -> list[dict]:
        return [t for t in self.rest("get-tasks") if "package" in t["description"]]

    def inventory(self) -> dict:
        return self.data(self.gql("observabilityInstanceAndApps", Q_INVENTORY))

    def vlan(self, name: str = "default") -> str:
        vdses = {v["id"] for v in self.rest("get-vdses", {"where": {"cluster": {"id": self.cluster["id"]}}})}
        return next(v["id"] for v in self.rest("get-vlans", {"where": {"name": name}}) if v["vds"]["id"] in vdses)

    def create(self, package_id: str, name: str = "obs", ip: str | None = None, vlan: str | None = None,
               **spec) -> httpx.Response:
        vm_spec = {"ip": ip or self.obs_ip, "subnet_mask": self.plan.mgmt.netmask,
                   "gateway": str(self.plan.mgmt.gateway), "vlan_id": vlan or self.vlan(), "vcpu_count": 16,
                   "memory_size_bytes": "34359738368", "storage_size_bytes": "549755813888",
                   "env_vars": {"PRODUCT_VENDOR": "SMARTX"}} | spec
        return self.gql("createBundleApplicationInstance", Q_CREATE, {"data": {
            "name": name, "description": "", "bundle_application_package": {"id": package_id},
            "cluster": {"id": self.cluster["id"]}, "host_id": "", "vm_spec": vm_spec}})

    def ready_package(self) -> str:
        self.upload(targz())
        self.sim.advance(INSTALL_PKG_S + 5)
        (pkg,) = self.inventory()["bundleApplicationPackages"]
        return pkg["id"]

    def installed(self) -> str:
        iid = self.data(self.create(self.ready_package()))["createBundleApplicationInstance"]["id"]
        self.sim.advance(OBS_INSTALL_S + 5)
        return iid


@pytest.fixture
def world(plan, attached, monkeypatch):
    """``world(profiles=None)`` -> a logged-in (GraphQL login: cookie + token) :class:`Obs` on a simulator started
    from the ``cluster-attached`` snapshot."""
    monkeypatch.delenv("SMTX_SIM_FAULTS", raising=False)
    snap, cluster = attached
    owned = []

    def make(profiles=None, login: bool = True) -> Obs:
        sim = Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, profiles=profiles or [],
                                  snapshot=json.loads(json.dumps(snap))).start()
        owned.append(sim)
        o = Obs(sim, plan, cluster)
        owned.append(o)
        if login:
            assert o.login().status_code == 200 and o.token
        return o

    yield make
    for x in reversed(owned):
        (x.http.close if isinstance(x, Obs) else x.close)()


# =========================================================================== pure helpers
def test_package_names_and_ids():
    assert package_of(PKG) == {"arch": "X86_64", "version": VERSION}
    assert package_of("observability-aarch64-v1.5.0.tar.gz") == {"arch": "AARCH64", "version": "v1.5.0"}
    assert package_of("smtx-backup-dr-x86_64-2.2.1.tar.gz") is None
    k = ksuid(1765253832, "x")
    assert len(k) == 27 and k.isalnum()


def test_gzip_check_streams_and_sees_a_replayed_chunk():
    pkg = targz(100_000)
    ok = GzipCheck()
    for i in range(0, len(pkg), 4096):
        ok.feed(pkg[i:i + 4096])
    assert ok.verdict() is None
    bad = GzipCheck()
    for part in (pkg[:8192], pkg[4096:8192], pkg[8192:]):          # one chunk sent twice
        bad.feed(part)
    assert bad.verdict() is not None
    short = GzipCheck()
    short.feed(pkg[:-100])
    assert "truncated" in short.verdict()
    plain = GzipCheck()
    import gzip
    plain.feed(gzip.compress(b"not a tar" * 100))
    assert "tar" in plain.verdict()


# =========================================================================== uploads
def test_upload_auth_needs_basic_and_cookie(world):
    o = world()
    assert o.ovm("/v3/chunkedUploads", basic=None, json={"origin_file_name": PKG}).status_code == 401
    wrong = "Basic " + base64.b64encode(b"o11y:nope").decode()
    assert o.ovm("/v3/chunkedUploads", basic=wrong, json={"origin_file_name": PKG}).status_code == 401
    anon = httpx.Client(verify=ssl_context(o.sim), timeout=10)
    try:
        r = anon.post(o.base + OVM + "/v3/chunkedUploads", json={"origin_file_name": PKG},
                      headers={"Authorization": BASIC})
        assert r.status_code == 401 and r.json()["code"] == 16
        # the token instead of the cookie is not enough
        r = anon.post(o.base + OVM + "/v3/chunkedUploads", json={"origin_file_name": PKG},
                      headers={"Authorization": BASIC, "Cookie": f"connect.sid={o.token}"})
        assert r.status_code == 401
    finally:
        anon.close()
    up = o.init()
    assert up["offset"] == "0" and up["status"] == "UPLOADING" and len(up["id"]) == 27
    assert up["origin_file_name"] == PKG and up["package_id"] == ""
    # an expired cookie (the fault recipe): 401 until the next login
    assert o.tower.revoke_cookies() >= 1
    assert o.chunk(up["id"], b"x").status_code == 401
    assert o.login().status_code == 200
    assert o.chunk(up["id"], b"x").json()["offset"] == 1


def test_upload_offsets_commit_and_the_two_tasks(world):
    o = world()
    pkg = targz()
    uid = o.init()["id"]
    r = o.chunk(uid, pkg[:65536])
    body = r.json()
    assert body["offset"] == 65536 and body["status"] == 1 and set(body["create_time"]) == {"seconds", "nanos"}
    # part order id-then-file works too
    r = o.ovm("/v1/chunkedUploads", files=[("id", (None, uid)), ("file", ("blob", pkg[65536:], "application/octet-stream"))])
    assert r.json()["offset"] == len(pkg)
    view = o.http.get(o.base + OVM + f"/v3/chunkedUploads/{uid}", headers={"Authorization": BASIC}).json()
    assert view["offset"] == str(len(pkg))
    assert o.ovm(f"/v3/chunkedUploads/{uid}:commit", headers={"x-user-id": "u"}).json()["status"] == "COMMITTED"
    assert o.ovm(f"/v3/chunkedUploads/{uid}:commit").status_code == 400          # once
    assert o.chunk(uid, b"late").status_code == 400
    assert o.chunk("nope", b"x").status_code == 404
    (t1,) = o.package_tasks()
    assert t1["description"] == f"Create Installation package {PKG}" and t1["status"] in ("PENDING", "EXECUTING")
    o.sim.advance(APP_PKG_AT + 5)
    t1, t2 = o.package_tasks()
    assert t2["description"] == f"Create Application package observability-X86_64-{VERSION}.tar.gz"
    assert t2["status"] == "EXECUTING" and t2["resource_type"] == "CloudTowerApplicationPackage"
    assert len(t2["args"]["Hash"]) == 64
    assert o.inventory()["bundleApplicationPackages"] == []
    o.sim.advance(APP_PKG_S)
    assert [t["status"] for t in o.package_tasks()] == ["EXECUTING", "SUCCESSED"]
    o.sim.advance(INSTALL_PKG_S - APP_PKG_AT - APP_PKG_S)
    assert [t["status"] for t in o.package_tasks()] == ["SUCCESSED", "SUCCESSED"]
    (p,) = o.inventory()["bundleApplicationPackages"]
    assert (p["name"], p["version"], p["arch"], p["__typename"]) == ("Observability", VERSION, "X86_64",
                                                                      "BundleApplicationPackage")
    assert [h["arch"] for h in p["host_plugin_packages"]] == ["X86_64", "AARCH64"]
    # the same version again: the package is not duplicated
    o.upload(pkg)
    o.sim.advance(INSTALL_PKG_S + 1)
    assert len(o.inventory()["bundleApplicationPackages"]) == 1


def test_a_replayed_chunk_corrupts_the_package(world):
    """The chunk's answer is lost after the server appended it (drop_after); a blind re-send appends it again."""
    o = world()
    pkg = targz()
    uid = o.init()["id"]
    assert o.chunk(uid, pkg[:65536]).status_code == 200
    o.sim.faults.add({"path": OVM + "/v1/chunkedUploads", "nth": 1, "action": {"drop_after": True}})
    with pytest.raises(httpx.TransportError):
        o.chunk(uid, pkg[65536:131072])
    assert o.tower.obs_upload(uid).offset == 131072                   # appended all the same
    assert o.chunk(uid, pkg[65536:131072]).json()["offset"] == 196608  # the replay lands twice
    assert o.chunk(uid, pkg[131072:]).json()["offset"] == len(pkg) + 65536
    assert o.ovm(f"/v3/chunkedUploads/{uid}:commit").status_code == 200
    o.sim.advance(60)
    (t,) = o.package_tasks()
    assert t["status"] == "FAILED" and "gzip" in t["error_message"] and t["error_code"] == "PACKAGE_INVALID"
    o.sim.advance(INSTALL_PKG_S)
    assert len(o.package_tasks()) == 1 and o.inventory()["bundleApplicationPackages"] == []


def test_a_chunk_whose_answer_is_late_was_appended(world):
    """A ``delay`` on the streamed chunk route: the body is taken and appended, the answer comes late."""
    o = world()
    uid = o.init()["id"]
    o.sim.faults.add({"path": OVM + "/v1/chunkedUploads", "nth": 1, "action": {"delay": 1.0}})
    with pytest.raises(httpx.ReadTimeout):
        o.http.post(o.base + OVM + "/v1/chunkedUploads", headers={"Authorization": BASIC},
                    files={"file": ("blob", b"abc", "application/octet-stream")}, data={"id": uid}, timeout=0.3)
    view = o.http.get(o.base + OVM + f"/v3/chunkedUploads/{uid}", headers={"Authorization": BASIC}).json()
    assert view["offset"] == "3"


def test_package_task_fault_and_bad_name(world):
    o = world()
    o.sim.faults.add({"path": OVM + "/v3/chunkedUploads/*:commit", "times": 1,
                      "action": {"operation": "fail", "msg": "disk full"}})
    o.upload(targz())
    o.sim.advance(60)
    (t,) = o.package_tasks()
    assert t["status"] == "FAILED" and t["error_message"] == "disk full"
    o.upload(targz(), name="observability.tar.gz")
    o.sim.advance(60)
    assert "not an Observability package" in o.package_tasks()[-1]["error_message"]
    o.sim.faults.add({"path": OVM + "/v3/chunkedUploads/*:commit", "times": 1, "action": {"operation": "stuck"}})
    o.upload(targz())
    o.sim.advance(3600)
    assert o.package_tasks()[-1]["status"] == "EXECUTING"


# =========================================================================== instance
def test_instance_lifecycle_ssh_ntp_clusters_services(world):
    o = world()
    pid = o.ready_package()
    iid = o.data(o.create(pid))["createBundleApplicationInstance"]["id"]
    (inst,) = o.inventory()["bundleApplicationInstances"]
    assert inst["status"] == "INSTALLING" and inst["health_status"] is None and inst["application"]["instances"] == []
    assert inst["vm_spec"]["memory_size_bytes"] == "34359738368" and inst["vm_spec"]["vcpu_count"] == 16
    assert inst["bundle_application_package"]["version"] == VERSION
    assert not o.sim.hub.endpoint(o.obs_ip, 10022, "tcp").up
    # NTP before SUCCESS is refused
    assert "errors" in o.gql("updateObservabilityNtpUrl", Q_NTP, {"data": {"ntp_service_url": "a.b"},
                                                                   "where": {"id": iid}}).json()
    o.sim.advance(OBS_INSTALL_S - OBS_VM_LEAD_S + 1)
    (inst,) = o.inventory()["bundleApplicationInstances"]
    assert inst["status"] == "INSTALLING" and inst["application"]["instances"][0]["vm"]["status"] == "RUNNING"
    assert o.sim.hub.endpoint(o.obs_ip, 10022, "tcp").up and o.sim.is_alive(o.obs_ip)
    o.sim.advance(OBS_VM_LEAD_S)
    (inst,) = o.inventory()["bundleApplicationInstances"]
    assert inst["status"] == "SUCCESS" and inst["health_status"] == "NORMAL"
    assert o.inventory()["bundleApplicationPackages"][0]["application_packages"][0]["applications"] == [
        {"id": inst["application"]["id"], "name": "observability-obs", "__typename": "CloudTowerApplication"}]
    # NTP: the answer joins with ';'
    r = o.gql("updateObservabilityNtpUrl", Q_NTP, {"data": {"ntp_service_url": "10.0.0.2,ntp.c89.fun,10.0.0.1"},
                                                   "where": {"id": iid}})
    assert o.data(r)["updateObservabilityNtpUrl"]["ntp_service_url"] == "10.0.0.2;ntp.c89.fun;10.0.0.1"
    # connect the cluster: id_in sets the list
    r = o.gql("updateBundleApplicationInstanceConnectClusters", Q_CONNECT,
              {"where": {"id": iid}, "data": {"connected_clusters": {"id_in": [o.cluster["id"]]}}})
    got = o.data(r)["updateBundleApplicationInstanceConnectClusters"]
    assert got["status"] == "SUCCESS" and got["error_code"] == ""
    assert [c["cluster"]["id"] for c in got["connected_clusters"]] == [o.cluster["id"]]
    assert got["cluster"]["id"] == o.cluster["id"]
    again = o.data(o.gql("updateBundleApplicationInstanceConnectClusters", Q_CONNECT, {
        "where": {"id": iid}, "data": {"connected_clusters": {"id_in": [o.cluster["id"]]}}}))
    assert again["updateBundleApplicationInstanceConnectClusters"]["connected_clusters"] == got["connected_clusters"]
    r = o.gql("updateBundleApplicationInstanceConnectClusters", Q_CONNECT,
              {"where": {"id": iid}, "data": {"connected_clusters": {"id_in": ["cnope"]}}})
    assert r.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    inv = o.inventory()
    (cc,) = inv["bundleApplicationConnectedClusters"]
    assert cc["cluster"]["connect_state"] == "CONNECTED" and cc["bundle_application_instance"]["id"] == iid
    assert len(inv["bundleApplicationInstances"][0]["connected_clusters"][0]["cluster"]["hosts"]) == 3
    # system service CloudTower (ovm_name is fixed "observability" while the instance is "obs")
    svc = {"system_service_id": "CLOUDTOWER", "system_service_name": "CloudTower", "type": "CLOUDTOWER",
           "alerting_rules": [RULE], "instances": [{"url": f"http://{o.ip}/admin/observability/agent",
                                                    "info": {"service_name": "CloudTower", "vm_name": "cloudtower"}}]}
    r = o.gql("updateObservabilityConnectedSystemServices", Q_SERVICES,
              {"ovm_name": "observability", "connected_system_services": [svc]})
    (s,) = o.data(r)["updateObservabilityConnectedSystemServices"]["connected_system_services"]
    assert s["status"] == "INSTALLING" and s["system_service"] == {"id": "CLOUDTOWER", "name": "CloudTower",
                                                                   "version": "4.7.1",
                                                                   "__typename": "ObservabilityConnectedSystemServiceInfo"}
    assert s["instances"] == [{"state": "STATE_UNSPECIFIED", "__typename": "ObservabilityConnectedSystemServiceInstance"}]
    (inst,) = o.inventory()["bundleApplicationInstances"]
    assert [x["type"] for x in inst["connected_system_services"]] == ["CLOUDTOWER"]
    # an unknown field of a rule is a validation error, as on a real server
    r = o.gql("updateObservabilityConnectedSystemServices", Q_SERVICES,
              {"ovm_name": "observability", "connected_system_services": [svc | {"alerting_rules": [RULE | {"x": 1}]}]})
    assert r.status_code == 400
    # the OBS VM: SSH on 10022 as o11y, resolv.conf rewritten through sudo sh -c
    ssh_dns(o)


def ssh_dns(o: Obs) -> None:
    host, port = o.sim.local(o.obs_ip, 10022)
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect(host, port, username="o11y", password="HC!r0cks", look_for_keys=False, allow_agent=False, timeout=10)
    try:
        chan = c.get_transport().open_session()
        chan.get_pty()
        chan.exec_command("sudo -S sh -c 'printf \"nameserver 10.0.0.53\\n\" > /etc/resolv.conf'")
        chan.sendall(b"HC!r0cks\n")
        assert chan.recv_exit_status() == 0
        _, out, _ = c.exec_command("cat /etc/resolv.conf")
        assert out.read().decode() == "nameserver 10.0.0.53\n"
    finally:
        c.close()
    svc = ssh_service(o.sim, o.obs_ip, 10022)
    assert svc.fs.text("/etc/resolv.conf") == "nameserver 10.0.0.53\n"


def test_instance_checks(world):
    o = world()
    pid = o.ready_package()
    no = o.create("cnope")
    assert no.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    r = o.create(pid, vlan="cnope")
    assert "no VLAN CloudTower knows" in r.json()["errors"][0]["message"]
    # numbers where the schema wants strings: a variables error (400)
    assert o.create(pid, memory_size_bytes=34359738368).status_code == 400
    # a "default" VLAN on another cluster: listed first, refused for this cluster
    foreign = o.tower.add_foreign_vlan("default")
    first = o.rest("get-vlans", {"where": {"name": "default"}})[0]
    assert first["id"] == foreign["id"]
    assert "not a VLAN of cluster" in o.create(pid, vlan=foreign["id"]).json()["errors"][0]["message"]
    assert o.vlan() != foreign["id"]
    assert foreign["vds"]["id"] in {v["id"] for v in o.rest("get-vdses", {"where": {"cluster": {"id": foreign["cluster"]["id"]}}})}
    # the real API filters a VLAN on its VDS's cluster (the answer still shows the VDS's short view)
    mine = o.rest("get-vlans", {"where": {"name": "default", "vds": {"cluster": {"id": o.tower.cluster_by_ip(
        str(o.plan.vip)).id}}}})
    assert [v["id"] for v in mine] == [o.vlan()] and set(mine[0]["vds"]) == {"id", "name"}
    theirs = o.rest("get-vlans", {"where": {"vds": {"cluster": {"id": foreign["cluster"]["id"]}}}})
    assert [v["id"] for v in theirs] == [foreign["id"]]
    o.data(o.create(pid))
    assert o.create(pid).json()["errors"][0]["extensions"]["code"] == "ALREADY_EXISTS"                   # name
    assert o.create(pid, name="observability").json()["errors"][0]["extensions"]["code"] == "ALREADY_EXISTS"  # ip
    # an unknown argument / field is a validation error
    r = o.gql("observabilityInstanceAndApps", Q_INVENTORY.replace("    health_status\n", "    health\n", 1))
    assert r.status_code == 400 and r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


def test_instance_stuck_and_failed(world):
    o = world()
    pid = o.ready_package()
    o.sim.faults.add({"operation_name": "createBundleApplicationInstance", "times": 1,
                      "action": {"operation": "stuck"}})
    o.data(o.create(pid))
    o.sim.advance(OBS_INSTALL_S * 6)
    (inst,) = o.inventory()["bundleApplicationInstances"]
    assert inst["status"] == "INSTALLING" and inst["application"]["instances"][0]["vm"]["status"] == "RUNNING"
    o.sim.faults.add({"operation_name": "createBundleApplicationInstance", "times": 1, "action": {"operation": "fail"}})
    o.data(o.create(pid, name="obs2", ip="10.0.20.250"))
    o.sim.advance(OBS_INSTALL_S)
    inst = o.inventory()["bundleApplicationInstances"][1]
    assert inst["status"] == "FAILED" and inst["application"]["instances"] == []


def test_ssh_refused_and_graphql_auth(world):
    o = world()
    o.installed()
    o.sim.set_up(o.obs_ip, 10022, False, proto="tcp")
    host, port = o.sim.local(o.obs_ip, 10022)
    import socket
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=2)
    # GraphQL: the cookie alone works; none -> UNAUTHENTICATED; the token alone works as well
    assert o.inventory()["bundleApplicationInstances"]
    anon = httpx.Client(verify=ssl_context(o.sim), timeout=10)
    try:
        body = {"operationName": "observabilityInstanceAndApps", "variables": {}, "query": Q_INVENTORY}
        r = anon.post(o.base + "/api", json=body)
        assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "errors" not in anon.post(o.base + "/api", json=body, headers={"Authorization": o.token}).json()
    finally:
        anon.close()


# =========================================================================== profiles, snapshot, preset
def test_gql_login_profiles(world):
    o = world()
    r = o.login("HC!r0cks")
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    p = world(["gql-login-plaintext-accepted"], login=False)
    assert "errors" not in p.login("HC!r0cks").json() and p.http.cookies.get("connect.sid")
    assert "errors" not in p.login().json()
    assert "errors" in p.login("wrong").json()


def test_snapshot_round_trip_mid_install(world, plan):
    o = world()
    uid = o.init()["id"]
    o.chunk(uid, b"partial")
    pid = o.ready_package()
    iid = o.data(o.create(pid))["createBundleApplicationInstance"]["id"]
    o.sim.advance(OBS_INSTALL_S - 60)                  # VM running, instance INSTALLING
    o.tower.add_foreign_vlan("default")
    snap = o.sim.snapshot()
    text = json.dumps(snap)
    assert o.token not in text and "HC!r0cks" not in text
    o.sim.close()
    with Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, profiles=[], snapshot=snap) as sim:
        tower = sim.state.cloudtower.tower(o.ip)
        inst = tower.obs_instances[iid]
        assert tower.obs_status(inst) == "INSTALLING" and inst.networked
        assert tower.obs_uploads[uid].offset == 7 and not tower.obs_uploads[uid].verifiable
        assert len(tower.foreign_vlans) == 1 and len(tower.obs_packages) == 1
        assert sim.hub.endpoint(o.obs_ip, 10022, "tcp").up
        assert ssh_service(sim, o.obs_ip, 10022).password_ok("o11y", "HC!r0cks")
        sim.advance(61)
        assert tower.obs_status(inst) == "SUCCESS"


def test_obs_ready_preset_function(plan, attached):
    snap, _ = attached
    with Simulator.from_plan(plan, time_scale=0.01, load_env_faults=False, profiles=[],
                             snapshot=json.loads(json.dumps(snap))) as sim:
        summary = {}
        _obs_ready(sim, summary)
        _obs_ready(sim, summary)                        # find-or-update: nothing duplicated
        s = summary["obs"]
        tower = sim.state.cloudtower.tower(str(plan.cloudtower.ip))
        (inst,) = tower.obs_instances.values()
        assert len(tower.obs_packages) == 1 and s["status"] == "SUCCESS" and s["vm_status"] == "RUNNING"
        assert s["ip"] == str(plan.components["obs"].ip) and s["connected_clusters"] and s["system_services"] == [
            "CLOUDTOWER"]
        assert inst.ntp_servers == list(plan.ntp)
        assert sim.hub.endpoint(s["ip"], 10022, "tcp").up
        assert [t["status"] for t in tower.list_tasks() if "package" in t["description"]] == ["SUCCESSED"] * 2
